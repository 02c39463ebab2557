export { configSchema, type Config } from './config.js';
export { start, type TrackerService } from './service.js';
