export { configSchema, type Config } from './config.js';
export { start, type ArchiveService } from './service.js';
export { Archiver, archiveEntryFor, archivedEventId, type ArchiverDependencies } from './archiver.js';
