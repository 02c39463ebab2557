-- Up Migration

-- SMTP-time checks in ingress (issue 5).

-- Per-tenant SMTP policy: greylisting, off unless the tenant turns it on (no row: the defaults).
-- The bounds are the API's (gateway smtp-policy route); the database holds them too so that no
-- other writer can store a policy ingress would misread.
CREATE TABLE smtp_policies (
  tenant_id uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
  greylisting_enabled boolean NOT NULL DEFAULT false,
  greylisting_delay_seconds integer NOT NULL DEFAULT 300 CHECK (greylisting_delay_seconds BETWEEN 1 AND 86400),
  greylisting_retry_window_hours integer NOT NULL DEFAULT 48 CHECK (greylisting_retry_window_hours BETWEEN 1 AND 168),
  greylisting_pass_ttl_days integer NOT NULL DEFAULT 35 CHECK (greylisting_pass_ttl_days BETWEEN 1 AND 365),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Recipient verification asks, per RCPT, whether the tenant has a mailbox list for the
-- recipient's domain at all (any mailbox in it). Mailbox addresses are stored lower-case
-- (mailboxes_address_check), so the domain is the text after the last "@".
CREATE INDEX mailboxes_tenant_domain ON mailboxes (tenant_id, split_part(address, '@', -1));

-- Down Migration

DROP INDEX mailboxes_tenant_domain;
DROP TABLE smtp_policies;
