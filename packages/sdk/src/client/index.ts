export * from './ambient.js';
export * from './tls-fetch.js';
export * from './workload-client.js';
