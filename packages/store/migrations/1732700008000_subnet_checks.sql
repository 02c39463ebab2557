-- Up Migration

-- A subnet check: does the customer's server take mail from every sending pool, and does it
-- refuse an outsider? Created by the gateway, answered by the senders, one probe row per
-- (source, route). `running` until every probe has a result or `deadline_at` passes; then the
-- missing ones are marked `timeout` and the check is `done`.
CREATE TABLE subnet_checks (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  domain_id uuid NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
  -- The domain's name and routes when the check was asked for: what was probed, even if the
  -- domain changes later.
  domain text NOT NULL,
  routes jsonb NOT NULL,
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
  requested_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  deadline_at timestamptz NOT NULL,
  finished_at timestamptz
);
CREATE INDEX subnet_checks_domain ON subnet_checks (domain_id, created_at DESC);
CREATE INDEX subnet_checks_overdue ON subnet_checks (deadline_at) WHERE status = 'running';
CREATE INDEX subnet_checks_created ON subnet_checks (created_at);

CREATE TABLE subnet_check_probes (
  id uuid PRIMARY KEY,
  check_id uuid NOT NULL REFERENCES subnet_checks(id) ON DELETE CASCADE,
  source text NOT NULL CHECK (source IN ('pool', 'outsider')),
  -- The pool probed from (NULL for the outsider), its state and ranges when the check was asked for.
  pool text,
  pool_state text,
  cidrs text[] NOT NULL DEFAULT '{}',
  route_host text NOT NULL,
  route_port integer NOT NULL CHECK (route_port BETWEEN 1 AND 65535),
  route_priority integer NOT NULL,
  -- pending: asked for; pass: RCPT TO:<postmaster@domain> accepted; fail: the server refused
  -- (or could not be reached) at `failed_step`; error: the probe could not be made from this
  -- source (no sender, address not usable); timeout: no answer before the deadline.
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'pass', 'fail', 'error', 'timeout')),
  source_ip text,
  remote_address text,
  tls boolean,
  failed_step text,
  reply jsonb,
  latency_ms integer,
  error text,
  transcript jsonb NOT NULL DEFAULT '[]',
  finished_at timestamptz,
  CHECK ((source = 'pool') = (pool IS NOT NULL))
);
CREATE INDEX subnet_check_probes_check ON subnet_check_probes (check_id);

-- Down Migration
DROP TABLE subnet_check_probes, subnet_checks;
