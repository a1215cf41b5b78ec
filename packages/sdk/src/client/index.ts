export * from './ambient.js';
export * from './workload-client.js';
