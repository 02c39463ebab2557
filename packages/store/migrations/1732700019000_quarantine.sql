-- Up Migration

-- The quarantine (DESIGN.md: the archive "keeps the quarantine"): one row per quarantined message,
-- written by the archive when a message.filtered says `quarantine` (idempotent on the message
-- id). The body stays where it is, encrypted, in the message store; this row holds what the API
-- lists and searches, the filtered payload a release re-publishes, and the preview sealed with
-- the quarantine preview key (never readable with this row alone).
CREATE TABLE quarantine (
  message_id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  -- The message store's partition key (payload.store.receivedAt): where the body lives.
  store_received_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  direction text NOT NULL,
  mail_from text NOT NULL,
  rcpts text[] NOT NULL,
  from_header text,
  to_header text,
  subject text,
  size integer NOT NULL,
  category text NOT NULL CHECK (category IN ('virus', 'spoofing', 'spam', 'policy')),
  reasons text[] NOT NULL,
  score double precision NOT NULL,
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  state text NOT NULL DEFAULT 'quarantined' CHECK (state IN ('quarantined', 'released', 'deleted', 'expired')),
  state_changed_at timestamptz,
  state_changed_by text,
  -- The message.filtered payload as the filter published it (without the preview): a release
  -- publishes it again with verdict deliver. NULL once deleted or expired.
  payload jsonb,
  -- The sealed preview ({keyId, wrappedKey, iv, tag, ciphertext}, base64); NULL when none was made
  -- or once deleted or expired.
  preview jsonb
);
CREATE INDEX quarantine_tenant ON quarantine (tenant_id, quarantined_at DESC, message_id DESC);
CREATE INDEX quarantine_due ON quarantine (expires_at) WHERE state = 'quarantined';

-- "Not spam" (and later "spam") from the quarantine: training input for the tenant's classifier.
-- The body is not copied: a trainer (a process holding the master key) reads it from the message
-- store through (message_id, store_received_at) while it is there, and stamps trained_at.
CREATE TABLE spam_feedback (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL,
  message_id uuid NOT NULL,
  store_received_at timestamptz NOT NULL,
  label text NOT NULL CHECK (label IN ('ham', 'spam')),
  source text NOT NULL,
  actor text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  trained_at timestamptz,
  UNIQUE (message_id, label)
);
CREATE INDEX spam_feedback_untrained ON spam_feedback (tenant_id, at) WHERE trained_at IS NULL;

-- Down Migration
DROP TABLE spam_feedback;
DROP TABLE quarantine;
