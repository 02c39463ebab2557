-- Up Migration

-- Quarantine digests (issue 5): a periodic email per mailbox listing its new quarantined messages,
-- each spam/policy one with a signed, expiring, single-use release link.

-- One cursor per (tenant, mailbox): the cut-off of the last digest period handled for it. A run
-- locks the row (FOR UPDATE SKIP LOCKED: another archive replica on the same mailbox skips it),
-- and moves it in the transaction that records the digest and stores its body, so a period's
-- digest is made once whatever the replicas and crashes.
CREATE TABLE digest_mailboxes (
  tenant_id uuid NOT NULL,
  -- Lower-cased envelope recipient.
  mailbox text NOT NULL,
  -- NULL until the first period was handled.
  last_cutoff timestamptz,
  last_digest_at timestamptz,
  PRIMARY KEY (tenant_id, mailbox)
);

-- One row per digest sent (the outbox): written with the body and the cursor in one transaction;
-- `payload` is the message.filtered payload published for it, `published_at` set once the broker
-- confirmed it. A run publishes again what a crash left unpublished (same event id: delivered once).
CREATE TABLE digest_runs (
  digest_id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  mailbox text NOT NULL,
  -- NULL for a mailbox's first digest.
  previous_cutoff timestamptz,
  cutoff timestamptz NOT NULL,
  message_count integer NOT NULL,
  created_at timestamptz NOT NULL,
  payload jsonb NOT NULL,
  published_at timestamptz,
  UNIQUE (tenant_id, mailbox, cutoff)
);
CREATE INDEX digest_runs_unpublished ON digest_runs (created_at) WHERE published_at IS NULL;

-- Digest links used (or being used) to release a message: keyed by the link's nonce, so a link
-- releases once, also under two concurrent POSTs. `claimed_at` is a lease (a POST that died
-- after claiming frees the link after it); `used_at` is set once the release was published.
CREATE TABLE digest_link_uses (
  nonce text PRIMARY KEY,
  message_id uuid NOT NULL,
  mailbox text NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  used_at timestamptz
);

-- The digest's search: inbound messages still waiting, by the time they were quarantined.
CREATE INDEX quarantine_waiting_inbound ON quarantine (quarantined_at) WHERE state = 'quarantined' AND direction = 'inbound';

-- Down Migration
DROP INDEX quarantine_waiting_inbound;
DROP TABLE digest_link_uses;
DROP TABLE digest_runs;
DROP TABLE digest_mailboxes;
