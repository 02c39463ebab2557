export { configSchema, type Config } from './config.js';
export { start, type FilterService } from './service.js';
export { MessageFilter, filteredEventId, type FilterDependencies } from './filter.js';
export { authenticateMessage, type AuthOutcome, type AuthCheck } from './auth-checks.js';
export { extractHeaders, headerSection, type MessageHeaders } from './headers.js';
export { composePrependHeaders, foldHeader } from './prepend.js';
export { createBatchedBodyReader, type BatchedBodyReader, type BodyReaderOptions } from './body-reader.js';
