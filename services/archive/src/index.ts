export { configSchema, type Config } from './config.js';
export { start, type ArchiveService } from './service.js';
export { Archiver, archiveEntryFor, quarantineEntryFor, type ArchiverDependencies } from './archiver.js';
export { quarantineCategory } from './quarantine-category.js';
export { startQuarantineSweeper } from './quarantine-sweeper.js';
export { createArchiveWriter, type ArchiveWriter } from './archive-writer.js';
