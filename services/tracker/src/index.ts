export { configSchema, type Config } from './config.js';
export { start, type TrackerService } from './service.js';
export { MicroBatcher, type MicroBatcherOptions } from './micro-batcher.js';
