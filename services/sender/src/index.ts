export { configSchema, type Config } from './config.js';
export { start, type RunningSender } from './service.js';
export { isPermanent, isTransient, outcomeOf, parseReply } from './reply.js';
