export { configSchema, type Config } from './config.js';
export { start, type RunningIngress } from './service.js';
