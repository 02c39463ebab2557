-- Up Migration

-- Partners (MSPs) run tenants; operators (bootstrap token) run everything.
CREATE TABLE partners (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
  id uuid PRIMARY KEY,
  partner_id uuid REFERENCES partners(id),
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_partner ON tenants (partner_id);

-- A protected domain; names are stored lower-case without a trailing dot (RFC 5321 §2.4:
-- domain names are case-insensitive).
CREATE TABLE domains (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name = lower(name) AND name !~ '\.$'),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX domains_name ON domains (name);
CREATE INDEX domains_tenant ON domains (tenant_id);

-- The customer's server(s) for a domain: lower priority first (like MX preference).
CREATE TABLE routes (
  id uuid PRIMARY KEY,
  domain_id uuid NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
  host text NOT NULL,
  port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
  priority integer NOT NULL CHECK (priority BETWEEN 0 AND 65535)
);
CREATE INDEX routes_domain ON routes (domain_id);

CREATE TABLE mailboxes (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  address text NOT NULL CHECK (address = lower(address)),
  live_archive boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX mailboxes_address ON mailboxes (address);

-- Bearer tokens are stored as sha256 hashes only; the key is shown once at creation.
CREATE TABLE api_keys (
  id uuid PRIMARY KEY,
  role text NOT NULL CHECK (role IN ('operator', 'partner', 'tenant')),
  partner_id uuid REFERENCES partners(id) ON DELETE CASCADE,
  tenant_id uuid REFERENCES tenants(id) ON DELETE CASCADE,
  name text NOT NULL,
  scopes text[] NOT NULL DEFAULT '{}',
  key_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL,
  target text,
  detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE pools (
  name text PRIMARY KEY,
  cidrs text[] NOT NULL,
  state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining', 'warming', 'disabled')),
  ehlo_name text,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The message store: each body written once, encrypted with its own data key (AES-256-GCM),
-- the data key wrapped by the master key `key_id`. Partitioned by day so retention drops
-- partitions; the default partition catches anything outside the prepared days, so an insert
-- never fails for want of a partition.
CREATE TABLE messages (
  id uuid NOT NULL,
  received_at timestamptz NOT NULL,
  tenant_id uuid NOT NULL,
  size integer NOT NULL,
  sha256 text NOT NULL,
  key_id text NOT NULL,
  wrapped_key bytea NOT NULL,
  iv bytea NOT NULL,
  tag bytea NOT NULL,
  body bytea NOT NULL,
  PRIMARY KEY (received_at, id)
) PARTITION BY RANGE (received_at);
CREATE TABLE messages_default PARTITION OF messages DEFAULT;

-- One row per (message, destination): the durable truth of the delivery queue. Redis may hold a
-- faster schedule; this table is what the router rebuilds it from.
CREATE TABLE deliveries (
  id uuid PRIMARY KEY,
  message_id uuid NOT NULL,
  tenant_id uuid NOT NULL,
  received_at timestamptz NOT NULL,
  pool text NOT NULL,
  destination text NOT NULL,
  routes jsonb NOT NULL,
  mail_from text NOT NULL,
  -- Recipients still to deliver (shrinks as recipients get final fates).
  rcpts text[] NOT NULL,
  prepend_headers text NOT NULL,
  size integer NOT NULL,
  attempt integer NOT NULL DEFAULT 1,
  -- publishing: written, delivery.requested not yet confirmed (lease_until bounds the wait)
  -- queued: on the pool's queue; sending: a sender claimed it (lease_until bounds the claim)
  -- deferred: waiting for next_attempt_at; done: every recipient has a final fate
  status text NOT NULL CHECK (status IN ('publishing', 'queued', 'sending', 'deferred', 'held', 'done')),
  lease_until timestamptz,
  next_attempt_at timestamptz,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'deferred';
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE status IN ('publishing', 'sending');
CREATE INDEX deliveries_message ON deliveries (message_id);

-- Message tracking: one row per message and per recipient, kept current by the tracker; the
-- full timeline is in message_events.
CREATE TABLE tracked_messages (
  message_id uuid PRIMARY KEY,
  tenant_id uuid,
  direction text NOT NULL DEFAULT 'inbound',
  mail_from text,
  client_ip text,
  helo text,
  tls jsonb,
  size integer,
  sha256 text,
  subject text,
  verdict text,
  received_at timestamptz NOT NULL
);
CREATE INDEX tracked_messages_tenant ON tracked_messages (tenant_id, received_at DESC);
CREATE INDEX tracked_messages_from ON tracked_messages (lower(mail_from), received_at DESC);
CREATE INDEX tracked_messages_received ON tracked_messages (received_at DESC);

CREATE TABLE tracked_recipients (
  message_id uuid NOT NULL,
  rcpt text NOT NULL,
  status text NOT NULL,
  -- Status precedence, so events processed out of order never move a recipient backwards.
  status_rank integer NOT NULL,
  last_reply jsonb,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (message_id, rcpt)
);
CREATE INDEX tracked_recipients_rcpt ON tracked_recipients (lower(rcpt));

CREATE TABLE message_events (
  event_id uuid NOT NULL,
  at timestamptz NOT NULL,
  message_id uuid NOT NULL,
  type text NOT NULL,
  rcpts text[] NOT NULL DEFAULT '{}',
  detail jsonb NOT NULL,
  PRIMARY KEY (at, event_id)
) PARTITION BY RANGE (at);
CREATE TABLE message_events_default PARTITION OF message_events DEFAULT;
CREATE INDEX message_events_message ON message_events (message_id, at);

-- What LiveArchive needs to find a message again (content stays in the message store).
CREATE TABLE archive_entries (
  message_id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  received_at timestamptz NOT NULL,
  direction text NOT NULL,
  mail_from text NOT NULL,
  rcpts text[] NOT NULL,
  from_header text,
  to_header text,
  subject text,
  date_header text,
  message_id_header text,
  size integer NOT NULL,
  verdict text NOT NULL,
  archived_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX archive_entries_tenant ON archive_entries (tenant_id, received_at DESC);

-- Dead-lettered broker messages, persisted so they are visible and replayable.
CREATE TABLE parked_events (
  id bigserial PRIMARY KEY,
  parked_at timestamptz NOT NULL DEFAULT now(),
  source_queue text,
  routing_key text NOT NULL,
  reason text,
  event_id text,
  event_type text,
  message_id uuid,
  headers jsonb NOT NULL DEFAULT '{}',
  body bytea NOT NULL,
  replayed_at timestamptz
);
CREATE INDEX parked_events_message ON parked_events (message_id);

-- Down Migration
DROP TABLE parked_events, archive_entries, message_events, tracked_recipients, tracked_messages,
  deliveries, messages, pools, audit_log, api_keys, mailboxes, routes, domains, tenants, partners;
