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
 */
ALTER TABLE aegis.run_requests
    ADD COLUMN state            text        NOT NULL DEFAULT 'queued',
    ADD COLUMN worker           text,
    ADD COLUMN attempt          integer     NOT NULL DEFAULT 0,
    ADD COLUMN queued_at        timestamptz,
    ADD COLUMN started_at       timestamptz,
    ADD COLUMN claimed_at       timestamptz,
    ADD COLUMN heartbeat_at     timestamptz,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN finished_at      timestamptz,
    ADD COLUMN end_event_id     bigint,
    ADD COLUMN error            text,
    ADD CONSTRAINT run_requests_state_check
        CHECK (state IN ('queued', 'running', 'done', 'failed'));

/*
 * Requests recorded before 0.3.0: ended by the done/error that followed
 * them, queued otherwise (the clock then ends them: nobody claims an old
 * request within queue_timeout unless a worker runs).
 */
UPDATE aegis.run_requests r
   SET state = CASE t.event_type WHEN 'done' THEN 'done' ELSE 'failed' END,
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
       r.state,
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
           AND (conversation IS NULL OR r.conversation_id = conversation)
           FOR UPDATE OF r SKIP LOCKED)
    UPDATE aegis.run_requests r
       SET state = CASE ended.event_type WHEN 'done' THEN 'done' ELSE 'failed' END,
           finished_at = ended.created_at, end_event_id = ended.id,
           lease_expires_at = NULL, error = ended.payload -> 'data' ->> 'error'
      FROM ended
     WHERE r.event_id = ended.event_id;
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
 * and marks the run done, in one transaction.  Returns the done event's id.
 * The UPDATE is the check that the worker holds the run; when it is not,
 * the error aborts the transaction and the event with it.
 */
CREATE FUNCTION aegis.finish_run(run_id bigint, worker text, execution_id text,
                                 status text DEFAULT 'completed',
                                 tokens_used integer DEFAULT NULL,
                                 cost_usd numeric DEFAULT NULL,
                                 skills_injected text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    conversation text;
    done_id bigint;
BEGIN
    SELECT q.conversation_id INTO conversation FROM aegis.run_requests q
     WHERE q.event_id = finish_run.run_id AND q.state = 'running';
    IF NOT FOUND THEN
        PERFORM aegis.runs_held(run_id, worker);    /* raises why */
    END IF;
    done_id := aegis.publish_conversation_event(conversation, 'done', NULL,
        jsonb_build_object('execution_id', execution_id, 'status', status,
                           'tokens_used', tokens_used, 'cost_usd', cost_usd,
                           'skills_injected', to_jsonb(skills_injected)));
    UPDATE aegis.run_requests q
       SET state = 'done', finished_at = clock_timestamp(), lease_expires_at = NULL,
           end_event_id = done_id
     WHERE q.event_id = finish_run.run_id AND q.state = 'running'
       AND q.worker = finish_run.worker AND q.lease_expires_at > clock_timestamp();
    IF NOT FOUND THEN
        PERFORM aegis.runs_held(run_id, worker);    /* raises why */
    END IF;
    RETURN done_id;
END;
$$;

/*
 * Fails worker's run for good: publishes the seed's error event and marks
 * the run failed, in one transaction.  Returns the error event's id.
 */
CREATE FUNCTION aegis.fail_run(run_id bigint, worker text, error text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    conversation text;
    error_id bigint;
BEGIN
    SELECT q.conversation_id INTO conversation FROM aegis.run_requests q
     WHERE q.event_id = fail_run.run_id AND q.state = 'running';
    IF NOT FOUND THEN
        PERFORM aegis.runs_held(run_id, worker);    /* raises why */
    END IF;
    error_id := aegis.publish_conversation_event(conversation, 'error', NULL,
        jsonb_build_object('error', fail_run.error));
    UPDATE aegis.run_requests q
       SET state = 'failed', finished_at = clock_timestamp(), lease_expires_at = NULL,
           error = fail_run.error, end_event_id = error_id
     WHERE q.event_id = fail_run.run_id AND q.state = 'running'
       AND q.worker = fail_run.worker AND q.lease_expires_at > clock_timestamp();
    IF NOT FOUND THEN
        PERFORM aegis.runs_held(run_id, worker);    /* raises why */
    END IF;
    RETURN error_id;
END;
$$;

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

