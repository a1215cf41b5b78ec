export * from './decide.js';
export * from './express.js';
export * from './fastify.js';
export * from './hono.js';
export * from './node-http.js';
export * from './public-url.js';
export * from './refusal.js';
