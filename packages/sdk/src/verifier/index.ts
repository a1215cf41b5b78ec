export * from './access-token.js';
export * from './dpop-nonces.js';
export * from './middleware/index.js';
export * from './replay-cache.js';
export * from './request.js';
export * from './revocation-set.js';
export * from './sse.js';
export * from './verifier.js';
