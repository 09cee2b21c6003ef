/* aegis_events 0.1.0: the event store, publish functions, validation and readers */

\echo Use "CREATE EXTENSION aegis_events" to load this file. \quit

/* Fails with a hint unless shared_preload_libraries has aegis_events. */
CREATE FUNCTION aegis.require_preload() RETURNS void
AS 'MODULE_PATHNAME', 'aegis_require_preload_sql'
LANGUAGE C;
SELECT aegis.require_preload();

/*
 * The store.  One append-only table; every row's id is its position in the
 * one order all readers share (see docs/ORDERING.md).  Rows are written only
 * by the C publish functions, which take the position from shared memory.
 */
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
);

COMMENT ON TABLE aegis.events IS
    'aegis_events store: append-only; id is the commit-safe position';

CREATE INDEX events_stream_idx ON aegis.events (stream_kind, stream_id, id);
CREATE INDEX events_topic_idx ON aegis.events (id) WHERE topic IS NOT NULL;

/* Kafka topics declared with non-default settings (aegis.ensure_topic). */
CREATE TABLE aegis.topics (
    topic              text        NOT NULL PRIMARY KEY,
    partitions         integer     NOT NULL,
    replication_factor integer     NOT NULL,
    declared_at        timestamptz NOT NULL DEFAULT now()
);

/* The eight workspace event types of the seed's EVENT_MODELS. */
CREATE TYPE aegis.workspace_event_type AS ENUM (
    'checklist_item_update',
    'artifact_generated',
    'data_table_update',
    'form_field_update',
    'validation_result',
    'spatial_update',
    'agent_status',
    'assessment_complete'
);

/* ---- the append-only guard ---- */

CREATE FUNCTION aegis.refuse_change() RETURNS trigger
AS 'MODULE_PATHNAME', 'aegis_refuse_change'
LANGUAGE C;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON aegis.events
    FOR EACH ROW EXECUTE FUNCTION aegis.refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON aegis.events
    FOR EACH STATEMENT EXECUTE FUNCTION aegis.refuse_change();

/* ---- publish ---- */

CREATE FUNCTION aegis.publish(topic text, value jsonb,
                              key text DEFAULT NULL, headers jsonb DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_publish'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION aegis.publish_event(topic text, event_type text, data jsonb,
                                    key text DEFAULT NULL, headers jsonb DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_publish_event'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION aegis.ensure_topic(topic text, partitions integer DEFAULT 3,
                                   replication_factor integer DEFAULT 1)
RETURNS void
AS 'MODULE_PATHNAME', 'aegis_ensure_topic'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION aegis.publish_workspace_event(checklist_id text, event_type text,
                                              payload jsonb)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_publish_workspace_event'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION aegis.publish_conversation_event(conversation_id text, event text,
                                                 node text, data jsonb)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_publish_conversation_event'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

/* Validation alone (used by tests and by callers who want to check first). */
CREATE FUNCTION aegis.validate_workspace_event(event_type text, payload jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'aegis_validate_workspace_event'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION aegis.validate_conversation_event(event text, node text, data jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'aegis_validate_conversation_event'
LANGUAGE C STABLE PARALLEL SAFE;

/* ---- typed workspace helpers: one per event type ---- */

CREATE FUNCTION aegis.publish_checklist_item_update(
    checklist_id text, item_index integer, item_name text, status text,
    summary text DEFAULT NULL, completed_by text DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_workspace_event(checklist_id, 'checklist_item_update',
        jsonb_build_object('item_index', item_index, 'item_name', item_name,
                           'status', status, 'summary', summary,
                           'completed_by', completed_by));
END;

CREATE FUNCTION aegis.publish_artifact_generated(
    checklist_id text, artifact_id text, name text, artifact_type text,
    item_index integer DEFAULT NULL, url text DEFAULT NULL,
    mime_type text DEFAULT NULL, size_bytes bigint DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_workspace_event(checklist_id, 'artifact_generated',
        jsonb_build_object('artifact_id', artifact_id, 'name', name,
                           'artifact_type', artifact_type, 'item_index', item_index,
                           'url', url, 'mime_type', mime_type,
                           'size_bytes', size_bytes));
END;

CREATE FUNCTION aegis.publish_data_table_update(
    checklist_id text, item_index integer, columns jsonb, rows jsonb,
    total_rows integer)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_workspace_event(checklist_id, 'data_table_update',
        jsonb_build_object('item_index', item_index, 'columns', columns,
                           'rows', rows, 'total_rows', total_rows));
END;

CREATE FUNCTION aegis.publish_form_field_update(
    checklist_id text, item_index integer, field_name text, field_value jsonb,
    confidence double precision, source text DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_workspace_event(checklist_id, 'form_field_update',
        jsonb_build_object('item_index', item_index, 'field_name', field_name,
                           'field_value', field_value, 'confidence', confidence,
                           'source', source));
END;

CREATE FUNCTION aegis.publish_validation_result(
    checklist_id text, item_index integer, check_name text, passed boolean,
    severity text, message text DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_workspace_event(checklist_id, 'validation_result',
        jsonb_build_object('item_index', item_index, 'check_name', check_name,
                           'passed', passed, 'severity', severity,
                           'message', message));
END;

CREATE FUNCTION aegis.publish_spatial_update(
    checklist_id text, item_index integer, geojson jsonb,
    distances jsonb DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_workspace_event(checklist_id, 'spatial_update',
        jsonb_build_object('item_index', item_index, 'geojson', geojson,
                           'distances', distances));
END;

CREATE FUNCTION aegis.publish_agent_status(
    checklist_id text, status text, message text DEFAULT NULL,
    progress double precision DEFAULT NULL, item_index integer DEFAULT NULL,
    agent text DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_workspace_event(checklist_id, 'agent_status',
        jsonb_build_object('status', status, 'message', message,
                           'progress', progress, 'item_index', item_index,
                           'agent', agent));
END;

CREATE FUNCTION aegis.publish_assessment_complete(
    checklist_id text, total_items integer, completed_items integer,
    passed_checks integer DEFAULT NULL, failed_checks integer DEFAULT NULL,
    summary text DEFAULT NULL, duration_ms bigint DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_workspace_event(checklist_id, 'assessment_complete',
        jsonb_build_object('total_items', total_items,
                           'completed_items', completed_items,
                           'passed_checks', passed_checks,
                           'failed_checks', failed_checks,
                           'summary', summary, 'duration_ms', duration_ms));
END;

/* ---- conversation helpers ---- */

CREATE FUNCTION aegis.publish_node_end(
    conversation_id text, node text, status text,
    tokens_used integer DEFAULT NULL, message jsonb DEFAULT NULL,
    skills_injected text[] DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_conversation_event(conversation_id, 'node_end', node,
        jsonb_build_object('status', status, 'tokens_used', tokens_used,
                           'message', message,
                           'skills_injected', to_jsonb(skills_injected)));
END;

CREATE FUNCTION aegis.publish_done(
    conversation_id text, execution_id text, status text,
    tokens_used integer DEFAULT NULL, cost_usd numeric DEFAULT NULL,
    skills_injected text[] DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_conversation_event(conversation_id, 'done', NULL,
        jsonb_build_object('execution_id', execution_id, 'status', status,
                           'tokens_used', tokens_used, 'cost_usd', cost_usd,
                           'skills_injected', to_jsonb(skills_injected)));
END;

CREATE FUNCTION aegis.publish_error(conversation_id text, error text)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    SELECT aegis.publish_conversation_event(conversation_id, 'error', NULL,
        jsonb_build_object('error', error));
END;

/* ---- application triggers ---- */

CREATE FUNCTION aegis.emit_row_event() RETURNS trigger
AS 'MODULE_PATHNAME', 'aegis_emit_row_event'
LANGUAGE C;

/* ---- readers: only up to the safe position, in id order ---- */

CREATE FUNCTION aegis.safe_position() RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_safe_position'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION aegis.read_all(after bigint, max_events integer DEFAULT 1000)
RETURNS SETOF aegis.events
AS 'MODULE_PATHNAME', 'aegis_read_all'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION aegis.read_stream(stream_kind text, stream_id text, after bigint,
                                  max_events integer DEFAULT 1000)
RETURNS SETOF aegis.events
AS 'MODULE_PATHNAME', 'aegis_read_stream'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION aegis.read_topic_events(after bigint, max_events integer DEFAULT 1000)
RETURNS SETOF aegis.events
AS 'MODULE_PATHNAME', 'aegis_read_topic_events'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION aegis.stream_position(stream_kind text, stream_id text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aegis_stream_position'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

/* Privileges are granted per function by the administrator (see README). */
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aegis FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA aegis FROM PUBLIC;
