export * from './migrate.js';
export * from './partitions.js';
export * from './crypto.js';
export * from './message-store.js';
export * from './tenants.js';
export * from './api-keys.js';
