-- Up Migration

-- A tenant's filter policy (issue 5, "Tenant policy"). No row, or a NULL column: the filter's
-- service-wide value (MOAT_FILTER_SPAM_UNSURE_SCORE, MOAT_FILTER_SPAM_QUARANTINE_SCORE,
-- MOAT_FILTER_SCANNER_UNAVAILABLE; no reject score; no subject tag; DMARC only recorded).
CREATE TABLE tenant_filter_policies (
  tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  -- At or above: delivered tagged (X-Moat-Spam-Status: unsure).
  spam_tag_score double precision CHECK (spam_tag_score >= 0 AND spam_tag_score <= 1000),
  -- Prefixed to the Subject of tagged mail ("[SPAM]"); NULL: the subject is left alone.
  subject_tag text CHECK (char_length(subject_tag) BETWEEN 1 AND 40),
  -- At or above: quarantined.
  quarantine_score double precision CHECK (quarantine_score >= 0 AND quarantine_score <= 1000),
  -- At or above: rejected (a DSN to the sender); NULL: never rejected for spam.
  reject_score double precision CHECK (reject_score >= 0 AND reject_score <= 1000),
  -- honour: DMARC p=quarantine / p=reject act on failing mail; tag: only recorded.
  dmarc text NOT NULL DEFAULT 'tag' CHECK (dmarc IN ('honour', 'tag')),
  -- retry | deliver when a scanner gives no verdict; NULL: the service default.
  scanner_unavailable text CHECK (scanner_unavailable IN ('retry', 'deliver')),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tenant_filter_policies_order CHECK (
    (spam_tag_score IS NULL OR quarantine_score IS NULL OR spam_tag_score <= quarantine_score)
    AND (reject_score IS NULL OR quarantine_score IS NULL OR reject_score >= quarantine_score)
  )
);

-- Allow and block list entries, tenant-wide (mailbox NULL) or for one recipient address of the
-- tenant. kind: address (a whole address), domain (the domain and its subdomains), ip (a CIDR
-- range; one address is stored as /32 or /128). Values are stored normalised (lower case,
-- cidr.ts spelling), so the unique index catches the same entry written twice.
CREATE TABLE filter_list_entries (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  mailbox text CHECK (mailbox = lower(mailbox) AND mailbox LIKE '%_@_%'),
  list text NOT NULL CHECK (list IN ('allow', 'block')),
  kind text NOT NULL CHECK (kind IN ('address', 'domain', 'ip')),
  value text NOT NULL CHECK (char_length(value) BETWEEN 1 AND 320),
  comment text CHECK (char_length(comment) <= 500),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX filter_list_entries_unique ON filter_list_entries (tenant_id, coalesce(mailbox, ''), list, kind, value);
CREATE INDEX filter_list_entries_tenant ON filter_list_entries (tenant_id, created_at);

-- Down Migration
DROP TABLE filter_list_entries;
DROP TABLE tenant_filter_policies;
