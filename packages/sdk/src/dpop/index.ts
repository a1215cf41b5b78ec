export * from './create-proof.js';
export * from './errors.js';
export * from './htu.js';
export * from './verify-proof.js';
