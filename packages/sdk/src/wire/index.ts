export * from './claims.js';
export * from './errors.js';
export * from './events.js';
export * from './grants.js';
export * from './plain-text.js';
export * from './policy-bundle.js';
export * from './policy-context.js';
export * from './revocation.js';
