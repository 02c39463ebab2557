-- Up Migration

-- A delivery row is updated several times in its short life (claimed, outcome recorded, result
-- applied). Free space on each page lets an update that touches no indexed column (recording
-- the outcome: `outcome` only) be a HOT update: no new entry in any of the table's indexes.
ALTER TABLE deliveries SET (fillfactor = 70);

-- Down Migration
ALTER TABLE deliveries RESET (fillfactor);
