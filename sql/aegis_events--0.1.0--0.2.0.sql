/* aegis_events 0.1.0 -> 0.2.0: state kept for aegis-bridge (cursors, run requests, consumer offsets) */

\echo Use "ALTER EXTENSION aegis_events UPDATE TO '0.2.0'" to load this file. \quit

/*
 * Durable cursors of store readers.  The Kafka drain keeps its cursor under
 * the name 'kafka-drain': the id of the last event whose delivery Kafka
 * acknowledged, every event at or below it included.
 */
CREATE TABLE aegis.cursors (
    name       text        NOT NULL PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0 CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

/* Moves a cursor forward (never back); returns the cursor's position. */
CREATE FUNCTION aegis.cursor_advance(cursor_name text, new_position bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result bigint;
BEGIN
    IF cursor_name = '' OR length(cursor_name) > 200 THEN
        RAISE EXCEPTION 'cursor name must be 1 to 200 characters, got %', length(cursor_name)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'name the reader, e.g. ''kafka-drain''';
    END IF;
    IF new_position < 0 THEN
        RAISE EXCEPTION 'cursor position must be >= 0, got %', new_position
            USING ERRCODE = 'numeric_value_out_of_range',
                  HINT = 'pass the id of the last event the reader finished';
    END IF;
    INSERT INTO aegis.cursors AS c (name, position, updated_at)
    VALUES (cursor_name, new_position, now())
    ON CONFLICT (name) DO UPDATE
        SET position = greatest(c.position, excluded.position), updated_at = now()
    RETURNING c.position INTO result;
    RETURN result;
END;
$$;

CREATE FUNCTION aegis.cursor_position(cursor_name text)
RETURNS bigint
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce((SELECT position FROM aegis.cursors WHERE name = cursor_name), 0) $$;

/*
 * The Kafka drain's lag: events with a topic that Kafka has not yet
 * acknowledged, and how long the oldest of them has waited.
 */
CREATE VIEW aegis.drain_lag AS
SELECT c.position AS cursor_position,
       (SELECT count(*) FROM aegis.events e
         WHERE e.topic IS NOT NULL AND e.id > c.position) AS pending_events,
       (SELECT now() - min(e.created_at) FROM aegis.events e
         WHERE e.topic IS NOT NULL AND e.id > c.position) AS oldest_pending_age
  FROM (SELECT aegis.cursor_position('kafka-drain') AS position) c;

/*
 * Run requests: GET /conversations/{id}/stream?message=… records one, once.
 * The event goes to stream ('run', agent_type) so agent workers of a type
 * read their own stream; this table finds an open run of a conversation.
 */
CREATE TABLE aegis.run_requests (
    event_id        bigint      NOT NULL PRIMARY KEY,
    conversation_id text        NOT NULL,
    message         text        NOT NULL,
    agent_id        text,
    agent_type      text,
    requested_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_requests_conversation_idx
    ON aegis.run_requests (conversation_id, event_id);

CREATE FUNCTION aegis.publish_run_request(conversation_id text, message text,
                                          agent_id text, agent_type text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_publish_run_request'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

/*
 * Records a run request unless the same request is still running (an
 * EventSource reconnect repeats the URL): returns the request's event id.
 * A run is finished once its conversation has a done or error event after it.
 */
CREATE FUNCTION aegis.request_run(conversation_id text, message text,
                                  agent_id text DEFAULT NULL, agent_type text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    open_run bigint;
BEGIN
    IF conversation_id IS NULL OR message IS NULL THEN
        RAISE EXCEPTION 'run request needs conversation_id and message'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'pass ?message=… on the conversation stream';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('aegis.run_request'), hashtext(conversation_id));
    SELECT r.event_id INTO open_run
      FROM aegis.run_requests r
     WHERE r.conversation_id = request_run.conversation_id
       AND r.message = request_run.message
       AND r.agent_id IS NOT DISTINCT FROM request_run.agent_id
       AND r.agent_type IS NOT DISTINCT FROM request_run.agent_type
       AND NOT EXISTS (SELECT 1 FROM aegis.events e
                        WHERE e.stream_kind = 'conversation'
                          AND e.stream_id = request_run.conversation_id
                          AND e.id > r.event_id
                          AND e.event_type IN ('done', 'error'))
     ORDER BY r.event_id DESC
     LIMIT 1;
    IF open_run IS NOT NULL THEN
        RETURN open_run;
    END IF;
    open_run := aegis.publish_run_request(conversation_id, message, agent_id, agent_type);
    INSERT INTO aegis.run_requests (event_id, conversation_id, message, agent_id, agent_type)
    VALUES (open_run, conversation_id, message, agent_id, agent_type);
    RETURN open_run;
END;
$$;

/*
 * Kafka -> PostgreSQL consumers: the next offset to read per group and
 * partition, written in the same transaction as the handler's effects.
 */
CREATE TABLE aegis.consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

/* Messages a consumer could not handle: kept, never retried in a loop. */
CREATE TABLE aegis.dead_letters (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea,
    value       bytea,
    headers     jsonb,
    error       text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (group_id, topic, partition, "offset")
);

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aegis FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA aegis FROM PUBLIC;
