/*
 * aegis_events 0.2.0 -> 0.3.0 (round 2): functions the bridge reads the
 * store through, hardening, agent-run leases, retention.  Each part has its
 * own section below.
 */

\echo Use "ALTER EXTENSION aegis_events UPDATE TO '0.3.0'" to load this file. \quit

/* ---- the bridge's interface: functions instead of SQL over internal tables ---- */

/*
 * What aegis-bridge reads, as functions: the tables stay the extension's
 * own (an upgrade may change them) and the bridge's role needs EXECUTE only.
 * Each is SECURITY DEFINER with a pinned search_path, refuses NULL
 * arguments with an error naming them, and is granted to nobody.
 */

/*
 * Whether a conversation's stream, read up to `after`, has finished: the
 * last conversation event at or before least(after, safe_position) is done
 * or error, no run was requested after it up to `after`, and nothing
 * follows `after` in the stream.  The safe position is computed before the
 * queries take their snapshot (VOLATILE: each statement takes a fresh one).
 */
CREATE FUNCTION aegis.conversation_finished(conversation_id text, after bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos       pg_catalog.int8;
    last_id   pg_catalog.int8;
    last_type pg_catalog.text;
BEGIN
    IF conversation_id IS NULL OR after IS NULL THEN
        RAISE EXCEPTION '% must not be null', CASE WHEN conversation_id IS NULL THEN 'conversation_id' ELSE 'after' END
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the conversation id and the id of the last event read (0: none).';
    END IF;
    IF after < 0 THEN
        RAISE EXCEPTION 'after must be >= 0, got %', after
            USING ERRCODE = 'numeric_value_out_of_range',
                  HINT = 'Pass 0 or the id of the last event read.';
    END IF;
    pos := least(after, aegis.safe_position());
    /* row bounds on events_stream_idx's key, as the C readers use */
    SELECT e.id, e.event_type INTO last_id, last_type
      FROM aegis.events e
     WHERE (e.stream_kind, e.stream_id, e.id) > ('conversation', conversation_finished.conversation_id, 0)
       AND (e.stream_kind, e.stream_id, e.id) <= ('conversation', conversation_finished.conversation_id, pos)
     ORDER BY e.stream_kind DESC, e.stream_id DESC, e.id DESC
     LIMIT 1;
    IF last_type IS NULL OR last_type NOT IN ('done', 'error') THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM aegis.run_requests r
                WHERE r.conversation_id = conversation_finished.conversation_id
                  AND r.event_id > last_id AND r.event_id <= after) THEN
        RETURN false;
    END IF;
    RETURN NOT EXISTS (SELECT 1 FROM aegis.read_stream('conversation',
                                                       conversation_finished.conversation_id, after, 1));
END;
$$;

/* The conversation's latest run request at or below the safe position, 0: none. */
CREATE FUNCTION aegis.conversation_latest_run(conversation_id text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pos pg_catalog.int8;
BEGIN
    IF conversation_id IS NULL THEN
        RAISE EXCEPTION 'conversation_id must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the conversation id.';
    END IF;
    pos := aegis.safe_position();
    RETURN coalesce((SELECT pg_catalog.max(r.event_id) FROM aegis.run_requests r
                                 WHERE r.conversation_id = conversation_latest_run.conversation_id
                                   AND r.event_id <= pos), 0);
END;
$$;

/* A topic's declared settings (aegis.ensure_topic); no row when undeclared. */
CREATE FUNCTION aegis.topic_settings(topic text)
RETURNS TABLE (partitions integer, replication_factor integer)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF topic IS NULL THEN
        RAISE EXCEPTION 'topic must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the Kafka topic name.';
    END IF;
    RETURN QUERY
        SELECT t.partitions, t.replication_factor
          FROM aegis.topics t
         WHERE t.topic = topic_settings.topic;
END;
$$;

/*
 * A consumer group's stored next offsets: one row per element of
 * partitions ([{"topic": text, "partition": integer >= 0}, ...]), in its
 * order; next_offset is NULL where the group stored none.
 */
CREATE FUNCTION aegis.consumer_positions(group_id text, partitions jsonb)
RETURNS TABLE (topic text, "partition" integer, next_offset bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad pg_catalog.int8;
BEGIN
    IF group_id IS NULL OR partitions IS NULL THEN
        RAISE EXCEPTION '% must not be null', CASE WHEN group_id IS NULL THEN 'group_id' ELSE 'partitions' END
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the consumer group and a JSON array of {"topic", "partition"}.';
    END IF;
    IF pg_catalog.jsonb_typeof(partitions) <> 'array' THEN
        RAISE EXCEPTION 'partitions must be a JSON array, got a JSON %', pg_catalog.jsonb_typeof(partitions)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass [{"topic": "name", "partition": 0}, ...].';
    END IF;
    SELECT x.n INTO bad
      FROM pg_catalog.jsonb_array_elements(partitions) WITH ORDINALITY AS x(e, n)
     WHERE CASE WHEN pg_catalog.jsonb_typeof(x.e) <> 'object'
                  OR pg_catalog.jsonb_typeof(x.e->'topic') IS DISTINCT FROM 'string'
                  OR pg_catalog.jsonb_typeof(x.e->'partition') IS DISTINCT FROM 'number' THEN true
                ELSE (x.e->>'partition')::pg_catalog.numeric NOT BETWEEN 0 AND 2147483647
                  OR (x.e->>'partition')::pg_catalog.numeric <> pg_catalog.trunc((x.e->>'partition')::pg_catalog.numeric) END
     ORDER BY x.n
     LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'partitions element % must be {"topic": string, "partition": integer >= 0}', bad
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('Got %s.', pg_catalog.left((partitions->(bad::pg_catalog.int4 - 1))::pg_catalog.text, 200)),
                  HINT = 'Pass [{"topic": "name", "partition": 0}, ...].';
    END IF;
    RETURN QUERY
        SELECT p.e->>'topic', (p.e->>'partition')::pg_catalog.numeric::pg_catalog.int4, o.next_offset
          FROM pg_catalog.jsonb_array_elements(partitions) WITH ORDINALITY AS p(e, n)
          LEFT JOIN aegis.consumer_offsets o
            ON o.group_id = consumer_positions.group_id
           AND o.topic = p.e->>'topic'
           AND o.partition = (p.e->>'partition')::pg_catalog.numeric::pg_catalog.int4
         ORDER BY p.n;
END;
$$;

/* The Kafka drain's lag (aegis.drain_lag), for the bridge's /metrics. */
CREATE FUNCTION aegis.drain_status()
RETURNS TABLE (cursor_position bigint, pending_events bigint, oldest_pending_age interval)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.cursor_position, l.pending_events, l.oldest_pending_age FROM aegis.drain_lag l
$$;

REVOKE ALL ON FUNCTION aegis.conversation_finished(text, bigint),
    aegis.conversation_latest_run(text), aegis.topic_settings(text),
    aegis.consumer_positions(text, jsonb), aegis.drain_status() FROM PUBLIC;



/* ---- hardening ---- */

/*
 * Open publishing transactions.  Each holds the safe position below its
 * first event until it commits or aborts, so one that sits idle holds back
 * every reader (SSE streams, the Kafka drain, wait_all) in every database
 * of the cluster.  aegis.publisher_slots() is order.c's shared memory:
 * backend pid, database, the lowest position the transaction holds open,
 * and the start of the statement that took it.  Internal: granted to nobody.
 */
CREATE FUNCTION aegis.publisher_slots(OUT pid integer, OUT database oid,
                                      OUT first_position bigint,
                                      OUT publishing_since timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'aegis_publisher_slots'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

/*
 * The open publishers, the one holding the safe position back first, with
 * what an operator needs to end it (pg_terminate_backend(pid)): database,
 * role, since when, the session's state ('idle in transaction' is the
 * freeze to look for).  No query text, client address or application name.
 * SECURITY DEFINER so that a role granted this sees the state of every
 * session (pg_stat_activity shows it only to the same role or
 * pg_read_all_stats).
 */
CREATE FUNCTION aegis.open_publishers()
RETURNS TABLE (pid integer, database name, role name, first_position bigint,
               publishing_since timestamptz, publishing_for interval,
               xact_start timestamptz, state text, state_since timestamptz)
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.pid, d.datname, a.usename, s.first_position, s.publishing_since,
           pg_catalog.clock_timestamp() - s.publishing_since,
           a.xact_start, a.state, a.state_change
      FROM aegis.publisher_slots() s
      LEFT JOIN pg_catalog.pg_database d ON d.oid = s.database
      LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = s.pid
     ORDER BY s.first_position
$$;

/* SELECT * FROM aegis.open_publishers (needs SELECT on it and EXECUTE on the function). */
CREATE VIEW aegis.open_publishers AS SELECT * FROM aegis.open_publishers();

/*
 * One row for metrics (aegis-bridge's /metrics): how many publishing
 * transactions are open, and the one holding the safe position back (pid,
 * database, how long it has held it); NULLs when none is open.
 */
CREATE FUNCTION aegis.publisher_status()
RETURNS TABLE (open_publishers integer, oldest_pid integer, oldest_database name,
               oldest_age interval)
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (SELECT * FROM aegis.publisher_slots())
    SELECT (SELECT pg_catalog.count(*) FROM s)::pg_catalog.int4, o.pid, d.datname,
           pg_catalog.clock_timestamp() - o.publishing_since
      FROM (SELECT 1) one
      LEFT JOIN (SELECT * FROM s ORDER BY s.first_position LIMIT 1) o ON true
      LEFT JOIN pg_catalog.pg_database d ON d.oid = o.database
$$;

/*
 * The bridge's and the publishers' needs are EXECUTE on functions: the
 * ones that write the extension's tables run with the owner's rights.  (aegis.consume_batch and
 * aegis.consumer_claim stay the caller's: the consumer's handler runs with
 * its role's rights.)
 */
ALTER FUNCTION aegis.request_run(text, text, text, text) SECURITY DEFINER;
/* declares a topic in aegis.topics: a publisher needs EXECUTE only */
ALTER FUNCTION aegis.ensure_topic(text, integer, integer) SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION aegis.cursor_advance(text, bigint) SECURITY DEFINER;
ALTER FUNCTION aegis.cursor_position(text) SECURITY DEFINER;

REVOKE ALL ON FUNCTION aegis.publisher_slots(), aegis.open_publishers(),
    aegis.publisher_status() FROM PUBLIC;
REVOKE ALL ON aegis.open_publishers FROM PUBLIC;



/* ---- agent runs: claims, leases, retries ---- */


/* ---- retention ---- */

