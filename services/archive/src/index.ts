export { configSchema, type Config } from './config.js';
export { start, type ArchiveService } from './service.js';
export { Archiver, archiveEntryFor, quarantineEntryFor, type ArchiverDependencies } from './archiver.js';
export { quarantineCategory } from './quarantine-category.js';
export { startQuarantineSweeper } from './quarantine-sweeper.js';
export { createArchiveWriter, type ArchiveWriter } from './archive-writer.js';
export { DigestJob, digestCutoff, digestEntryFor, digestIdFor, startDigestJob, type DigestRunSummary } from './digests.js';
export { composeDigest, digestPayload, type DigestEntry, type DigestMailInput } from './digest-mail.js';
