-- partitions: aegis.events is partitioned by range of id; partitions are made
-- ahead, a closed partition whose rows all expired is dropped whole, one with
-- a row that must stay is kept, and a publish beyond the last partition makes
-- its own (or says clearly why it cannot)
SET client_min_messages = warning;
-- a populated 0.2.0 store: the upgrade leaves it one table (publishing goes
-- on), the next aegis.maintain() converts it in place: the old table becomes
-- events_p0 for [MINVALUE, max(id) + 1), grants and members kept
DROP EXTENSION aegis_events CASCADE;
CREATE EXTENSION aegis_events VERSION '0.2.0';
SELECT count(aegis.publish_agent_status('conv-w', 'running')) AS published_on_020 FROM generate_series(1, 5);
SELECT aegis.publish('conv-topic', '{"n": 1}') > 0 AS topic_on_020;
CREATE ROLE aegis_part_reader;
GRANT USAGE ON SCHEMA aegis TO aegis_part_reader;
GRANT EXECUTE ON FUNCTION aegis.read_all(bigint, integer) TO aegis_part_reader;
GRANT SELECT ON aegis.events TO aegis_part_reader;
SELECT max(id) AS before_max, md5(string_agg(id || payload::text, ',' ORDER BY id)) AS before_md5 FROM aegis.events \gset
ALTER EXTENSION aegis_events UPDATE;
SELECT relkind AS upgraded_relkind FROM pg_class WHERE oid = 'aegis.events'::regclass;
SELECT aegis.publish_agent_status('conv-w', 'running') > :before_max AS published_before_conversion;
SELECT aegis.partitions_extend(aegis.safe_position(), 2) AS nothing_to_extend_yet;
SELECT aegis.maintain() ? 'runs' AS maintained;
SELECT relkind AS converted_relkind FROM pg_class WHERE oid = 'aegis.events'::regclass;
SELECT aegis.partition_events() AS converted_again;
SELECT lo IS NULL AS p0_from_minvalue, hi = :before_max + 2 AS p0_to_max_id_plus_1
  FROM aegis.event_partitions WHERE partition = 'aegis.events_p0'::regclass;
SELECT count(*) AS partitions FROM aegis.event_partitions;
SELECT md5(string_agg(id || payload::text, ',' ORDER BY id)) = :'before_md5' AS events_unchanged
  FROM aegis.events WHERE id <= :before_max;
SELECT count(*) AS read_all_rows FROM aegis.read_all(0, 100);
SELECT has_function_privilege('aegis_part_reader', 'aegis.read_all(bigint, integer)', 'EXECUTE') AS read_all_granted,
       has_table_privilege('aegis_part_reader', 'aegis.events', 'SELECT') AS events_granted,
       has_function_privilege('public', 'aegis.read_all(bigint, integer)', 'EXECUTE') AS public_granted;
SELECT count(*) AS members_again
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND (d.objid = 'aegis.events'::regclass OR d.objid = 'aegis.read_all(bigint, integer)'::regprocedure);
SELECT aegis.publish_agent_status('conv-w', 'running') > :before_max + 1 AS published_after_conversion;
SELECT tableoid <> 'aegis.events_p0'::regclass AS in_a_new_partition FROM aegis.events ORDER BY id DESC LIMIT 1;
DROP EXTENSION aegis_events CASCADE;
REVOKE USAGE ON SCHEMA aegis FROM aegis_part_reader;
DROP ROLE aegis_part_reader;
SELECT count(*) AS left_after_drop FROM pg_class WHERE relname LIKE 'events_p%';
-- a fresh install: partitioned from the start
SET aegis.partition_width = 10;
SET aegis.partitions_ahead = 2;
CREATE EXTENSION aegis_events;
SELECT relkind FROM pg_class WHERE oid = 'aegis.events'::regclass;
-- made ahead: the partition of the next position and two more, 10 positions each
SELECT count(*) AS partitions, min(hi - lo) AS min_width, max(hi - lo) AS max_width,
       bool_and(partition::text = 'aegis.events_p' || lo) AS named_by_lo,
       min(lo) <= aegis.safe_position() + 1 AS next_position_covered
  FROM aegis.event_partitions;
SELECT count(*) AS extension_members
  FROM pg_depend d JOIN aegis.event_partitions p ON d.objid = p.partition
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e';
-- publishes into the partition that holds the position until its last one
CREATE FUNCTION pg_temp.fill(s text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    pos bigint;
BEGIN
    LOOP
        pos := aegis.publish_agent_status(s, 'running');
        EXIT WHEN (SELECT p.hi - 1 FROM aegis.event_partitions p WHERE pos >= p.lo AND pos < p.hi) = pos;
    END LOOP;
    RETURN pos;
END;
$$;
CREATE FUNCTION pg_temp.rows_per_partition() RETURNS TABLE (n bigint, rows bigint) LANGUAGE sql AS $$
    SELECT row_number() OVER (ORDER BY p.lo), (SELECT count(*) FROM aegis.events e WHERE e.tableoid = p.partition)
      FROM aegis.event_partitions p ORDER BY p.lo
$$;
-- A: workspace events only; B: one topic event (undelivered) and workspace
-- events; C: one conversation event (kept a day) and workspace events;
-- D: one workspace event, so that C is closed
SELECT pg_temp.fill('part-a') AS a_last \gset
SELECT partition AS part_a FROM aegis.event_partitions WHERE :a_last >= lo AND :a_last < hi \gset
SELECT aegis.publish('part-topic', '{"n": 1}') AS b_topic \gset
SELECT pg_temp.fill('part-b') - :b_topic AS b_workspace_events;
SELECT aegis.publish_node_end('part-c', 'n1', 'ok') AS c_conv \gset
SELECT pg_temp.fill('part-c') - :c_conv AS c_workspace_events;
SELECT aegis.publish_agent_status('part-d', 'running') AS d_first \gset
SELECT * FROM pg_temp.rows_per_partition();
-- positions moved on: partitions ahead of the safe position are made again
SELECT aegis.partitions_extend(aegis.safe_position(), 4) AS made;
SELECT count(*) AS partitions_after_extend FROM aegis.event_partitions;
SELECT aegis.partitions_extend(aegis.safe_position(), 4) AS made_again;
SELECT aegis.partitions_extend(-1, 2);
-- retention: workspace and topic events go at once (topic events once
-- delivered), conversation events stay a day
SELECT aegis.set_retention('*', '0');
SELECT aegis.set_retention('conversation', '1 day');
SELECT count(*) AS workspace_events FROM aegis.events WHERE stream_kind = 'workspace' \gset
SELECT aegis.enforce_retention() = :workspace_events AS removed_every_workspace_event;
SELECT partitions_dropped, rows_dropped > 0 AS rows_dropped FROM aegis.retention_state;
SELECT to_regclass(:'part_a') IS NULL AS a_dropped_whole;
SELECT aegis.stream_horizon('workspace', 'part-a') = :a_last AS a_horizon_raised;
SELECT aegis.stream_horizon('workspace', 'part-b') > :b_topic AS b_horizon_raised;
SELECT * FROM pg_temp.rows_per_partition();
SELECT count(*) AS workspace_left FROM aegis.events WHERE stream_kind = 'workspace';
-- the drain delivers the topic event: B goes whole, C stays (its conversation event)
SELECT aegis.cursor_advance('kafka-drain', aegis.safe_position()) > 0 AS delivered;
SELECT aegis.enforce_retention() AS removed_after_delivery;
SELECT partitions_dropped, rows_dropped > 1 AS rows_dropped FROM aegis.retention_state;
SELECT aegis.stream_horizon('topic', 'part-topic') = :b_topic AS topic_horizon;
SELECT * FROM pg_temp.rows_per_partition();
SELECT count(*) AS conversation_kept FROM aegis.events WHERE id = :c_conv;
-- a publish beyond the last partition makes the partitions it needs
SET aegis.partitions_ahead = 0;
SELECT max(hi) AS last_hi FROM aegis.event_partitions \gset
SELECT :last_hi - aegis.safe_position() + 15 AS far_n \gset
SELECT count(aegis.publish_agent_status('part-far', 'running')) = :far_n AS published_far FROM generate_series(1, :far_n);
SELECT max(hi) > :last_hi AS extended, max(hi) - aegis.safe_position() <= 10 AS none_ahead FROM aegis.event_partitions;
SELECT count(*) = :far_n AS far_read FROM aegis.read_stream('workspace', 'part-far', 0, 100);
-- ... but not from a statement that reads aegis.events (ATTACH cannot alter
-- a table the session's running query has open): a clear error, nothing stored
\set VERBOSITY terse
SELECT count(aegis.publish_agent_status('part-read', 'running')) FROM aegis.events WHERE id > (SELECT 0);
\set VERBOSITY default
DO $$
DECLARE
    state text;
    hint text;
BEGIN
    PERFORM count(aegis.publish_agent_status('part-read', 'running')) FROM aegis.events WHERE id > (SELECT 0);
EXCEPTION WHEN object_in_use THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, hint = PG_EXCEPTION_HINT;
    RAISE WARNING 'sqlstate %, hint: %', state, hint;
END;
$$;
SELECT count(*) AS read_stored FROM aegis.events WHERE stream_id = 'part-read';
-- made ahead first, the same statement works
SELECT aegis.partitions_extend(aegis.safe_position(), 5) > 0 AS made_ahead;
SELECT count(aegis.publish_agent_status('part-read', 'running')) AS published_while_reading
  FROM (SELECT id FROM aegis.events WHERE id > (SELECT 0) LIMIT 20) e;
-- the append-only guard covers every partition
SELECT tableoid::regclass AS part_far FROM aegis.events WHERE stream_id = 'part-far' LIMIT 1 \gset
DELETE FROM aegis.events WHERE stream_id = 'part-far';
DELETE FROM :part_far;
TRUNCATE :part_far;
TRUNCATE aegis.events;
SELECT count(*) = :far_n AS far_still FROM aegis.read_stream('workspace', 'part-far', 0, 100);
