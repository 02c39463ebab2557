export { configSchema, type Config } from './config.js';
export { start, type ArchiveService } from './service.js';
export { Archiver, archiveEntryFor, type ArchiverDependencies } from './archiver.js';
export { createArchiveWriter, type ArchiveWriter } from './archive-writer.js';
