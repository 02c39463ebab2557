-- Up Migration

-- Per-tenant learning (issue 5): "this is spam / this is not spam" from the quarantine and
-- LiveArchive trains the tenant's own token counts, which the filter adds to the default model.

-- spam_feedback becomes a log of label changes: spam, then ham, then spam again are three rows
-- (the gateway records a row only when the label differs from the message's latest one, under a
-- per-message lock), so the one-row-per-(message, label) constraint goes. The trainer stamps each
-- row with what it did: learned (first label), relabelled (the earlier contribution reversed and
-- the new one added), unchanged (the model already held this label), untrainable (with a reason:
-- the body is gone, or could not be read; never retried).
ALTER TABLE spam_feedback DROP CONSTRAINT spam_feedback_message_id_label_key;
ALTER TABLE spam_feedback
  ADD COLUMN train_outcome text CHECK (train_outcome IN ('learned', 'relabelled', 'unchanged', 'untrainable')),
  ADD COLUMN train_detail text;
-- The latest label of a message (the gateway) and "is an earlier row of this message untrained" (the trainer).
CREATE INDEX spam_feedback_message ON spam_feedback (message_id, id);
-- The trainer's queue, oldest first, across tenants.
CREATE INDEX spam_feedback_pending ON spam_feedback (id) WHERE trained_at IS NULL;

-- How many messages each tenant has taught as spam and as ham (the class totals of its counts).
CREATE TABLE spam_tenant_totals (
  tenant_id uuid PRIMARY KEY,
  n_spam integer NOT NULL DEFAULT 0,
  n_ham integer NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- In how many of the tenant's spam and ham messages each token occurred. The token is a 64-bit
-- hash of the tokenizer's string (services/filter/src/spam/tenant-model.ts): bounded size whatever
-- a message holds, and no body words in clear. The filter reads only a message's own tokens
-- (WHERE tenant_id = $1 AND token_hash = ANY($2)), so its memory does not grow with what tenants
-- learn. A row whose counts both fall to 0 (a relabel) is deleted.
CREATE TABLE spam_tenant_tokens (
  tenant_id uuid NOT NULL,
  token_hash bigint NOT NULL,
  -- No CHECK (>= 0): a reversal's negative delta travels through INSERT … ON CONFLICT, whose
  -- proposed row is checked before the conflict is found; the trainer clamps at 0 itself.
  spam_count integer NOT NULL,
  ham_count integer NOT NULL,
  PRIMARY KEY (tenant_id, token_hash)
);

-- What each labelled message contributed: its label and token hashes, so a relabel reverses the
-- contribution exactly, even after retention has deleted the body.
CREATE TABLE spam_learned_messages (
  message_id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  label text NOT NULL CHECK (label IN ('ham', 'spam')),
  token_hashes bigint[] NOT NULL,
  feedback_id bigint NOT NULL,
  learned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spam_learned_messages_tenant ON spam_learned_messages (tenant_id);

-- Down Migration
DROP TABLE spam_learned_messages;
DROP TABLE spam_tenant_tokens;
DROP TABLE spam_tenant_totals;
DROP INDEX spam_feedback_pending;
DROP INDEX spam_feedback_message;
ALTER TABLE spam_feedback DROP COLUMN train_detail, DROP COLUMN train_outcome;
-- Keeps the latest row of each (message, label) so the old constraint can come back.
DELETE FROM spam_feedback f WHERE EXISTS (SELECT 1 FROM spam_feedback g WHERE g.message_id = f.message_id AND g.label = f.label AND g.id > f.id);
ALTER TABLE spam_feedback ADD CONSTRAINT spam_feedback_message_id_label_key UNIQUE (message_id, label);
