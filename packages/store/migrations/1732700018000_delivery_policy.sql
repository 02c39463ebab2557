-- Up Migration

-- A tenant's own retry schedule and queue lifetime (issue: "both configurable per tenant"). NULL:
-- the router's defaults (MOAT_RETRY_BASE_MS, MOAT_RETRY_MAX_MS, MOAT_QUEUE_LIFETIME_MS,
-- MOAT_DSN_DELAY_WARNING_MS).
ALTER TABLE tenants ADD COLUMN retry_base_ms integer CHECK (retry_base_ms > 0);
ALTER TABLE tenants ADD COLUMN retry_max_ms integer CHECK (retry_max_ms > 0);
ALTER TABLE tenants ADD COLUMN queue_lifetime_ms bigint CHECK (queue_lifetime_ms > 0);
ALTER TABLE tenants ADD COLUMN delay_warning_ms bigint CHECK (delay_warning_ms >= 0);

-- Down Migration
ALTER TABLE tenants DROP COLUMN delay_warning_ms;
ALTER TABLE tenants DROP COLUMN queue_lifetime_ms;
ALTER TABLE tenants DROP COLUMN retry_max_ms;
ALTER TABLE tenants DROP COLUMN retry_base_ms;
