-- Up Migration

-- route_message (migration 1732700003000) for MANY messages in one statement and one commit: the
-- router's consumer holds up to `prefetch` message.filtered events, and Postgres' cost is per
-- statement and commit, not per row. Each message is handled exactly as route_message handles
-- it (same advisory lock, at most one routing decision, existing rows returned with
-- created = false). All the batch's advisory locks are taken first, in ascending key order, so
-- two batches sharing messages (or a batch and a single route_message, which takes one lock)
-- wait for each other instead of deadlocking. A message that occurs twice in one batch is routed
-- by its first occurrence; the second sees those rows (each statement of a VOLATILE function
-- sees the changes of the statements before it) and gets them with created = false.
--
-- p_messages: a jsonb array of {"message_id": uuid, "rows": [...]}, where rows is route_message's
-- p_rows. Every returned row carries the 1-based position of its message in p_messages.
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

-- Down Migration
DROP FUNCTION route_messages(jsonb);
