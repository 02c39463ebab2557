-- Up Migration

-- Per-mailbox allow and block lists can split one message into parts (message.filtered
-- `split`): the recipients one mailbox's list blocks are quarantined while the others are
-- delivered, and a part quarantined now may be released later. Each part gets its own routing
-- decision, still at most once: the "already routed?" test of route_messages is per (message,
-- part) instead of per message. A whole message is part '' (every existing row), so nothing
-- changes for unsplit mail.
ALTER TABLE deliveries ADD COLUMN part text NOT NULL DEFAULT '';

-- route_message(uuid, jsonb) routed one message alone; the repository now sends a one-item
-- route_messages call instead, so there is one function to keep right.
DROP FUNCTION route_message(uuid, jsonb);

-- As migration 1732700006000, with p_messages items {"message_id", "part" (absent: ''), "rows"}.
CREATE OR REPLACE FUNCTION route_messages(p_messages jsonb)
  RETURNS TABLE (ordinal integer, created boolean, delivery deliveries)
  LANGUAGE plpgsql VOLATILE
  SET search_path FROM CURRENT
AS $$
DECLARE
  k integer;
  m record;
BEGIN
  FOR k IN
    SELECT DISTINCT hashtext('deliveries:' || (e->>'message_id')::uuid::text) AS key
      FROM jsonb_array_elements(p_messages) e
     ORDER BY key
  LOOP
    PERFORM pg_advisory_xact_lock(k);
  END LOOP;
  FOR m IN
    SELECT (e.value->>'message_id')::uuid AS message_id, coalesce(e.value->>'part', '') AS part, e.value->'rows' AS rows, e.ord::integer AS ord
      FROM jsonb_array_elements(p_messages) WITH ORDINALITY AS e(value, ord)
     ORDER BY e.ord
  LOOP
    RETURN QUERY
      SELECT m.ord, false, x FROM deliveries x WHERE x.message_id = m.message_id AND x.part = m.part ORDER BY x.created_at, x.id;
    IF NOT FOUND THEN
      RETURN QUERY
        WITH ins AS (
          INSERT INTO deliveries AS x (id, message_id, part, tenant_id, received_at, pool, destination, routes, mail_from, rcpts, prepend_headers, size, attempt, status, lease_until, updated_at)
          SELECT r.id, m.message_id, m.part, r.tenant_id, r.received_at, r.pool, r.destination, r.routes, r.mail_from, r.rcpts, r.prepend_headers, r.size, 1, 'queued', NULL, now()
            FROM jsonb_to_recordset(m.rows)
              AS r(id uuid, tenant_id uuid, received_at timestamptz, pool text, destination text, routes jsonb, mail_from text, rcpts text[], prepend_headers text, size integer)
          ON CONFLICT (id) DO NOTHING
          RETURNING x
        )
        SELECT m.ord, true, ins.x FROM ins;
    END IF;
  END LOOP;
END
$$;

-- Down Migration

-- The functions return the table's row type, so they go before the column does.
DROP FUNCTION route_messages(jsonb);
ALTER TABLE deliveries DROP COLUMN part;

CREATE FUNCTION route_message(p_message_id uuid, p_rows jsonb)
  RETURNS TABLE (created boolean, delivery deliveries)
  LANGUAGE plpgsql VOLATILE
  SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('deliveries:' || p_message_id::text));
  RETURN QUERY
    SELECT false, x FROM deliveries x WHERE x.message_id = p_message_id ORDER BY x.created_at, x.id;
  IF FOUND THEN
    RETURN;
  END IF;
  RETURN QUERY
    WITH ins AS (
      INSERT INTO deliveries AS x (id, message_id, tenant_id, received_at, pool, destination, routes, mail_from, rcpts, prepend_headers, size, attempt, status, lease_until, updated_at)
      SELECT r.id, p_message_id, r.tenant_id, r.received_at, r.pool, r.destination, r.routes, r.mail_from, r.rcpts, r.prepend_headers, r.size, 1, 'queued', NULL, now()
        FROM jsonb_to_recordset(p_rows)
          AS r(id uuid, tenant_id uuid, received_at timestamptz, pool text, destination text, routes jsonb, mail_from text, rcpts text[], prepend_headers text, size integer)
      ON CONFLICT (id) DO NOTHING
      RETURNING x
    )
    SELECT true, ins.x FROM ins;
END
$$;

CREATE FUNCTION route_messages(p_messages jsonb)
  RETURNS TABLE (ordinal integer, created boolean, delivery deliveries)
  LANGUAGE plpgsql VOLATILE
  SET search_path FROM CURRENT
AS $$
DECLARE
  k integer;
  m record;
BEGIN
  FOR k IN
    SELECT DISTINCT hashtext('deliveries:' || (e->>'message_id')::uuid::text) AS key
      FROM jsonb_array_elements(p_messages) e
     ORDER BY key
  LOOP
    PERFORM pg_advisory_xact_lock(k);
  END LOOP;
  FOR m IN
    SELECT (e.value->>'message_id')::uuid AS message_id, e.value->'rows' AS rows, e.ord::integer AS ord
      FROM jsonb_array_elements(p_messages) WITH ORDINALITY AS e(value, ord)
     ORDER BY e.ord
  LOOP
    RETURN QUERY
      SELECT m.ord, false, x FROM deliveries x WHERE x.message_id = m.message_id ORDER BY x.created_at, x.id;
    IF NOT FOUND THEN
      RETURN QUERY
        WITH ins AS (
          INSERT INTO deliveries AS x (id, message_id, tenant_id, received_at, pool, destination, routes, mail_from, rcpts, prepend_headers, size, attempt, status, lease_until, updated_at)
          SELECT r.id, m.message_id, r.tenant_id, r.received_at, r.pool, r.destination, r.routes, r.mail_from, r.rcpts, r.prepend_headers, r.size, 1, 'queued', NULL, now()
            FROM jsonb_to_recordset(m.rows)
              AS r(id uuid, tenant_id uuid, received_at timestamptz, pool text, destination text, routes jsonb, mail_from text, rcpts text[], prepend_headers text, size integer)
          ON CONFLICT (id) DO NOTHING
          RETURNING x
        )
        SELECT m.ord, true, ins.x FROM ins;
    END IF;
  END LOOP;
END
$$;
