-- Up Migration

-- The router's routing decision for one message in ONE round trip (it used to be a SELECT, then
-- BEGIN, lock, SELECT, one INSERT per destination, COMMIT). Serialised per message by the same
-- advisory lock as before, and done at most once: when the message already has deliveries (a
-- redelivered message.filtered, or a second router racing this one) nothing is inserted and the
-- existing rows are returned with created = false. In READ COMMITTED every statement of a
-- VOLATILE function takes a fresh snapshot, so the SELECT after the lock sees the rows a racing
-- router committed before releasing it.
--
-- p_rows: a jsonb array of objects with the columns named in jsonb_to_recordset below. New rows
-- are attempt 1 and already 'queued': the router publishes their requests right after this
-- returns; a crash before that publish is confirmed leaves message.filtered unacknowledged, and
-- its redelivery publishes the attempt-1 rows that are still 'queued' again (the sender claims
-- an attempt once). If that redelivery never comes, the scheduler re-publishes rows 'queued' for
-- too long (MOAT_QUEUED_REPUBLISH_MS).
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

-- Down Migration
DROP FUNCTION route_message(uuid, jsonb);
