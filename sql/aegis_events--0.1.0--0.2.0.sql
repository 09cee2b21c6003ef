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
                  HINT = 'Name the reader, e.g. ''kafka-drain''.';
    END IF;
    IF new_position < 0 THEN
        RAISE EXCEPTION 'cursor position must be >= 0, got %', new_position
            USING ERRCODE = 'numeric_value_out_of_range',
                  HINT = 'Pass the id of the last event the reader finished.';
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
                  HINT = 'Pass ?message=… on the conversation stream.';
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

/*
 * A live reader's long poll: read_all, but when nothing after `after` is
 * safe yet it sleeps until a publishing transaction ends (woken directly by
 * the commit, no NOTIFY) and reads again, until it has rows or timeout_ms
 * passed (then it returns none).  The statement holds its snapshot while it
 * waits, hence the short timeouts (at most 60 s).
 */
CREATE FUNCTION aegis.wait_all(after bigint, max_events integer DEFAULT 1000,
                               timeout_ms integer DEFAULT 1000)
RETURNS SETOF aegis.events
AS 'MODULE_PATHNAME', 'aegis_wait_all'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aegis FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA aegis FROM PUBLIC;

/* ---- consumer side (owned by the consumer module) ---- */

/*
 * Kafka bytes as the consumer passes them in JSON: a string when they are
 * UTF-8 text, {"base64": "..."} otherwise, null when absent.
 */
CREATE FUNCTION aegis.consumer_bytes(j jsonb)
RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE jsonb_typeof(j)
           WHEN 'string' THEN convert_to(j #>> '{}', 'UTF8')
           WHEN 'object' THEN decode(j ->> 'base64', 'base64')
           END
$$;

/*
 * The callable name (schema.function) of a consumer handler, which must be
 * a function (event jsonb, meta jsonb); a clear error otherwise.
 */
CREATE FUNCTION aegis.consumer_handler_name(handler regprocedure)
RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result text;
BEGIN
    SELECT format('%I.%I', n.nspname, p.proname) INTO result
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.oid = handler::oid
       AND p.prokind = 'f'
       AND p.proretset = false
       AND p.proargtypes = '3802 3802'::oidvector;
    IF result IS NULL THEN
        RAISE EXCEPTION 'consumer handler % is not a function (event jsonb, meta jsonb)', handler
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'A handler is a FUNCTION name(event jsonb, meta jsonb) that returns one value (void will do).';
    END IF;
    RETURN result;
END;
$$;

/*
 * Resolves a configured handler: a name ("kg.handle_entity"), a signature
 * ("kg.handle_entity(jsonb,jsonb)") or a declaration with argument names
 * ("kg.handle_entity(event jsonb, meta jsonb)").  Returns the handler as
 * regprocedure text; a missing handler or a wrong signature is an error
 * that names it.  An unqualified name resolves with the caller's search_path.
 * aegis-bridge calls this before it consumes anything.
 */
CREATE FUNCTION aegis.consumer_check_handler(handler text)
RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    fname  pg_catalog.text := pg_catalog.btrim(pg_catalog.split_part(handler, '(', 1));
    args   pg_catalog.text[];
    names  pg_catalog.text[];
    found  pg_catalog.regprocedure;
    others pg_catalog.text;
BEGIN
    BEGIN
        names := pg_catalog.parse_ident(fname);
    EXCEPTION WHEN OTHERS THEN
        names := NULL;
    END;
    IF names IS NULL OR pg_catalog.array_length(names, 1) > 2
       OR (handler LIKE '%(%' AND handler !~ '^[^(]*\([^()]*\)\s*$') THEN
        RAISE EXCEPTION 'consumer handler "%" is not a function name', handler
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name it as schema.function, e.g. kg.handle_entity.';
    END IF;
    IF handler LIKE '%(%' THEN
        /* A signature was given: its types (names dropped) must be jsonb, jsonb. */
        SELECT pg_catalog.array_agg(pg_catalog.lower(pg_catalog.regexp_replace(
                   pg_catalog.btrim(a.arg), '^.*\s', '')) ORDER BY a.n)
          INTO args
          FROM pg_catalog.regexp_split_to_table(
                   pg_catalog.substring(handler, '\(([^()]*)\)'), ',') WITH ORDINALITY AS a(arg, n);
        IF args IS DISTINCT FROM ARRAY['jsonb', 'jsonb']
           AND args IS DISTINCT FROM ARRAY['pg_catalog.jsonb', 'pg_catalog.jsonb'] THEN
            RAISE EXCEPTION 'consumer handler "%" has the wrong signature (expected %(event jsonb, meta jsonb))',
                            handler, fname
                USING ERRCODE = 'wrong_object_type',
                      HINT = 'A handler takes (event jsonb, meta jsonb).';
        END IF;
    END IF;
    found := pg_catalog.to_regprocedure(fname || '(jsonb,jsonb)');
    IF found IS NULL THEN
        SELECT pg_catalog.string_agg(p.oid::pg_catalog.regprocedure::pg_catalog.text, ', ' ORDER BY p.oid)
          INTO others
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE p.proname = names[pg_catalog.array_length(names, 1)]
           AND CASE WHEN pg_catalog.array_length(names, 1) = 2 THEN n.nspname = names[1]
                    ELSE pg_catalog.pg_function_is_visible(p.oid) END;
        IF others IS NULL THEN
            RAISE EXCEPTION 'consumer handler "%" does not exist', handler
                USING ERRCODE = 'undefined_function',
                      HINT = pg_catalog.format('Create it: CREATE FUNCTION %s(event jsonb, meta jsonb) ...', fname);
        END IF;
        RAISE EXCEPTION 'consumer handler "%" has the wrong signature: % (expected %(event jsonb, meta jsonb))',
                        handler, others, fname
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'A handler takes (event jsonb, meta jsonb).';
    END IF;
    RETURN aegis.consumer_handler_name(found) || '(pg_catalog.jsonb,pg_catalog.jsonb)';
END;
$$;

/*
 * aegis.consume_batch: one Kafka -> PostgreSQL batch, applied in the
 * caller's one transaction (aegis-bridge calls it as a single statement).
 *
 *   positions  [{"topic", "partition", "first", "last"}]: the offsets the
 *              batch covers, one element per partition
 *   messages   [{"m": meta, "v": value}] in consumption order, the value
 *              embedded as JSON; or, in text mode, [{"m": meta, "t": text}]
 *              with the value as JSON text
 *   dead       [{"m": meta, "t": text or "b": base64, "e": error}]: messages
 *              the bridge could not decode (not JSON, not UTF-8, no value)
 *
 * meta is {"topic", "partition", "offset", "key", "headers", "timestamp"},
 * as the handler receives it.  Per partition the offset row is locked (in
 * topic, partition order, so two bridges never deadlock) and messages below
 * the stored next_offset are skipped: a zombie, or the old owner of a
 * partition after a rebalance, cannot apply a message twice.  The handler
 * runs once per message, the whole batch in one statement.  When that fails
 * in embedded mode nothing is applied and the result is {"retry": "text"}:
 * the bridge sends the batch again in text mode, where each message that
 * fails (its value not valid jsonb, or the handler raising) goes to
 * aegis.dead_letters with its exact bytes, in its own subtransaction, and the
 * others are applied.  Transient errors (class 40: serialization failure,
 * deadlock; class 53: insufficient resources) are re-raised: the batch fails
 * as a whole and the bridge retries it.  Last, next_offset moves past the
 * batch.  Returns {"handled": n, "dead": n, "skipped": n}.
 *
 * Not SECURITY DEFINER and no SET search_path: the handler runs with the
 * caller's rights and search_path; everything here is schema-qualified.
 */
CREATE FUNCTION aegis.consume_batch(group_id text, handler regprocedure,
                                    positions jsonb, messages jsonb,
                                    dead jsonb DEFAULT '[]')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
AS $$
DECLARE
    fn          pg_catalog.text;
    stored      pg_catalog.jsonb;
    filter      pg_catalog.bool;
    remaining        pg_catalog.jsonb := messages;
    bad         pg_catalog.jsonb := dead;
    text_mode   pg_catalog.bool;
    n_total     pg_catalog.int4;
    n_remaining      pg_catalog.int4;
    n_pre       pg_catalog.int4;
    n_fail      pg_catalog.int4 := 0;
    e           pg_catalog.jsonb;
    err_state   pg_catalog.text;
    err_msg     pg_catalog.text;
    err_detail  pg_catalog.text;
BEGIN
    IF pg_catalog.jsonb_typeof(positions) IS DISTINCT FROM 'array'
       OR pg_catalog.jsonb_typeof(messages) IS DISTINCT FROM 'array'
       OR pg_catalog.jsonb_typeof(dead) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'consume_batch: positions, messages and dead must be JSON arrays'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'See the comment on aegis.consume_batch for their elements.';
    END IF;
    /* the callable name (inline: one cached query instead of a nested call) */
    SELECT pg_catalog.format('%I.%I', n.nspname, p.proname) INTO fn
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE p.oid = handler::pg_catalog.oid AND p.prokind = 'f' AND NOT p.proretset
       AND p.proargtypes = '3802 3802'::pg_catalog.oidvector;
    IF fn IS NULL THEN
        PERFORM aegis.consumer_handler_name(handler);   /* raises the error */
    END IF;
    n_total := pg_catalog.jsonb_array_length(messages) + pg_catalog.jsonb_array_length(dead);

    /* The batch's offset rows: created when new, then locked in order. */
    INSERT INTO aegis.consumer_offsets AS o (group_id, topic, partition, next_offset)
    SELECT consume_batch.group_id, p.p->>'topic', (p.p->>'partition')::pg_catalog.int4, 0
      FROM pg_catalog.jsonb_array_elements(positions) AS p(p)
     ORDER BY 2, 3
    ON CONFLICT ON CONSTRAINT consumer_offsets_pkey DO NOTHING;

    SELECT pg_catalog.jsonb_object_agg(l.topic || '/' || l.partition, l.next_offset),
           pg_catalog.bool_or(l.next_offset > l.first)
      INTO stored, filter
      FROM (SELECT o.topic, o.partition, o.next_offset, (p.p->>'first')::pg_catalog.int8 AS first
              FROM aegis.consumer_offsets o
              JOIN pg_catalog.jsonb_array_elements(positions) AS p(p)
                ON o.topic = p.p->>'topic'
               AND o.partition = (p.p->>'partition')::pg_catalog.int4
             WHERE o.group_id = consume_batch.group_id
             ORDER BY o.topic, o.partition
               FOR UPDATE OF o) l;

    IF filter THEN
        /* Some messages were applied already (offset below the stored one). */
        SELECT COALESCE(pg_catalog.jsonb_agg(x.e ORDER BY x.n), '[]') INTO remaining
          FROM pg_catalog.jsonb_array_elements(messages) WITH ORDINALITY AS x(e, n)
         WHERE (x.e->'m'->>'offset')::pg_catalog.int8
               >= (stored->>(x.e->'m'->>'topic' || '/' || (x.e->'m'->>'partition')))::pg_catalog.int8;
        SELECT COALESCE(pg_catalog.jsonb_agg(x.e ORDER BY x.n), '[]') INTO bad
          FROM pg_catalog.jsonb_array_elements(dead) WITH ORDINALITY AS x(e, n)
         WHERE (x.e->'m'->>'offset')::pg_catalog.int8
               >= (stored->>(x.e->'m'->>'topic' || '/' || (x.e->'m'->>'partition')))::pg_catalog.int8;
    END IF;
    n_remaining := pg_catalog.jsonb_array_length(remaining);
    n_pre := pg_catalog.jsonb_array_length(bad);
    text_mode := n_remaining > 0 AND (remaining->0) ? 't';

    IF n_remaining > 0 THEN
        BEGIN
            /* The handler once per message: the whole batch in one statement ... */
            EXECUTE pg_catalog.format(
                'SELECT %s(COALESCE(x.e->''v'', (x.e->>''t'')::pg_catalog.jsonb), x.e->''m'') '
                'FROM pg_catalog.jsonb_array_elements($1) AS x(e)', fn)
            USING remaining;
        EXCEPTION
            WHEN transaction_rollback OR insufficient_resources THEN
                RAISE;
            WHEN OTHERS THEN
                IF NOT text_mode THEN
                    RETURN '{"retry": "text"}'::pg_catalog.jsonb;
                END IF;
                /* ... and when that fails, each message in its own subtransaction. */
                FOR e IN SELECT x.e FROM pg_catalog.jsonb_array_elements(remaining) AS x(e) LOOP
                    BEGIN
                        EXECUTE pg_catalog.format('SELECT %s($1, $2)', fn)
                        USING (e->>'t')::pg_catalog.jsonb, e->'m';
                    EXCEPTION
                        WHEN transaction_rollback OR insufficient_resources THEN
                            RAISE;
                        WHEN OTHERS THEN
                            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE,
                                                    err_msg = MESSAGE_TEXT,
                                                    err_detail = PG_EXCEPTION_DETAIL;
                            bad := bad || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                                'm', e->'m', 't', e->'t',
                                'e', pg_catalog.format('handler %s failed: %s %s%s', fn,
                                         err_state, err_msg,
                                         COALESCE(' (' || NULLIF(err_detail, '') || ')', ''))));
                            n_fail := n_fail + 1;
                    END;
                END LOOP;
        END;
    END IF;

    IF n_pre + n_fail > 0 THEN
        INSERT INTO aegis.dead_letters
               (group_id, topic, partition, "offset", key, value, headers, error)
        SELECT consume_batch.group_id, x.e->'m'->>'topic',
               (x.e->'m'->>'partition')::pg_catalog.int4,
               (x.e->'m'->>'offset')::pg_catalog.int8,
               aegis.consumer_bytes(x.e->'m'->'key'),
               CASE WHEN x.e ? 'b' THEN pg_catalog.decode(x.e->>'b', 'base64')
                    ELSE pg_catalog.convert_to(x.e->>'t', 'UTF8') END,
               x.e->'m'->'headers', COALESCE(x.e->>'e', 'unknown error')
          FROM pg_catalog.jsonb_array_elements(bad) AS x(e)
        ON CONFLICT DO NOTHING;
    END IF;

    /* The offsets move past the batch, in the same transaction. */
    UPDATE aegis.consumer_offsets o
       SET next_offset = GREATEST(o.next_offset, (p.p->>'last')::pg_catalog.int8 + 1),
           updated_at = pg_catalog.now()
      FROM pg_catalog.jsonb_array_elements(positions) AS p(p)
     WHERE o.group_id = consume_batch.group_id
       AND o.topic = p.p->>'topic'
       AND o.partition = (p.p->>'partition')::pg_catalog.int4;

    RETURN pg_catalog.jsonb_build_object('handled', n_remaining - n_fail,
                                         'dead', n_pre + n_fail,
                                         'skipped', n_total - n_remaining - n_pre);
END;
$$;

/*
 * aegis.consumer_claim: the fence of aegis-bridge's fast path, which applies
 * a batch without dead letters as one prepared statement of its own:
 *
 *   SELECT count(h) FROM (SELECT handler(v, m)
 *                           FROM unnest($3::jsonb[], $4::jsonb[]) AS x(v, m)
 *                          WHERE (SELECT aegis.consumer_claim($1, $2::jsonb))) h
 *
 * The uncorrelated subquery runs once, before the first handler call.  It
 * creates and locks the batch's offset rows (in topic, partition order, as
 * consume_batch does) and moves next_offset past the batch; the handler
 * calls that follow commit with it or not at all (the statement is its own
 * transaction).  When any message of the batch is below the stored
 * next_offset (a retry after a lost connection, a zombie, the old owner after
 * a rebalance) it raises instead, and the bridge sends the batch to
 * aegis.consume_batch, which skips what was applied.  positions is as for
 * consume_batch.  Returns true.
 */
CREATE FUNCTION aegis.consumer_claim(group_id text, positions jsonb)
RETURNS bool
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
AS $$
DECLARE
    n_pos   pg_catalog.int4;
    n_ok    pg_catalog.int4;
BEGIN
    INSERT INTO aegis.consumer_offsets AS o (group_id, topic, partition, next_offset)
    SELECT consumer_claim.group_id, p.p->>'topic', (p.p->>'partition')::pg_catalog.int4, 0
      FROM pg_catalog.jsonb_array_elements(positions) AS p(p)
     ORDER BY 2, 3
    ON CONFLICT ON CONSTRAINT consumer_offsets_pkey DO NOTHING;

    SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE l.next_offset <= l.first)
      INTO n_pos, n_ok
      FROM (SELECT o.next_offset, (p.p->>'first')::pg_catalog.int8 AS first
              FROM aegis.consumer_offsets o
              JOIN pg_catalog.jsonb_array_elements(positions) AS p(p)
                ON o.topic = p.p->>'topic'
               AND o.partition = (p.p->>'partition')::pg_catalog.int4
             WHERE o.group_id = consumer_claim.group_id
             ORDER BY o.topic, o.partition
               FOR UPDATE OF o) l;
    IF n_ok IS DISTINCT FROM pg_catalog.jsonb_array_length(positions) OR n_pos <> n_ok THEN
        RAISE EXCEPTION 'consumer_claim: part of the batch was applied already'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'aegis.consume_batch applies the rest of it.';
    END IF;

    UPDATE aegis.consumer_offsets o
       SET next_offset = (p.p->>'last')::pg_catalog.int8 + 1,
           updated_at = pg_catalog.now()
      FROM pg_catalog.jsonb_array_elements(positions) AS p(p)
     WHERE o.group_id = consumer_claim.group_id
       AND o.topic = p.p->>'topic'
       AND o.partition = (p.p->>'partition')::pg_catalog.int4;
    RETURN true;
END;
$$;

REVOKE ALL ON FUNCTION aegis.consumer_bytes(jsonb), aegis.consumer_handler_name(regprocedure),
    aegis.consumer_check_handler(text), aegis.consume_batch(text, regprocedure, jsonb, jsonb, jsonb),
    aegis.consumer_claim(text, jsonb) FROM PUBLIC;
