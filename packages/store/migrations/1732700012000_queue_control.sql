-- Up Migration

-- Queue control (the partner API's /queue): an operator or tenant admin can hold a delivery,
-- hold every delivery to a destination ("pause delivery to this server during maintenance"),
-- release, retry now, purge, and extend a delivery's lifetime.

-- Who holds a held row: 'operator' (this delivery was held by hand) or 'destination' (its
-- destination is paused). Releasing a destination releases only the rows it held.
ALTER TABLE deliveries ADD COLUMN held_by text CHECK (held_by IN ('operator', 'destination'));
-- An extended lifetime: deferred recipients expire after this instead of created_at + the
-- router's queue lifetime (NULL: the default).
ALTER TABLE deliveries ADD COLUMN expires_at timestamptz;

-- The queue listing: rows not done, newest first.
CREATE INDEX deliveries_pending ON deliveries (created_at DESC, id DESC) WHERE status <> 'done';

-- Paused destinations: for one tenant, or (tenant_id NULL, operators only) for everyone.
CREATE TABLE destination_holds (
  id bigserial PRIMARY KEY,
  destination text NOT NULL,
  tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
  reason text,
  actor text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX destination_holds_scope ON destination_holds (destination, coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid));

-- Down Migration
DROP TABLE destination_holds;
DROP INDEX deliveries_pending;
ALTER TABLE deliveries DROP COLUMN expires_at;
ALTER TABLE deliveries DROP COLUMN held_by;
