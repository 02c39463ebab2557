export * from './env.js';
export * from './customer-server.js';
export * from './tcp-proxy.js';
export * from './smtp-client.js';
export * from './events.js';
export * from './dns-zone.js';
export * from './stack-env.js';
export * from './clamd.js';
