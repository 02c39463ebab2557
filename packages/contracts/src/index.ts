export * from './envelope.js';
export * from './common.js';
export * from './events.js';
export * from './topology.js';
