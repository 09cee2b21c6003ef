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


/*
 * The Kafka drain's dead letters: an event Kafka refused for good (larger
 * than its topic's max.message.bytes, authorization denied, a topic that
 * cannot be created, or a topic outside the bridge's --topic-allow list) is
 * recorded here with the error, and the drain moves on past it instead of
 * retrying it for ever.  The bridge records one through
 * aegis.drain_dead_letter (it writes no table itself); an operator reads
 * the table, fixes the cause and publishes the event again if it matters.
 */
CREATE TABLE aegis.drain_dead_letters (
    event_id    bigint      NOT NULL PRIMARY KEY,
    topic       text        NOT NULL,
    error       text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON aegis.drain_dead_letters FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('aegis.drain_dead_letters', '');

CREATE FUNCTION aegis.drain_dead_letter(id bigint, error text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    IF id IS NULL OR error IS NULL OR error = '' THEN
        RAISE EXCEPTION 'aegis.drain_dead_letter: id and error are required'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the event id and the error Kafka reported.';
    END IF;
    SELECT e.topic INTO t FROM aegis.events e WHERE e.id = drain_dead_letter.id;
    IF t IS NULL THEN
        RAISE EXCEPTION 'aegis.drain_dead_letter: event % does not exist or has no topic', id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Only events published to a Kafka topic are drained.';
    END IF;
    INSERT INTO aegis.drain_dead_letters AS d (event_id, topic, error)
    VALUES (drain_dead_letter.id, t, pg_catalog.left(drain_dead_letter.error, 2000))
    ON CONFLICT (event_id) DO UPDATE SET error = EXCLUDED.error, failed_at = pg_catalog.now();
END;
$$;
REVOKE ALL ON FUNCTION aegis.drain_dead_letter(bigint, text) FROM PUBLIC;

/* drain_lag and drain_status() count the dead letters too */
CREATE OR REPLACE VIEW aegis.drain_lag AS
SELECT c.position AS cursor_position,
       (SELECT count(*) FROM aegis.events e
         WHERE e.topic IS NOT NULL AND e.id > c.position) AS pending_events,
       (SELECT now() - min(e.created_at) FROM aegis.events e
         WHERE e.topic IS NOT NULL AND e.id > c.position) AS oldest_pending_age,
       (SELECT count(*) FROM aegis.drain_dead_letters) AS dead_letters
  FROM (SELECT aegis.cursor_position('kafka-drain') AS position) c;

DROP FUNCTION aegis.drain_status();
CREATE FUNCTION aegis.drain_status()
RETURNS TABLE (cursor_position bigint, pending_events bigint, oldest_pending_age interval,
               dead_letters bigint)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.cursor_position, l.pending_events, l.oldest_pending_age, l.dead_letters
      FROM aegis.drain_lag l
$$;
REVOKE ALL ON FUNCTION aegis.drain_status() FROM PUBLIC;

COMMENT ON FUNCTION aegis.emit_row_event() IS
'Trigger: aegis.emit_row_event(topic [, ''columns=a,b'' | ''exclude=a,b''] [, ''oversize=reference'' | ''oversize=error'']) publishes row changes to topic keyed by the primary key; columns=/exclude= choose the published columns; a row event larger than aegis.max_payload_bytes publishes a reference (table, key, bytes) by default, or fails the statement with oversize=error.';


/* ---- agent runs: claims, leases, retries ---- */

/*
 * A run request is a job.  aegis.request_run (the bridge, on
 * ?message=…) queues it; a worker takes it with aegis.claim_run or
 * aegis.wait_run and holds it by a lease it renews with
 * aegis.heartbeat_run; aegis.finish_run / aegis.fail_run end it with the
 * seed's done / error event in the same transaction.  The clock
 * (aegis.enforce_runs, called by aegis.maintain() from the maintenance
 * worker) fails runs nobody claimed within queue_timeout, puts runs whose
 * lease expired back in the queue and abandons them after max_attempts, so
 * every run ends with exactly one done or error event.  A run's id is its
 * request's event position.  docs/runs.md has the whole protocol.
 */

/* Per agent type; runs of a type without a row get the defaults below. */
CREATE TABLE aegis.agents (
    agent_type    text        NOT NULL PRIMARY KEY,
    queue_timeout interval    NOT NULL DEFAULT '60 s',
    lease         interval    NOT NULL DEFAULT '30 s',
    max_attempts  integer     NOT NULL DEFAULT 3,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agents_queue_timeout_check CHECK (queue_timeout > '0'),
    CONSTRAINT agents_lease_check CHECK (lease > '0'),
    CONSTRAINT agents_max_attempts_check CHECK (max_attempts >= 1)
);

/*
 * The run state on the request row.  attempt counts claims; queued_at is
 * when the run last entered the queue (request, or lease lost); started_at
 * the first claim, claimed_at the latest; end_event_id the done/error.
 * The state is an enum rather than text with a CHECK: the type admits the
 * four states only, and a claim or finish does not compile a CHECK
 * expression per statement (aegis.runs shows it as text).
 */
CREATE TYPE aegis.run_state AS ENUM ('queued', 'running', 'done', 'failed');
ALTER TABLE aegis.run_requests
    ADD COLUMN state            aegis.run_state NOT NULL DEFAULT 'queued',
    ADD COLUMN worker           text,
    ADD COLUMN attempt          integer     NOT NULL DEFAULT 0,
    ADD COLUMN queued_at        timestamptz,
    ADD COLUMN started_at       timestamptz,
    ADD COLUMN claimed_at       timestamptz,
    ADD COLUMN heartbeat_at     timestamptz,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN finished_at      timestamptz,
    ADD COLUMN end_event_id     bigint,
    ADD COLUMN error            text;

/*
 * Requests recorded before 0.3.0: ended by the done/error that followed
 * them, queued otherwise (the clock then ends them: nobody claims an old
 * request within queue_timeout unless a worker runs).
 */
UPDATE aegis.run_requests r
   SET state = CASE t.event_type WHEN 'done' THEN 'done' ELSE 'failed' END::aegis.run_state,
       finished_at = t.created_at, end_event_id = t.id,
       error = t.payload -> 'data' ->> 'error'
  FROM (SELECT r2.event_id, e.id, e.event_type, e.created_at, e.payload
          FROM aegis.run_requests r2
          CROSS JOIN LATERAL (
                SELECT e.id, e.event_type, e.created_at, e.payload FROM aegis.events e
                 WHERE e.stream_kind = 'conversation' AND e.stream_id = r2.conversation_id
                   AND e.id > r2.event_id AND e.event_type IN ('done', 'error')
                 ORDER BY e.id LIMIT 1) e) t
 WHERE r.event_id = t.event_id;
UPDATE aegis.run_requests SET queued_at = requested_at;
ALTER TABLE aegis.run_requests ALTER COLUMN queued_at SET DEFAULT now(),
                               ALTER COLUMN queued_at SET NOT NULL;

/*
 * The queue of one agent type, oldest first; the running runs (the clock
 * reads their leases).  No index has the lease or heartbeat columns, and
 * pages keep room, so a heartbeat is a HOT update: no index entries.
 */
CREATE INDEX run_requests_queue_idx
    ON aegis.run_requests ((coalesce(agent_type, 'default')), event_id)
    WHERE state = 'queued';
CREATE INDEX run_requests_running_idx
    ON aegis.run_requests (event_id) WHERE state = 'running';
ALTER TABLE aegis.run_requests SET (fillfactor = 80);

/*
 * Every run: its state (queued, running, done, failed), worker, attempt,
 * lease expiry and timings.  queue_wait: request to first claim (or until
 * now / the end while never claimed); run_time: first claim to the end.
 */
CREATE VIEW aegis.runs AS
SELECT r.event_id AS run_id,
       r.conversation_id,
       coalesce(r.agent_type, 'default') AS agent_type,
       r.agent_id,
       r.message,
       r.state::text AS state,
       r.worker,
       r.attempt,
       coalesce(a.max_attempts, 3) AS max_attempts,
       r.lease_expires_at,
       r.requested_at,
       r.queued_at,
       r.started_at,
       r.claimed_at,
       r.heartbeat_at,
       r.finished_at,
       coalesce(r.started_at, r.finished_at, clock_timestamp()) - r.requested_at AS queue_wait,
       coalesce(r.finished_at, clock_timestamp()) - r.started_at AS run_time,
       r.end_event_id,
       r.error
  FROM aegis.run_requests r
  LEFT JOIN aegis.agents a ON a.agent_type = coalesce(r.agent_type, 'default');

/* The input checks of aegis.publish_run_request, alone (an error, or nothing). */
CREATE FUNCTION aegis.validate_run_request(conversation_id text, message text,
                                           agent_id text, agent_type text)
RETURNS void
AS 'MODULE_PATHNAME', 'aegis_validate_run_request'
LANGUAGE C STABLE PARALLEL SAFE;

/* Wakes aegis.wait_run callers when the calling transaction commits. */
CREATE FUNCTION aegis.wake_run_waiters()
RETURNS void
AS 'MODULE_PATHNAME', 'aegis_wake_run_waiters'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

/*
 * Declares an agent type (or changes its settings): how long a run may wait
 * for a worker, how long a claim lasts without a heartbeat, how many claims
 * a run gets before it is abandoned.
 */
CREATE FUNCTION aegis.configure_agent(agent_type text,
                                      queue_timeout interval DEFAULT '60 s',
                                      lease interval DEFAULT '30 s',
                                      max_attempts integer DEFAULT 3)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF agent_type IS NULL OR queue_timeout IS NULL OR lease IS NULL OR max_attempts IS NULL THEN
        RAISE EXCEPTION '% must not be null',
              CASE WHEN agent_type IS NULL THEN 'agent_type' WHEN queue_timeout IS NULL THEN 'queue_timeout'
                   WHEN lease IS NULL THEN 'lease' ELSE 'max_attempts' END
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave an argument out to get its default.';
    END IF;
    IF length(agent_type) NOT BETWEEN 1 AND 128 THEN
        RAISE EXCEPTION 'agent_type must be 1 to 128 characters, got %', length(agent_type)
            USING ERRCODE = 'string_data_length_mismatch',
                  HINT = 'Use the agent type the bridge passes as ?agent_type=.';
    END IF;
    IF agent_type !~ '^[A-Za-z0-9_.:-]+$' THEN
        RAISE EXCEPTION 'agent_type "%" contains characters other than letters, digits, _ . : -', agent_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Agent types appear in stream ids: letters, digits, ''_'', ''.'', '':'' and ''-''.';
    END IF;
    IF queue_timeout <= '0' OR queue_timeout > '1 day' THEN
        RAISE EXCEPTION 'queue_timeout must be more than 0 and at most 1 day, got %', queue_timeout
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'How long a run may wait for a worker, e.g. ''60 s''.';
    END IF;
    IF lease <= '0' OR lease > '1 day' THEN
        RAISE EXCEPTION 'lease must be more than 0 and at most 1 day, got %', lease
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'How long a claim lasts without a heartbeat, e.g. ''30 s''.';
    END IF;
    IF max_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'max_attempts must be between 1 and 100, got %', max_attempts
            USING ERRCODE = 'numeric_value_out_of_range',
                  HINT = 'How many claims a run gets before it is abandoned, e.g. 3.';
    END IF;
    INSERT INTO aegis.agents AS a (agent_type, queue_timeout, lease, max_attempts)
    VALUES (configure_agent.agent_type, configure_agent.queue_timeout,
            configure_agent.lease, configure_agent.max_attempts)
    ON CONFLICT ON CONSTRAINT agents_pkey DO UPDATE
        SET queue_timeout = excluded.queue_timeout, lease = excluded.lease,
            max_attempts = excluded.max_attempts, updated_at = now();
END;
$$;

/*
 * Open runs of a conversation that a done or error published outside the
 * run protocol (aegis.publish_done/publish_error) has ended: mark them so.
 * conversation NULL: every open run.  Returns how many.  Rows another
 * transaction holds are left for the next call.
 */
CREATE FUNCTION aegis.runs_settle_ended(conversation text)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    /*
     * Two statements, not "conversation IS NULL OR ...": one plan of that
     * (PL/pgSQL keeps a generic plan) read every open run for one
     * conversation too.
     */
    IF conversation IS NULL THEN
        WITH ended AS (
            SELECT r.event_id, e.id, e.event_type, e.created_at, e.payload
              FROM aegis.run_requests r
              CROSS JOIN LATERAL (
                    SELECT e.id, e.event_type, e.created_at, e.payload FROM aegis.events e
                     WHERE (e.stream_kind, e.stream_id, e.id) > ('conversation', r.conversation_id, r.event_id)
                       AND e.stream_kind = 'conversation' AND e.stream_id = r.conversation_id
                       AND e.event_type IN ('done', 'error')
                     ORDER BY e.stream_kind, e.stream_id, e.id LIMIT 1) e
             WHERE r.state IN ('queued', 'running')
               FOR UPDATE OF r SKIP LOCKED)
        UPDATE aegis.run_requests r
           SET state = CASE ended.event_type WHEN 'done' THEN 'done' ELSE 'failed' END::aegis.run_state,
               finished_at = ended.created_at, end_event_id = ended.id,
               lease_expires_at = NULL, error = ended.payload -> 'data' ->> 'error'
          FROM ended
         WHERE r.event_id = ended.event_id;
    ELSE
        WITH ended AS (
            SELECT r.event_id, e.id, e.event_type, e.created_at, e.payload
              FROM aegis.run_requests r
              CROSS JOIN LATERAL (
                    SELECT e.id, e.event_type, e.created_at, e.payload FROM aegis.events e
                     WHERE (e.stream_kind, e.stream_id, e.id) > ('conversation', r.conversation_id, r.event_id)
                       AND e.stream_kind = 'conversation' AND e.stream_id = r.conversation_id
                       AND e.event_type IN ('done', 'error')
                     ORDER BY e.stream_kind, e.stream_id, e.id LIMIT 1) e
             WHERE r.conversation_id = conversation AND r.state IN ('queued', 'running')
               FOR UPDATE OF r SKIP LOCKED)
        UPDATE aegis.run_requests r
           SET state = CASE ended.event_type WHEN 'done' THEN 'done' ELSE 'failed' END::aegis.run_state,
               finished_at = ended.created_at, end_event_id = ended.id,
               lease_expires_at = NULL, error = ended.payload -> 'data' ->> 'error'
          FROM ended
         WHERE r.event_id = ended.event_id;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

/*
 * Records a run request (the bridge, for ?message=…) and returns its event
 * position, the run's id.  The same request again while its run is queued
 * or running returns that run (EventSource repeats its URL); once the run
 * ended (done, or failed: final) the same message starts a new run.
 * Refused: an agent type without aegis.configure_agent row while
 * aegis.require_configured_agents is on (SQLSTATE 23503), and a run beyond
 * aegis.max_open_runs open ones of the conversation (SQLSTATE 23P01).
 */
CREATE OR REPLACE FUNCTION aegis.request_run(conversation_id text, message text,
                                             agent_id text DEFAULT NULL, agent_type text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run bigint;
    open_runs integer;
    max_open integer := current_setting('aegis.max_open_runs')::integer;
BEGIN
    PERFORM aegis.validate_run_request(conversation_id, message, agent_id, agent_type);
    IF current_setting('aegis.require_configured_agents')::boolean
       AND NOT EXISTS (SELECT 1 FROM aegis.agents a
                        WHERE a.agent_type = coalesce(request_run.agent_type, 'default')) THEN
        RAISE EXCEPTION 'agent type "%" is not configured', coalesce(request_run.agent_type, 'default')
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'aegis.require_configured_agents is on: runs are accepted only for agent types with an aegis.configure_agent row.',
                  HINT = 'Pass the agent_type of a configured agent, or have the administrator run aegis.configure_agent.';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('aegis.run_request'), hashtext(conversation_id));
    PERFORM aegis.runs_settle_ended(conversation_id);
    SELECT r.event_id INTO run
      FROM aegis.run_requests r
     WHERE r.conversation_id = request_run.conversation_id
       AND r.state IN ('queued', 'running')
       AND r.message = request_run.message
       AND r.agent_id IS NOT DISTINCT FROM request_run.agent_id
       AND r.agent_type IS NOT DISTINCT FROM request_run.agent_type
     ORDER BY r.event_id DESC
     LIMIT 1;
    IF run IS NOT NULL THEN
        RETURN run;
    END IF;
    SELECT count(*) INTO open_runs
      FROM aegis.run_requests r
     WHERE r.conversation_id = request_run.conversation_id
       AND r.state IN ('queued', 'running');
    IF open_runs >= max_open THEN
        RAISE EXCEPTION 'conversation "%" already has % open run(s)', conversation_id, open_runs
            USING ERRCODE = 'exclusion_violation',
                  DETAIL = format('aegis.max_open_runs is %s; a run is open until its done or error event.', max_open),
                  HINT = 'Wait for the open run to end (or resend the same message to follow it).';
    END IF;
    run := aegis.publish_run_request(conversation_id, message, agent_id, agent_type);
    INSERT INTO aegis.run_requests (event_id, conversation_id, message, agent_id, agent_type)
    VALUES (run, conversation_id, message, agent_id, agent_type);
    PERFORM aegis.wake_run_waiters();
    RETURN run;
END;
$$;

/* claim_run / wait_run: the claimed runs (in C, extension/runs.c) */
CREATE TYPE aegis.claimed_run AS (
    run_id          bigint,
    conversation_id text,
    message         text,
    agent_id        text,
    agent_type      text,
    attempt         integer,
    requested_at    timestamptz
);

/*
 * Claims up to max_runs queued runs of agent_type for worker, oldest first,
 * with FOR UPDATE SKIP LOCKED (two workers never get the same run).  Each
 * claim starts a lease of the agent type's length and counts an attempt.
 */
CREATE FUNCTION aegis.claim_run(agent_type text, worker text, max_runs integer DEFAULT 1)
RETURNS SETOF aegis.claimed_run
AS 'MODULE_PATHNAME', 'aegis_claim_run'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

/*
 * claim_run of one run that, when none is queued, sleeps until a commit
 * queues one (woken by that commit, no polling) and returns none after
 * timeout_ms (0 to 60000).
 */
CREATE FUNCTION aegis.wait_run(agent_type text, worker text, timeout_ms integer DEFAULT 10000)
RETURNS SETOF aegis.claimed_run
AS 'MODULE_PATHNAME', 'aegis_wait_run'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

/*
 * The run, locked, when worker holds it (running, claimed by worker, lease
 * not expired); a clear error otherwise: 22023 for an unknown run, 55000
 * when the run is not (or no longer) this worker's, so the worker stops.
 */
CREATE FUNCTION aegis.runs_held(run_id bigint, worker text)
RETURNS aegis.run_requests
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r aegis.run_requests;
BEGIN
    IF run_id IS NULL OR worker IS NULL THEN
        RAISE EXCEPTION '% must not be null', CASE WHEN run_id IS NULL THEN 'run_id' ELSE 'worker' END
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the run_id that claim_run returned and the worker name that claimed it.';
    END IF;
    SELECT * INTO r FROM aegis.run_requests q WHERE q.event_id = runs_held.run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % does not exist', run_id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the run_id that aegis.claim_run or aegis.wait_run returned.';
    END IF;
    IF r.state <> 'running' OR r.worker IS DISTINCT FROM runs_held.worker
       OR r.lease_expires_at <= clock_timestamp() THEN
        RAISE EXCEPTION 'run % is not held by worker "%"', run_id, worker
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = CASE
                      WHEN r.state IN ('done', 'failed') THEN format('The run has ended (%s).', r.state)
                      WHEN r.state = 'queued' THEN format('The lease was lost: the run is back in the queue after attempt %s.', r.attempt)
                      WHEN r.worker IS DISTINCT FROM runs_held.worker THEN format('Worker "%s" holds it (attempt %s).', r.worker, r.attempt)
                      ELSE format('The lease expired at %s.', r.lease_expires_at) END,
                  HINT = 'Stop working on this run: another attempt may be under way.';
    END IF;
    RETURN r;
END;
$$;

/* Extends worker's lease on the run; returns the new expiry. */
CREATE FUNCTION aegis.heartbeat_run(run_id bigint, worker text)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expires timestamptz;
BEGIN
    /* (a run back in the queue or taken meanwhile: the row no longer matches) */
    UPDATE aegis.run_requests q
       SET heartbeat_at = clock_timestamp(),
           lease_expires_at = clock_timestamp() + coalesce(
               (SELECT a.lease FROM aegis.agents a WHERE a.agent_type = coalesce(q.agent_type, 'default')), '30 s')
     WHERE q.event_id = heartbeat_run.run_id AND q.state = 'running'
       AND q.worker = heartbeat_run.worker AND q.lease_expires_at > clock_timestamp()
    RETURNING q.lease_expires_at INTO expires;
    IF expires IS NULL THEN
        PERFORM aegis.runs_held(run_id, worker);    /* raises why */
    END IF;
    RETURN expires;
END;
$$;

/*
 * Ends worker's run: publishes the seed's done event for the conversation
 * and marks the run done, in one statement of the caller's transaction
 * (extension/runs.c, one kept plan).  Returns the done event's id.  The
 * UPDATE is the check that the worker holds the run; when it does not,
 * aegis.runs_held raises why and the error rolls the event back.
 */
CREATE FUNCTION aegis.finish_run(run_id bigint, worker text, execution_id text,
                                 status text DEFAULT 'completed',
                                 tokens_used integer DEFAULT NULL,
                                 cost_usd numeric DEFAULT NULL,
                                 skills_injected text[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_finish_run'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

/*
 * Fails worker's run for good: publishes the seed's error event and marks
 * the run failed, in one statement (as finish_run).  Returns the error
 * event's id.
 */
CREATE FUNCTION aegis.fail_run(run_id bigint, worker text, error text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_fail_run'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

/*
 * Gives worker's run back (a worker shutting down): queued again at once,
 * for another worker, without counting the attempt.
 */
CREATE FUNCTION aegis.release_run(run_id bigint, worker text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE aegis.run_requests q
       SET state = 'queued', worker = NULL, attempt = q.attempt - 1,
           queued_at = clock_timestamp(), lease_expires_at = NULL
     WHERE q.event_id = release_run.run_id AND q.state = 'running'
       AND q.worker = release_run.worker AND q.lease_expires_at > clock_timestamp();
    IF NOT FOUND THEN
        PERFORM aegis.runs_held(run_id, worker);    /* raises why */
    END IF;
    PERFORM aegis.wake_run_waiters();
END;
$$;

/*
 * The clock, in one transaction: runs ended by a done/error published
 * outside the protocol are marked so; queued runs older than their
 * queue_timeout fail with error "no worker available for agent type X";
 * running runs whose lease expired go back to the queue, or after
 * max_attempts claims fail with "run abandoned after N attempts".  Each
 * failure publishes the seed's error event once (the row is locked and
 * its state changes in the same transaction).  Rows a worker holds locked
 * right now are left for the next round.  Returns the counts.
 */
CREATE FUNCTION aegis.enforce_runs()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    msg text;
    settled integer;
    timed_out integer := 0;
    requeued integer := 0;
    abandoned integer := 0;
BEGIN
    settled := aegis.runs_settle_ended(NULL);
    FOR r IN
        SELECT q.event_id, q.conversation_id, coalesce(q.agent_type, 'default') AS agent_type
          FROM aegis.run_requests q
          LEFT JOIN aegis.agents a ON a.agent_type = coalesce(q.agent_type, 'default')
         WHERE q.state = 'queued'
           AND q.queued_at + coalesce(a.queue_timeout, '60 s') <= clock_timestamp()
         ORDER BY q.event_id
           FOR UPDATE OF q SKIP LOCKED
    LOOP
        msg := format('no worker available for agent type %s', r.agent_type);
        UPDATE aegis.run_requests q
           SET state = 'failed', finished_at = clock_timestamp(), error = msg,
               end_event_id = aegis.publish_error(r.conversation_id, msg)
         WHERE q.event_id = r.event_id;
        timed_out := timed_out + 1;
    END LOOP;
    FOR r IN
        SELECT q.event_id, q.conversation_id, q.attempt, coalesce(a.max_attempts, 3) AS max_attempts
          FROM aegis.run_requests q
          LEFT JOIN aegis.agents a ON a.agent_type = coalesce(q.agent_type, 'default')
         WHERE q.state = 'running' AND q.lease_expires_at <= clock_timestamp()
         ORDER BY q.event_id
           FOR UPDATE OF q SKIP LOCKED
    LOOP
        IF r.attempt >= r.max_attempts THEN
            msg := format('run abandoned after %s attempts', r.attempt);
            UPDATE aegis.run_requests q
               SET state = 'failed', finished_at = clock_timestamp(), error = msg,
                   lease_expires_at = NULL,
                   end_event_id = aegis.publish_error(r.conversation_id, msg)
             WHERE q.event_id = r.event_id;
            abandoned := abandoned + 1;
        ELSE
            UPDATE aegis.run_requests q
               SET state = 'queued', worker = NULL, queued_at = clock_timestamp(),
                   lease_expires_at = NULL
             WHERE q.event_id = r.event_id;
            requeued := requeued + 1;
        END IF;
    END LOOP;
    IF requeued > 0 THEN
        PERFORM aegis.wake_run_waiters();
    END IF;
    RETURN jsonb_build_object('settled', settled, 'timed_out', timed_out,
                              'requeued', requeued, 'abandoned', abandoned);
END;
$$;

/*
 * Everything that keeps the store in shape, in one call: the maintenance
 * worker runs it every aegis.maintenance_naptime in aegis.database_name;
 * other databases schedule it with pg_cron:
 *   SELECT cron.schedule('aegis maintenance', '1 second', 'SELECT aegis.maintain()');
 * Returns what each part did.
 */
CREATE FUNCTION aegis.maintain()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN jsonb_build_object('runs', aegis.enforce_runs());
END;
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aegis FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA aegis FROM PUBLIC;


/* ---- retention ---- */


/*
 * Retention (docs/retention.md).  Policies say how long events, dead
 * letters and finished run requests are kept; aegis.enforce_retention()
 * applies them in bounded batches and aegis.maintain() calls it every
 * aegis.retention_interval.  The rules that do not bend:
 *   - an event with a Kafka topic goes only after the drain delivered it
 *     (its id at or below the 'kafka-drain' cursor), unless its topic's
 *     policy says force;
 *   - only events at or below the safe position are ever looked at, so a
 *     transaction that commits late with an old position is never skipped
 *     by a sweep;
 *   - a stream's horizon (aegis.stream_horizon) is the highest position of
 *     that stream removed so far: a reader resuming below it is told.
 * Storage: aegis.events becomes a table partitioned by range of id
 * (aegis.partition_width positions per partition, made ahead of need by
 * aegis.maintain()); a closed partition whose every row has expired is
 * dropped whole.  Rows of partitions that cannot go whole are deleted in
 * batches of batch_rows rows (one id window of the primary key per DELETE,
 * never a full scan) and the space is reused after autovacuum, which is
 * tuned tighter on the partitions below.
 */

/* One row per policy.  target: stream (name = kind or '*'), topic (name =
 * topic or '*'), dead_letters, run_requests (name = ''). */
CREATE TABLE aegis.retention_policies (
    target        text        NOT NULL,
    name          text        NOT NULL,
    keep          interval    NOT NULL,
    force         boolean     NOT NULL DEFAULT false,
    swept_through bigint      NOT NULL DEFAULT 0,
    topic_through bigint      NOT NULL DEFAULT 0,
    removed       bigint      NOT NULL DEFAULT 0,
    enforced_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, name),
    CONSTRAINT retention_policies_target_check
        CHECK (target IN ('stream', 'topic', 'dead_letters', 'run_requests')),
    CONSTRAINT retention_policies_keep_check CHECK (keep >= '0')
);
COMMENT ON COLUMN aegis.retention_policies.swept_through IS
    'every event of the policy at or below this id was expired when swept (removed unless undelivered)';
COMMENT ON COLUMN aegis.retention_policies.topic_through IS
    'stream policies: undelivered topic events at or below this id were removed once the drain delivered them';

/* Per stream, the highest position removed so far. */
CREATE TABLE aegis.stream_horizons (
    stream_kind text   NOT NULL,
    stream_id   text   NOT NULL,
    horizon     bigint NOT NULL,
    PRIMARY KEY (stream_kind, stream_id)
);

/* When the drain's cursor was seen where: delivery times for topic policies. */
CREATE TABLE aegis.drain_marks (
    marked_at timestamptz NOT NULL PRIMARY KEY,
    position  bigint      NOT NULL
);

/* The last enforcement (one row), for aegis.retention_interval. */
CREATE TABLE aegis.retention_state (
    only_row      boolean     NOT NULL DEFAULT true PRIMARY KEY CHECK (only_row),
    enforced_at   timestamptz,
    removed_total bigint      NOT NULL DEFAULT 0,
    batch_rows    integer     NOT NULL DEFAULT 10000 CHECK (batch_rows BETWEEN 1 AND 1000000),
    max_batches   integer     NOT NULL DEFAULT 200 CHECK (max_batches >= 1),
    partitions_dropped bigint NOT NULL DEFAULT 0,
    rows_dropped  bigint      NOT NULL DEFAULT 0,
    drop_failed   boolean     NOT NULL DEFAULT false
);
COMMENT ON COLUMN aegis.retention_state.drop_failed IS
    'the last enforcement could not drop its partitions (lock not granted in 50 ms): the next one deletes their rows in batches instead';
COMMENT ON COLUMN aegis.retention_state.rows_dropped IS
    'events removed with their partition (included in removed_total)';
INSERT INTO aegis.retention_state DEFAULT VALUES;

/* bounded scans for dead letters and finished runs */
CREATE INDEX dead_letters_failed_at_idx ON aegis.dead_letters (failed_at);
CREATE INDEX run_requests_finished_idx ON aegis.run_requests (finished_at)
    WHERE state IN ('done', 'failed');

/* Dead rows are vacuumed (and their space reused) after 2% instead of 20%. */
ALTER TABLE aegis.events SET (autovacuum_vacuum_scale_factor = 0.02,
                              autovacuum_vacuum_threshold = 5000,
                              autovacuum_vacuum_cost_delay = 0);

/*
 * ---- retention: partitioned storage ----
 *
 * aegis.events becomes a table partitioned by range of id.  The old table
 * becomes its first partition, events_p0, for [MINVALUE, max(id) + 1) (an
 * empty one, as in a fresh install, is dropped instead); the partitions
 * after it are made by aegis.partitions_extend,
 * aegis.partition_width positions each, named events_p<lower bound>.  No
 * DEFAULT partition (it would make every ATTACH lock and scan it): a
 * position above the last partition makes the publishing backend extend the
 * table itself (store.c), and aegis.maintain() keeps aegis.partitions_ahead
 * empty partitions above the safe position so that this stays rare.
 */

/* The partitions of aegis.events with their bounds (lo NULL: MINVALUE). */
CREATE FUNCTION aegis.event_partitions(OUT partition regclass, OUT lo bigint, OUT hi bigint)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid::regclass,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''?(-?[0-9]+)''?\)'))[1]::bigint,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''?(-?[0-9]+)''?\)'))[1]::bigint
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'aegis.events'::regclass
     ORDER BY 3
$$;

CREATE VIEW aegis.event_partitions AS SELECT * FROM aegis.event_partitions();

/*
 * Makes partitions after the last one until the last bound is above
 * `upto` plus `ahead` partitions (position `upto` has a partition, and so
 * do the next ahead * aegis.partition_width positions); returns how many it
 * made.  Called by aegis.maintain() and the maintenance worker with the
 * safe position, and by a publishing backend (store.c) with a position
 * that has no partition yet.  Each is a
 * new table (with the TRUNCATE guard; the row guard comes with ATTACH) that
 * is then attached, which takes SHARE UPDATE EXCLUSIVE on aegis.events: no
 * conflict with publishers or readers.  One caller at a time.
 */
CREATE FUNCTION aegis.partitions_extend(upto bigint, ahead integer DEFAULT 0)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    width bigint;
    top bigint;
    hi bigint;
    made integer := 0;
    part text;
BEGIN
    IF upto IS NULL OR upto < 0 OR ahead IS NULL OR ahead < 0 OR ahead > 100 THEN
        RAISE EXCEPTION 'upto must be >= 0 and ahead between 0 and 100, got % and %',
                        coalesce(upto::text, 'NULL'), coalesce(ahead::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'aegis.maintain() calls this with the safe position.';
    END IF;
    width := current_setting('aegis.partition_width')::bigint;
    /* not converted yet (aegis.partition_events) */
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = 'aegis.events'::regclass) <> 'p' THEN
        RETURN 0;
    END IF;
    /* nothing to make: no lock (a caller's long transaction would hold it) */
    IF (SELECT max(p.hi) FROM aegis.event_partitions() p) > upto + ahead * width THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('aegis.partitions_extend'));
    SELECT max(p.hi) INTO top FROM aegis.event_partitions() p;
    top := coalesce(top, upto);    -- none yet: from the position on
    WHILE top <= upto + ahead * width LOOP
        /* more than a partition behind (nothing made ahead while positions moved on,
         * e.g. in other databases): one empty partition fills the gap */
        hi := CASE WHEN top + width <= upto THEN upto - (upto - top) % width ELSE top + width END;
        part := 'events_p' || top;
        EXECUTE format('CREATE TABLE aegis.%I (LIKE aegis.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
                       ' WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 5000,'
                       ' autovacuum_vacuum_cost_delay = 0)', part);
        EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON aegis.%I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION aegis.refuse_change()', part);
        EXECUTE format('ALTER TABLE aegis.events ATTACH PARTITION aegis.%I FOR VALUES FROM (%s) TO (%s)',
                       part, top, hi);
        /* a member of the extension like the parent (inside the extension's script it already is) */
        IF NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = format('aegis.%I', part)::regclass
                          AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
            EXECUTE format('ALTER EXTENSION aegis_events ADD TABLE aegis.%I', part);
        END IF;
        top := hi;
        made := made + 1;
    END LOOP;
    RETURN made;
END;
$$;

/*
 * The extension's ACCESS SHARE lock, which every maintenance worker
 * transaction takes first: DROP EXTENSION takes it (ACCESS EXCLUSIVE) before
 * anything else, so a DROP and aegis.maintain() queue on this one lock
 * rather than deadlocking on the extension's tables.  aegis.maintain() takes
 * it through aegis.partition_events, its first call.
 */
CREATE FUNCTION aegis.maintenance_lock()
RETURNS void
AS 'MODULE_PATHNAME', 'aegis_maintenance_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

/*
 * The conversion, under ACCESS EXCLUSIVE on the old table: one scan to
 * validate CHECK (id < bound), so that ATTACH does not scan again; the
 * indexes attach to the parent's without a rebuild.  Views that read the
 * old table are replaced to read the new one, and functions whose row type
 * is the old table's are recreated with their privileges (and made members
 * of the extension again when this runs outside the extension's script).
 * Anything else that depends on the old table stops it.
 *
 * When: this script converts an empty store at once (a fresh install).  A
 * populated one is converted by the first aegis.maintain() after the
 * upgrade (the maintenance worker's, within a second), in a transaction of
 * its own, so that the upgrade's transaction never holds the store's lock:
 * publishers wait only for the conversion itself (measured in
 * docs/retention.md), not for whatever else the upgrading transaction
 * does.  With `try`, the lock is waited for at most 1 s (a long reader
 * would otherwise make every publisher queue behind the conversion) and
 * false is returned when it was not granted.  Returns whether it converted.
 */
CREATE FUNCTION aegis.partition_events(try boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $convert$
DECLARE
    bound bigint;
    populated boolean;
    owner oid;
    r record;
    views jsonb;
    funcs jsonb;
    acl record;
    rowtype oid;
    saved_timeout text := current_setting('lock_timeout');
BEGIN
    PERFORM aegis.maintenance_lock();    -- before any other lock (DROP EXTENSION)
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('aegis.events')) = 'p' THEN
        RETURN false;
    END IF;
    BEGIN
        IF try THEN
            PERFORM set_config('lock_timeout', '1s', true);
        END IF;
        LOCK TABLE aegis.events IN ACCESS EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RETURN false;
    END;
    PERFORM set_config('lock_timeout', saved_timeout, true);
    /* converted by another caller while this one waited */
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('aegis.events')) = 'p' THEN
        RETURN false;
    END IF;
    rowtype := 'aegis.events'::regtype;
    SELECT c.relowner INTO owner FROM pg_class c WHERE c.oid = 'aegis.events'::regclass;

    /* anything but our own indexes, constraints, triggers, row type and views stops here */
    FOR r IN SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS what
               FROM pg_depend d
              WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = 'aegis.events'::regclass
                AND NOT (d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
                AND NOT (d.classid = 'pg_constraint'::regclass
                         AND d.objid IN (SELECT c.oid FROM pg_constraint c
                                          WHERE c.conrelid = 'aegis.events'::regclass))
                AND NOT (d.classid = 'pg_trigger'::regclass
                         AND d.objid IN (SELECT t.oid FROM pg_trigger t
                                          WHERE t.tgrelid = 'aegis.events'::regclass))
                AND NOT (d.classid = 'pg_type'::regclass AND d.objid = rowtype)
                AND NOT d.classid = 'pg_rewrite'::regclass
              UNION ALL
             SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
               FROM pg_depend d
              WHERE d.refclassid = 'pg_type'::regclass AND d.refobjid = rowtype
                AND NOT d.classid = 'pg_proc'::regclass
                AND NOT (d.classid = 'pg_type'::regclass AND d.deptype = 'i')
    LOOP
        RAISE EXCEPTION 'cannot partition aegis.events: % depends on it', r.what
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Drop that object, upgrade, and create it again.';
    END LOOP;

    SELECT coalesce(jsonb_agg(to_jsonb(v) ORDER BY v.oid), '[]') INTO views
      FROM (SELECT DISTINCT w.ev_class AS oid, w.ev_class::regclass::text AS name,
                   pg_get_viewdef(w.ev_class) AS def
              FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = 'aegis.events'::regclass
               AND w.ev_class <> 'aegis.events'::regclass) v;
    SELECT coalesce(jsonb_agg(to_jsonb(f) ORDER BY f.oid), '[]') INTO funcs
      FROM (SELECT DISTINCT p.oid, p.oid::regprocedure::text AS sig, pg_get_functiondef(p.oid) AS def,
                   p.proacl::text[] AS proacl, p.proowner::regrole::text AS owner,
                   obj_description(p.oid, 'pg_proc') AS comment
              FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
             WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_type'::regclass
               AND d.refobjid = rowtype) f;

    /* positions at or below the safe position are final: no partition needed below it */
    SELECT greatest(coalesce(max(e.id), 0),
                    CASE WHEN current_setting('transaction_isolation') = 'read committed'
                         THEN aegis.safe_position() ELSE 0 END) + 1,
           count(*) > 0
      INTO bound, populated FROM (SELECT e.id FROM aegis.events e ORDER BY e.id DESC LIMIT 1) e;

    DROP TRIGGER events_append_only ON aegis.events;    /* the parent's is cloned onto it */
    ALTER TABLE aegis.events RENAME CONSTRAINT events_pkey TO events_p0_pkey;
    ALTER INDEX aegis.events_stream_idx RENAME TO events_p0_stream_idx;
    ALTER INDEX aegis.events_topic_idx RENAME TO events_p0_topic_idx;
    ALTER TABLE aegis.events RENAME TO events_p0;
    IF populated THEN
        EXECUTE format('ALTER TABLE aegis.events_p0 ADD CONSTRAINT events_p0_bound CHECK (id < %s)', bound);
    END IF;

    CREATE TABLE aegis.events (
        id          bigint      NOT NULL,
        stream_kind text        NOT NULL,
        stream_id   text        NOT NULL,
        event_type  text        NOT NULL,
        payload     jsonb       NOT NULL,
        topic       text,
        key         text,
        headers     jsonb,
        created_at  timestamptz NOT NULL,
        CONSTRAINT events_pkey PRIMARY KEY (id),
        CONSTRAINT events_stream_kind_check
            CHECK (stream_kind IN ('workspace', 'conversation', 'topic', 'run'))
    ) PARTITION BY RANGE (id);
    COMMENT ON TABLE aegis.events IS
        'aegis_events store: append-only; id is the commit-safe position; partitioned by range of id';
    CREATE INDEX events_stream_idx ON aegis.events (stream_kind, stream_id, id);
    CREATE INDEX events_topic_idx ON aegis.events (id) WHERE topic IS NOT NULL;
    CREATE TRIGGER events_append_only
        BEFORE UPDATE OR DELETE ON aegis.events
        FOR EACH ROW EXECUTE FUNCTION aegis.refuse_change();
    CREATE TRIGGER events_no_truncate
        BEFORE TRUNCATE ON aegis.events
        FOR EACH STATEMENT EXECUTE FUNCTION aegis.refuse_change();
    EXECUTE format('ALTER TABLE aegis.events OWNER TO %s', owner::regrole::text);
    IF populated THEN
        EXECUTE format('ALTER TABLE aegis.events ATTACH PARTITION aegis.events_p0 FOR VALUES FROM (MINVALUE) TO (%s)',
                       bound);
    END IF;
    /* the table's privileges, granted to the same roles */
    FOR acl IN SELECT a.grantee, a.privilege_type, a.is_grantable
                 FROM pg_class c, aclexplode(c.relacl) a
                WHERE c.oid = 'aegis.events_p0'::regclass AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON aegis.events TO %s%s', acl.privilege_type,
                       CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE acl.grantee::regrole::text END,
                       CASE WHEN acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;

    FOR r IN SELECT * FROM jsonb_to_recordset(funcs) AS f(sig text, def text, proacl text[],
                                                          owner text, comment text) LOOP
        IF EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = r.sig::regprocedure
                      AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
            EXECUTE format('ALTER EXTENSION aegis_events DROP FUNCTION %s', r.sig);
        END IF;
        EXECUTE format('DROP FUNCTION %s', r.sig);
        EXECUTE r.def;
        EXECUTE format('ALTER FUNCTION %s OWNER TO %s', r.sig, r.owner);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.sig);
        FOR acl IN SELECT a.grantee, a.is_grantable FROM aclexplode(r.proacl::aclitem[]) a
                    WHERE a.grantee <> r.owner::regrole LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', r.sig,
                           CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE acl.grantee::regrole::text END,
                           CASE WHEN acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        IF r.comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON FUNCTION %s IS %L', r.sig, r.comment);
        END IF;
    END LOOP;
    FOR r IN SELECT * FROM jsonb_to_recordset(views) AS v(name text, def text) LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', r.name, r.def);
    END LOOP;
    /* outside the extension's script, new objects are not members by themselves */
    FOR r IN SELECT 'pg_class'::regclass AS classid, 'aegis.events'::regclass::oid AS objid,
                    'TABLE aegis.events' AS what
              UNION ALL
             SELECT 'pg_proc'::regclass, f.sig::regprocedure::oid, 'FUNCTION ' || f.sig
               FROM jsonb_to_recordset(funcs) AS f(sig text) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = r.classid AND d.objid = r.objid
                          AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
            EXECUTE 'ALTER EXTENSION aegis_events ADD ' || r.what;
        END IF;
    END LOOP;
    /* an empty store (a fresh install) needs no partition below the safe position */
    IF NOT populated THEN
        ALTER EXTENSION aegis_events DROP TABLE aegis.events_p0;
        DROP TABLE aegis.events_p0;
    END IF;

    PERFORM aegis.partitions_extend(bound, current_setting('aegis.partitions_ahead')::integer);
    RETURN true;
END;
$convert$;

/* An empty store is converted now; a populated one by aegis.maintain(). */
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM aegis.events) THEN
        PERFORM aegis.partition_events();
    END IF;
END;
$$;

/* Argument checks: each raises 22xxx naming the argument, with a hint. */
CREATE FUNCTION aegis.retention_check_keep(keep interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF keep < '0'::interval THEN
        RAISE EXCEPTION 'keep must not be negative, got %', keep
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass how long to keep, e.g. ''7 days''; NULL removes the policy (keep for ever).';
    END IF;
END;
$$;

CREATE FUNCTION aegis.retention_check_kind(stream_kind text, allow_default boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF stream_kind IS NULL
       OR stream_kind NOT IN ('workspace', 'conversation', 'run', 'topic')
          AND NOT (allow_default AND stream_kind = '*') THEN
        RAISE EXCEPTION 'stream_kind must be one of workspace, conversation, run, topic%, got %',
                        CASE WHEN allow_default THEN ' or *' ELSE '' END,
                        coalesce(quote_literal(stream_kind), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = CASE WHEN allow_default
                              THEN 'Use * for the default of every kind without a policy of its own.'
                              ELSE 'A stream is a kind and an id, e.g. (''workspace'', ''chk-1'').' END;
    END IF;
END;
$$;

/* Sets (or with keep NULL removes) a policy; a changed policy sweeps again. */
CREATE FUNCTION aegis.retention_put(target text, name text, keep interval, force boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF keep IS NULL THEN
        DELETE FROM aegis.retention_policies p WHERE p.target = retention_put.target
                                                AND p.name = retention_put.name;
        RETURN;
    END IF;
    INSERT INTO aegis.retention_policies AS p (target, name, keep, force)
    VALUES (target, name, keep, force)
    ON CONFLICT ON CONSTRAINT retention_policies_pkey DO UPDATE
        SET keep = excluded.keep, force = excluded.force, updated_at = now(),
            swept_through = 0, topic_through = 0;
END;
$$;

/* aegis.set_retention(stream_kind, keep): kind is workspace, conversation, run, topic or *. */
CREATE FUNCTION aegis.set_retention(stream_kind text, keep interval)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM aegis.retention_check_kind(stream_kind, true);
    PERFORM aegis.retention_check_keep(keep);
    PERFORM aegis.retention_put('stream', stream_kind, keep, false);
END;
$$;

/*
 * aegis.set_topic_retention(topic, keep, force): events with that Kafka
 * topic (* for every topic without a policy of its own) are kept `keep`
 * after the drain delivered them; with force, `keep` after they were
 * published, delivered or not.
 */
CREATE FUNCTION aegis.set_topic_retention(topic text, keep interval, force boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF topic IS NULL OR topic = '' THEN
        RAISE EXCEPTION 'topic must be a topic name or *, got %', coalesce(quote_literal(topic), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name a topic events were published to, or * for every topic.';
    END IF;
    IF topic <> '*' AND keep IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM aegis.retention_policies p
                        WHERE p.target = 'topic' AND p.name = set_topic_retention.topic)
       AND NOT EXISTS (SELECT 1 FROM aegis.topics t WHERE t.topic = set_topic_retention.topic)
       AND NOT EXISTS (SELECT 1 FROM aegis.events e WHERE e.topic = set_topic_retention.topic) THEN
        RAISE EXCEPTION 'topic "%" is unknown', topic
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'No event has that topic and aegis.ensure_topic did not declare it.',
                  HINT = 'Declare it first with aegis.ensure_topic(topic), or use * for every topic.';
    END IF;
    IF force IS NULL THEN
        RAISE EXCEPTION 'force must be true or false, got NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'force => true removes events the drain has not delivered.';
    END IF;
    PERFORM aegis.retention_check_keep(keep);
    PERFORM aegis.retention_put('topic', topic, keep, force);
END;
$$;

CREATE FUNCTION aegis.set_dead_letter_retention(keep interval)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM aegis.retention_check_keep(keep);
    PERFORM aegis.retention_put('dead_letters', '', keep, false);
END;
$$;

/* Finished (done or failed) run requests, counted from finished_at. */
CREATE FUNCTION aegis.set_run_retention(keep interval)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM aegis.retention_check_keep(keep);
    PERFORM aegis.retention_put('run_requests', '', keep, false);
END;
$$;

/* The position at or below which events of the stream may have been removed; 0 if none were. */
CREATE FUNCTION aegis.stream_horizon(stream_kind text, stream_id text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM aegis.retention_check_kind(stream_kind, false);
    IF stream_id IS NULL THEN
        RAISE EXCEPTION 'stream_id must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'A stream is a kind and an id, e.g. (''workspace'', ''chk-1'').';
    END IF;
    RETURN coalesce((SELECT h.horizon FROM aegis.stream_horizons h
                      WHERE h.stream_kind = stream_horizon.stream_kind
                        AND h.stream_id = stream_horizon.stream_id), 0);
END;
$$;

/*
 * A resuming SSE client's first replay batch: aegis.read_stream's rows
 * after `after`, then the stream's horizon read in a statement of its own
 * (VOLATILE: a snapshot taken after the rows').  When the horizon is above
 * `after` the rows are not to be trusted (retention may have removed some of
 * them before they were read): then the result ends with one row whose id
 * is NULL, event_type 'reset', payload the position to replay the retained
 * events after (0; a conversation: its latest run request) and horizon the
 * horizon.  A removal either committed before the rows were read (the
 * horizon read after them shows it) or after (the rows have the events).
 */
CREATE FUNCTION aegis.read_stream_resume(stream_kind text, stream_id text, after bigint,
                                         max_events integer DEFAULT 1000)
RETURNS TABLE (id bigint, event_type text, payload text, horizon bigint)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h bigint;
BEGIN
    RETURN QUERY SELECT r.id, r.event_type, r.payload::text, NULL::bigint
                   FROM aegis.read_stream(stream_kind, stream_id, after, max_events) r;
    h := aegis.stream_horizon(stream_kind, stream_id);
    IF h > after THEN
        RETURN QUERY SELECT NULL::bigint, 'reset'::text,
                            (CASE WHEN stream_kind = 'conversation'
                                  THEN aegis.conversation_latest_run(stream_id) ELSE 0 END)::text,
                            h;
    END IF;
END;
$$;

/* The kinds a stream policy covers: its own, or for * every kind without one. */
CREATE FUNCTION aegis.retention_kinds(name text)
RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN name <> '*' THEN ARRAY[name]
                ELSE ARRAY(SELECT k FROM unnest(ARRAY['workspace', 'conversation', 'run', 'topic']) k
                            WHERE NOT EXISTS (SELECT 1 FROM aegis.retention_policies p
                                               WHERE p.target = 'stream' AND p.name = k)) END
$$;

/* The topics a topic policy covers, as (topics, excluded): its own, or all but those with one. */
CREATE FUNCTION aegis.retention_topics_excluded(name text)
RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN name <> '*' THEN NULL
                ELSE ARRAY(SELECT p.name FROM aegis.retention_policies p
                            WHERE p.target = 'topic' AND p.name <> '*') END
$$;

/*
 * Deletes the given events and records their streams' horizons; returns
 * the count.  Only enforce_retention's helpers call it (the guard lets the
 * delete through because aegis.retention_deleting is on there).
 */
CREATE FUNCTION aegis.retention_delete(ids bigint[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM aegis.events e WHERE e.id = ANY (ids)
        RETURNING e.stream_kind, e.stream_id, e.id),
    streams AS (
        INSERT INTO aegis.stream_horizons AS h (stream_kind, stream_id, horizon)
        SELECT g.stream_kind, g.stream_id, max(g.id) FROM gone g GROUP BY 1, 2
        ON CONFLICT ON CONSTRAINT stream_horizons_pkey DO UPDATE
            SET horizon = greatest(h.horizon, excluded.horizon)
        RETURNING 1)
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END;
$$;

/*
 * One window: the next `batch` events after `after` in id order (topic
 * events only when only_topics), walked on the primary key (or the topic
 * index) and never beyond `upto`.  Returns the window's end (upto when the
 * window reached it), the first covered event not expired yet by created_at
 * (when by_time; the window then ends before it), and the covered events
 * before that which may go (topic events only at or below `delivered`).
 * Plan settings pin the index walk: a bitmap scan of "id > after" with stale
 * statistics would read every newer row (and with those costs, no JIT).
 */
CREATE FUNCTION aegis.retention_window(after bigint, upto bigint, batch integer,
                                       only_topics boolean, kinds text[], topic_name text,
                                       excluded text[], by_time boolean, cutoff timestamptz,
                                       delivered bigint,
                                       OUT hi bigint, OUT stop bigint, OUT ids bigint[])
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
AS $$
BEGIN
    WITH w AS (
        SELECT e.id, e.stream_kind, e.created_at, e.topic
          FROM aegis.events e
         WHERE e.id > after AND (NOT only_topics OR e.topic IS NOT NULL)
         ORDER BY e.id LIMIT batch),
    c AS (
        SELECT w.id, w.created_at, w.topic,
               (kinds IS NULL OR w.stream_kind = ANY (kinds))
               AND (NOT only_topics OR w.topic IS NOT NULL)
               AND (topic_name IS NULL OR w.topic = topic_name)
               AND (excluded IS NULL OR NOT (w.topic = ANY (excluded))) AS covered
          FROM w WHERE w.id <= upto),
    s AS (
        SELECT CASE WHEN (SELECT count(*) FROM w) < batch OR (SELECT max(w.id) FROM w) > upto
                    THEN upto ELSE (SELECT max(c.id) FROM c) END AS hi,
               (SELECT min(c.id) FROM c WHERE by_time AND c.covered AND c.created_at >= cutoff) AS stop)
    SELECT coalesce(s.stop - 1, s.hi, upto), s.stop,
           ARRAY(SELECT c.id FROM c
                  WHERE c.covered AND (c.topic IS NULL OR c.id <= delivered)
                    AND (s.stop IS NULL OR c.id < s.stop)
                  ORDER BY c.id)
      INTO hi, stop, ids
      FROM s;
END;
$$;

/*
 * One policy over events, in windows: a time-based sweep (stream policies,
 * forced topic policies) stops before the first covered event that has not
 * expired; a delivery-based sweep (topic policies) goes up to the position
 * the drain had delivered `keep` ago.  Stream policies then remove topic
 * events they had to leave while undelivered, as the drain delivers them.
 * Returns the events removed; budget counts windows.  Events at or below
 * `floor` are in partitions that go whole (aegis.retention_drop_partitions)
 * and are not looked at.
 */
CREATE FUNCTION aegis.retention_sweep(p aegis.retention_policies, safe bigint, delivered bigint,
                                      floor bigint, batch integer, INOUT budget integer,
                                      OUT removed bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kinds text[];
    topic_name text;
    excluded text[];
    only_topics boolean := p.target = 'topic';
    by_time boolean := p.target = 'stream' OR p.force;
    cutoff timestamptz := now() - p.keep;
    upto bigint := safe;
    sweep bigint := greatest(p.swept_through, floor);
    tdone bigint := greatest(p.topic_through, floor);
    w record;
BEGIN
    removed := 0;
    IF p.target = 'stream' THEN
        kinds := aegis.retention_kinds(p.name);
    ELSE
        topic_name := nullif(p.name, '*');
        excluded := aegis.retention_topics_excluded(p.name);
    END IF;
    IF NOT by_time THEN
        /* delivered at least `keep` ago: the cursor as it was then */
        upto := least(safe, coalesce((SELECT m.position FROM aegis.drain_marks m
                                       WHERE m.marked_at <= cutoff
                                       ORDER BY m.marked_at DESC LIMIT 1), 0));
    END IF;
    WHILE sweep < upto AND budget > 0 LOOP
        budget := budget - 1;
        w := aegis.retention_window(sweep, upto, batch, only_topics, kinds, topic_name, excluded,
                                    by_time, cutoff,
                                    CASE WHEN p.force OR NOT by_time THEN upto ELSE delivered END);
        removed := removed + aegis.retention_delete(w.ids);
        sweep := w.hi;
        EXIT WHEN w.stop IS NOT NULL;
    END LOOP;
    /* stream policies: topic events left undelivered, now delivered */
    IF p.target = 'stream' THEN
        WHILE tdone < least(sweep, delivered) AND budget > 0 LOOP
            budget := budget - 1;
            w := aegis.retention_window(tdone, least(sweep, delivered), batch, true, kinds,
                                        NULL, NULL, false, NULL, delivered);
            removed := removed + aegis.retention_delete(w.ids);
            tdone := w.hi;
        END LOOP;
    END IF;
    UPDATE aegis.retention_policies q
       SET swept_through = sweep, topic_through = tdone,
           removed = q.removed + retention_sweep.removed, enforced_at = now()
     WHERE q.target = p.target AND q.name = p.name;
END;
$$;

/* Dead letters or finished run requests older than the policy, in batches. */
CREATE FUNCTION aegis.retention_sweep_rows(p aegis.retention_policies, batch integer,
                                           INOUT budget integer, OUT removed bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cutoff timestamptz := now() - p.keep;
    n bigint;
BEGIN
    removed := 0;
    LOOP
        EXIT WHEN budget <= 0;
        budget := budget - 1;
        IF p.target = 'dead_letters' THEN
            DELETE FROM aegis.dead_letters d
             WHERE d.id IN (SELECT x.id FROM aegis.dead_letters x
                             WHERE x.failed_at < cutoff ORDER BY x.failed_at LIMIT batch);
        ELSE
            DELETE FROM aegis.run_requests r
             WHERE r.event_id IN (SELECT x.event_id FROM aegis.run_requests x
                                   WHERE x.state IN ('done', 'failed') AND x.finished_at < cutoff
                                   ORDER BY x.finished_at LIMIT batch);
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        removed := removed + n;
        EXIT WHEN n < batch;
    END LOOP;
    UPDATE aegis.retention_policies q
       SET removed = q.removed + retention_sweep_rows.removed, enforced_at = now()
     WHERE q.target = p.target AND q.name = p.name;
END;
$$;

/*
 * Notes where the drain's cursor is now (delivery times for topic
 * policies) and forgets marks no policy needs any more.
 */
CREATE FUNCTION aegis.retention_mark()
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur bigint := aegis.cursor_position('kafka-drain');
    longest interval;
BEGIN
    IF cur > coalesce((SELECT m.position FROM aegis.drain_marks m ORDER BY m.marked_at DESC LIMIT 1), 0) THEN
        INSERT INTO aegis.drain_marks (marked_at, position) VALUES (clock_timestamp(), cur)
        ON CONFLICT DO NOTHING;
    END IF;
    SELECT max(p.keep) INTO longest FROM aegis.retention_policies p
     WHERE p.target = 'topic' AND NOT p.force;
    /* keep the newest mark older than the longest keep, drop the ones before it */
    DELETE FROM aegis.drain_marks m
     WHERE m.marked_at < (SELECT max(o.marked_at) FROM aegis.drain_marks o
                           WHERE o.marked_at <= now() - coalesce(longest, '0'::interval));
    RETURN cur;
END;
$$;

/*
 * Whether every event in [lo, hi) has expired under the policies at time
 * `at` (and is delivered now where a policy waits for the drain): one scan
 * of a partition, stopped at the first event that must stay.  The rules are
 * retention_sweep's: a stream policy expires an event `keep` after
 * created_at, a topic event only once delivered; a topic policy `keep`
 * after delivery (the cursor as it was `keep` ago), with force after
 * created_at.
 */
CREATE FUNCTION aegis.retention_partition_expired(lo bigint, hi bigint, safe bigint, delivered bigint,
                                                  at timestamptz)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
    WITH sk AS MATERIALIZED (
        SELECT k.kind, at - p.keep AS cutoff
          FROM aegis.retention_policies p, unnest(aegis.retention_kinds(p.name)) AS k(kind)
         WHERE p.target = 'stream'),
    tk AS MATERIALIZED (
        SELECT p.name, p.force, at - p.keep AS cutoff,
               least(safe, coalesce((SELECT m.position FROM aegis.drain_marks m
                                      WHERE m.marked_at <= at - p.keep
                                      ORDER BY m.marked_at DESC LIMIT 1), 0)) AS upto
          FROM aegis.retention_policies p WHERE p.target = 'topic')
    SELECT NOT EXISTS (
        SELECT 1 FROM aegis.events e
          LEFT JOIN sk ON sk.kind = e.stream_kind
          LEFT JOIN tk t1 ON t1.name = e.topic
          LEFT JOIN tk t2 ON t2.name = '*' AND e.topic IS NOT NULL
         WHERE e.id >= lo AND e.id < hi
           AND NOT coalesce(e.created_at < sk.cutoff AND (e.topic IS NULL OR e.id <= delivered), false)
           AND NOT coalesce(CASE WHEN coalesce(t1.force, t2.force)
                                 THEN e.created_at < coalesce(t1.cutoff, t2.cutoff)
                                 ELSE e.id <= coalesce(t1.upto, t2.upto) END, false))
$$;

/*
 * Drops partitions whose events have all expired (parts: [{part, lo, hi}]):
 * records their streams' horizons (one scan each, before the lock: a
 * closed partition does not change) and takes them out of the extension,
 * then takes ACCESS EXCLUSIVE on aegis.events, waiting at most 50 ms
 * (publishers and readers queue behind the request meanwhile), and drops
 * them in one statement.  Returns the events removed, or NULL (and nothing
 * changed) when the lock was not granted in time (or the calling
 * statement has a partition open); the next enforcement
 * tries again.
 */
CREATE FUNCTION aegis.retention_drop_partitions(parts jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '50ms'
AS $$
DECLARE
    n bigint := 0;
    m bigint;
    x record;
    names text[] := '{}';
BEGIN
    FOR x IN SELECT * FROM jsonb_to_recordset(parts) AS p(part text, lo bigint, hi bigint) LOOP
        WITH s AS (
            SELECT e.stream_kind, e.stream_id, max(e.id) AS horizon, count(*) AS n
              FROM aegis.events e WHERE e.id >= x.lo AND e.id < x.hi GROUP BY 1, 2),
        h AS (
            INSERT INTO aegis.stream_horizons AS h (stream_kind, stream_id, horizon)
            SELECT s.stream_kind, s.stream_id, s.horizon FROM s
            ON CONFLICT ON CONSTRAINT stream_horizons_pkey DO UPDATE
                SET horizon = greatest(h.horizon, excluded.horizon)
            RETURNING 1)
        SELECT coalesce(sum(s.n), 0) INTO m FROM s;
        n := n + m;
        IF EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = x.part::regclass
                      AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
            EXECUTE format('ALTER EXTENSION aegis_events DROP TABLE %s', x.part::regclass);
        END IF;
        names := names || x.part::regclass::text;
    END LOOP;
    IF cardinality(names) = 0 THEN
        RETURN 0;
    END IF;
    LOCK TABLE ONLY aegis.events IN ACCESS EXCLUSIVE MODE;
    EXECUTE 'DROP TABLE ' || array_to_string(names, ', ');
    RETURN n;
EXCEPTION WHEN lock_not_available OR object_in_use THEN
    /* object_in_use: the caller's own statement has the partition open */
    RETURN NULL;
END;
$$;

/*
 * Applies every policy now; returns the number of events removed.  First
 * the oldest closed partitions (every position at or below the safe
 * position) whose events have all expired are found (at most 16 per call);
 * the sweeps then skip their positions, and they are dropped last, so
 * that the ACCESS EXCLUSIVE lock a drop takes is held only until the
 * caller commits (when it is not granted within 50 ms, the next call
 * deletes their rows in batches instead).  Then at most
 * aegis.retention_state.max_batches windows of batch_rows rows per call
 * (the rest waits for the next call), one caller at a time.
 */
CREATE FUNCTION aegis.enforce_retention()
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET aegis.retention_deleting = on
AS $$
DECLARE
    p aegis.retention_policies;
    safe bigint;
    delivered bigint;
    batch integer;
    budget integer;
    n bigint;
    events_removed bigint := 0;
    part record;
    parts jsonb := '[]';
    floor bigint := 0;
    cap bigint;
    dropped integer := 0;
    dropped_rows bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('aegis.enforce_retention'));
    SELECT s.batch_rows, s.max_batches INTO batch, budget FROM aegis.retention_state s;
    delivered := aegis.retention_mark();
    safe := aegis.safe_position();
    IF EXISTS (SELECT 1 FROM aegis.retention_policies q WHERE q.target IN ('stream', 'topic'))
       AND NOT (SELECT s.drop_failed FROM aegis.retention_state s) THEN
        FOR part IN SELECT x.partition, coalesce(x.lo, -9223372036854775808) AS lo, x.hi
                      FROM aegis.event_partitions() x
                     WHERE x.hi - 1 <= safe ORDER BY x.hi LIMIT 16 LOOP
            IF NOT aegis.retention_partition_expired(part.lo, part.hi, safe, delivered, now()) THEN
                /*
                 * All expired within the time its own rows took to come (or
                 * by the next enforcement): it goes whole then, not row by
                 * row now.  Space: at most about one partition more.
                 */
                IF aegis.retention_partition_expired(part.lo, part.hi, safe, delivered,
                        now() + greatest(current_setting('aegis.retention_interval')::interval,
                                         (SELECT l.created_at FROM aegis.events l
                                           WHERE l.id >= part.lo AND l.id < part.hi ORDER BY l.id DESC LIMIT 1)
                                         - (SELECT f.created_at FROM aegis.events f
                                             WHERE f.id >= part.lo AND f.id < part.hi ORDER BY f.id LIMIT 1))) THEN
                    cap := part.lo - 1;
                END IF;
                EXIT;
            END IF;
            parts := parts || jsonb_build_object('part', part.partition::text, 'lo', part.lo, 'hi', part.hi);
            floor := part.hi - 1;
        END LOOP;
        /* 16 to drop: the ones after them may well go whole next time too */
        IF jsonb_array_length(parts) = 16 THEN
            cap := floor;
        END IF;
    END IF;
    FOR p IN SELECT * FROM aegis.retention_policies q
              ORDER BY q.target = 'stream' AND q.name = '*', q.target, q.name LOOP
        IF p.target IN ('stream', 'topic') THEN
            SELECT s.budget, s.removed INTO budget, n
              FROM aegis.retention_sweep(p, least(safe, coalesce(cap, safe)), delivered, floor,
                                         batch, budget) s;
            events_removed := events_removed + n;
        ELSE
            SELECT s.budget INTO budget FROM aegis.retention_sweep_rows(p, batch, budget) s;
        END IF;
    END LOOP;
    n := aegis.retention_drop_partitions(parts);
    IF n IS NOT NULL THEN
        events_removed := events_removed + n;
        dropped_rows := n;
        dropped := jsonb_array_length(parts);
    ELSE
        /*
         * Not dropped (the lock was not granted in 50 ms): the sweeps skipped
         * those partitions, so they go back to below the first one, and the
         * next enforcement deletes their rows in batches; the one after that
         * tries dropping again (an emptied partition drops at no cost).
         */
        UPDATE aegis.retention_policies q
           SET swept_through = least(q.swept_through, greatest((parts -> 0 ->> 'lo')::bigint - 1, 0)),
               topic_through = least(q.topic_through, greatest((parts -> 0 ->> 'lo')::bigint - 1, 0))
         WHERE q.target IN ('stream', 'topic');
    END IF;
    UPDATE aegis.retention_state s
       SET enforced_at = now(), removed_total = s.removed_total + events_removed,
           partitions_dropped = s.partitions_dropped + dropped,
           rows_dropped = s.rows_dropped + dropped_rows,
           drop_failed = (n IS NULL);
    RETURN events_removed;
END;
$$;

/*
 * Each policy: what it keeps, how far it has removed, and what it holds now
 * (oldest retained position and time, rows, bytes).  Counting reads every
 * row the policy covers: a diagnostic view, not for a hot path.
 */
CREATE VIEW aegis.retention AS
SELECT p.target, p.name, p.keep, p.force, p.removed, p.enforced_at,
       CASE p.target WHEN 'dead_letters' THEN d.oldest WHEN 'run_requests' THEN r.oldest
                     ELSE e.oldest END AS oldest_position,
       CASE p.target WHEN 'dead_letters' THEN d.oldest_at WHEN 'run_requests' THEN r.oldest_at
                     ELSE e.oldest_at END AS oldest_at,
       CASE p.target WHEN 'dead_letters' THEN d.n WHEN 'run_requests' THEN r.n
                     ELSE e.n END AS rows,
       CASE p.target WHEN 'dead_letters' THEN d.bytes WHEN 'run_requests' THEN r.bytes
                     ELSE e.bytes END AS bytes
  FROM aegis.retention_policies p
  CROSS JOIN LATERAL (
        SELECT min(x.id) AS oldest, min(x.created_at) AS oldest_at, count(*) AS n,
               coalesce(sum(pg_column_size(x.*)), 0) AS bytes
          FROM aegis.events x
         WHERE p.target = 'stream' AND x.stream_kind = ANY (aegis.retention_kinds(p.name))
            OR p.target = 'topic' AND x.topic IS NOT NULL
               AND (x.topic = p.name
                    OR p.name = '*' AND NOT (x.topic = ANY (aegis.retention_topics_excluded(p.name))))) e
  CROSS JOIN LATERAL (
        SELECT min(x.id) AS oldest, min(x.failed_at) AS oldest_at, count(*) AS n,
               coalesce(sum(pg_column_size(x.*)), 0) AS bytes
          FROM aegis.dead_letters x WHERE p.target = 'dead_letters') d
  CROSS JOIN LATERAL (
        SELECT min(x.event_id) AS oldest, min(x.finished_at) AS oldest_at, count(*) AS n,
               coalesce(sum(pg_column_size(x.*)), 0) AS bytes
          FROM aegis.run_requests x
         WHERE p.target = 'run_requests' AND x.state IN ('done', 'failed')) r;

/*
 * aegis.maintain() (the agent-runs section's) plus retention: every call
 * notes the drain's cursor and makes partitions of aegis.events ahead of
 * need (aegis.partitions_ahead above the safe position); every
 * aegis.retention_interval it runs aegis.enforce_retention().
 */
CREATE FUNCTION aegis.retention_tick()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last timestamptz;
    result jsonb := jsonb_build_object('removed', 0, 'enforced', false);
BEGIN
    PERFORM aegis.retention_mark();
    SELECT s.enforced_at INTO last FROM aegis.retention_state s;
    IF last IS NULL
       OR last <= now() - current_setting('aegis.retention_interval')::interval THEN
        result := jsonb_build_object('removed', aegis.enforce_retention(), 'enforced', true);
    END IF;
    /*
     * Last: partitions made here are seen by publishers only after the
     * commit, and the lock that makes them stays held until then.  (The
     * maintenance worker also makes them in a transaction of their own
     * before each round, so this rarely has anything to do.)
     */
    PERFORM aegis.partitions_extend(aegis.safe_position(),
                                    current_setting('aegis.partitions_ahead')::integer);
    RETURN result;
END;
$$;

CREATE OR REPLACE FUNCTION aegis.maintain()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    /*
     * First, as its first statement takes the extension's lock (see
     * aegis.maintenance_lock): a store upgraded from 0.2.0 with events in
     * it becomes partitioned here (the maintenance worker does it first, in
     * a transaction of its own).
     */
    PERFORM aegis.partition_events(true);
    RETURN jsonb_build_object('runs', aegis.enforce_runs(),
                              'retention', aegis.retention_tick());
END;
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aegis FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA aegis FROM PUBLIC;
