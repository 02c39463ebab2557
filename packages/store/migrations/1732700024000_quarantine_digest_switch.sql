-- Up Migration

-- Quarantine digests per tenant (issue 5): on by default, as before the switch existed. While off,
-- no digest is made for the tenant's mailboxes. quarantine_digests_since is when they were last
-- turned back on: messages quarantined before it are never listed, so turning digests on again
-- does not send one long digest of everything that waited while they were off.
ALTER TABLE tenant_filter_policies
  ADD COLUMN quarantine_digests boolean NOT NULL DEFAULT true,
  ADD COLUMN quarantine_digests_since timestamptz;

-- Down Migration

ALTER TABLE tenant_filter_policies DROP COLUMN quarantine_digests_since, DROP COLUMN quarantine_digests;
