export * from './base64url.js';
export * from './json.js';
export * from './jwk.js';
export * from './jws.js';
