-- Up Migration

-- What a sender observed for one attempt of a delivery ({ attempt, result }), written before it
-- publishes delivery.result. If that publish fails (or the sender dies right after the SMTP
-- transaction), whoever picks the attempt up again re-publishes this outcome instead of sending
-- the message a second time.
ALTER TABLE deliveries ADD COLUMN outcome jsonb;

-- The router's scheduler re-publishes requests that have sat 'queued' for very long (their
-- broker message may have been dead-lettered to parking): it looks them up by age.
CREATE INDEX deliveries_queued ON deliveries (updated_at) WHERE status = 'queued';

-- Down Migration
DROP INDEX deliveries_queued;
ALTER TABLE deliveries DROP COLUMN outcome;
