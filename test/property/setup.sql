-- test/property/setup.sql: the property test's tables and its driver,
-- run in a scratch database of a throwaway cluster (test/suites/12-property.sh).
CREATE EXTENSION aegis_events;
CREATE EXTENSION pageinspect;
CREATE TABLE prop (i int PRIMARY KEY, kind text, type text, body text);
-- one row per step a payload went through: 'ok' or the SQLSTATE and message
CREATE TABLE outcome (i int, step text, state text, msg text);
-- what was stored (a) and what PostgreSQL builds for it (b), uncompressed so
-- that their bytes can be compared on the pages (pageinspect)
CREATE TABLE readback (i int, a jsonb, b jsonb);
ALTER TABLE readback ALTER a SET STORAGE EXTERNAL, ALTER b SET STORAGE EXTERNAL;

CREATE FUNCTION step(i int, name text, sql text, VARIADIC args text[] DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    st text;
    m text;
    r bigint;
BEGIN
    EXECUTE sql INTO r USING args[1], args[2], args[3], args[4];
    INSERT INTO outcome VALUES (i, name, 'ok', NULL);
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
    INSERT INTO outcome VALUES (i, name, st, m);
    RETURN NULL;
END $$;

-- Each payload: parsed as jsonb, validated, published, read back.
CREATE FUNCTION run_props(lo int, hi int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
    p jsonb;
    pos bigint;
    ok bigint;
    node text;
BEGIN
    FOR r IN SELECT * FROM prop WHERE i >= lo AND i < hi ORDER BY i LOOP
        ok := step(r.i, 'parse', 'SELECT length($1::jsonb::text)', r.body);
        CONTINUE WHEN ok IS NULL;
        p := r.body::jsonb;
        IF r.kind = 'workspace' THEN
            PERFORM step(r.i, 'validate',
                'SELECT aegis.validate_workspace_event($1, $2::jsonb)::int', r.type, r.body);
            pos := step(r.i, 'publish',
                'SELECT aegis.publish_workspace_event($1, $2, $3::jsonb)', 'prop-' || r.i % 97, r.type, r.body);
            IF pos IS NOT NULL THEN
                INSERT INTO readback SELECT r.i, e.payload,
                    CASE WHEN p ? 'event_type' THEN p ELSE p || jsonb_build_object('event_type', r.type) END
                  FROM aegis.events e WHERE e.id = pos;
            END IF;
        ELSIF r.kind = 'conversation' THEN
            IF jsonb_typeof(p) <> 'object' OR jsonb_typeof(p->'event') IS DISTINCT FROM 'string'
               OR jsonb_typeof(p->'node') NOT IN ('string', 'null') THEN
                CONTINUE;
            END IF;
            node := p->>'node';
            PERFORM step(r.i, 'validate',
                'SELECT aegis.validate_conversation_event($1, $2, $3::jsonb)::int',
                p->>'event', node, (p->'data')::text);
            pos := step(r.i, 'publish',
                'SELECT aegis.publish_conversation_event($1, $2, $3, $4::jsonb)',
                'prop-' || r.i % 97, p->>'event', node, (p->'data')::text);
            IF pos IS NOT NULL THEN
                INSERT INTO readback SELECT r.i, e.payload,
                    CASE WHEN node IS NULL
                         THEN jsonb_build_object('event', p->'event', 'data', p->'data')
                         ELSE jsonb_build_object('event', p->'event', 'node', p->'node', 'data', p->'data') END
                  FROM aegis.events e WHERE e.id = pos;
            END IF;
        ELSE
            pos := step(r.i, 'publish', 'SELECT aegis.publish($1, $2::jsonb)', 'prop-topic', r.body);
            IF pos IS NOT NULL THEN
                INSERT INTO readback SELECT r.i, e.payload, p FROM aegis.events e WHERE e.id = pos;
            END IF;
        END IF;
    END LOOP;
END $$;
