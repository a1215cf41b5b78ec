export * from './redact.js';
export * from './token-pattern.js';
