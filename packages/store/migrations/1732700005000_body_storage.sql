-- Up Migration

-- Message bodies are AES-GCM ciphertext: random bytes that never compress. With the default
-- EXTENDED storage Postgres still tries pglz on every body over ~2 KiB before giving up, which
-- measured as the largest Postgres cost per 100 KiB message. EXTERNAL stores them out of line
-- without the attempt. (New daily partitions get the same setting in ensureDailyPartitions.)
ALTER TABLE messages ALTER COLUMN body SET STORAGE EXTERNAL;

-- Down Migration
ALTER TABLE messages ALTER COLUMN body SET STORAGE EXTENDED;
