export * from './workload-client.js';
