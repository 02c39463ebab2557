-- Up Migration

-- The X25519 public keys DKIM private keys are sealed to (packages/store/src/sealed-box.ts), one
-- per master key id, published by the filter, which holds the keyring. The gateway seals the keys
-- it generates to the newest one without holding the master key itself.
CREATE TABLE dkim_sealing_keys (
  key_id text PRIMARY KEY,
  public_key bytea NOT NULL CHECK (length(public_key) = 32),
  published_at timestamptz NOT NULL DEFAULT now()
);

-- DKIM signing keys of protected domains (RFC 6376). The filter signs a tenant's outbound mail
-- with the domain's `active` key. A key is `pending` from its creation until it is activated
-- (time to publish its DNS record first: a signature whose key is not in DNS yet fails at the
-- receiver), and `retired` for good once another key takes over or it is withdrawn. Retired rows
-- stay, so the audit trail and the list of DNS records to remove remain readable.
CREATE TABLE dkim_keys (
  id uuid PRIMARY KEY,
  domain_id uuid NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
  -- RFC 6376 §3.1: a selector is one or more DNS labels. Never reused within a domain: resolvers
  -- may still cache an earlier key under the same name.
  selector text NOT NULL CHECK (selector ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'),
  algorithm text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
  -- The p= value of the DNS record: base64 of the DER SubjectPublicKeyInfo (RSA, RFC 6376
  -- §3.6.1) or of the raw 32-byte key (Ed25519, RFC 8463 §4).
  public_key text NOT NULL,
  -- The PKCS#8 PEM private key, sealed to the X25519 key derived from master key `key_id`
  -- (ephemeral_key: the sealer's half of the exchange), with the row id as additional data so a
  -- key cannot be moved between rows.
  key_id text NOT NULL,
  ephemeral_key bytea NOT NULL,
  iv bytea NOT NULL,
  tag bytea NOT NULL,
  private_key bytea NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'active', 'retired')),
  created_at timestamptz NOT NULL DEFAULT now(),
  activated_at timestamptz,
  retired_at timestamptz,
  CHECK ((state = 'retired') = (retired_at IS NOT NULL)),
  CHECK (state <> 'active' OR activated_at IS NOT NULL)
);
CREATE UNIQUE INDEX dkim_keys_selector ON dkim_keys (domain_id, selector);
-- At most one key signs for a domain at any time.
CREATE UNIQUE INDEX dkim_keys_one_active ON dkim_keys (domain_id) WHERE state = 'active';

-- Down Migration
DROP TABLE dkim_keys, dkim_sealing_keys;
