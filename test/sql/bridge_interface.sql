-- bridge_interface: the functions aegis-bridge reads the store through
-- (conversation_finished, conversation_latest_run, topic_settings,
-- consumer_positions, drain_status), with good and bad input, and as a role
-- that holds EXECUTE on them and nothing else.
SELECT coalesce(max(id), 0) AS base FROM aegis.events \gset
-- (0.3.0 takes run requests only for configured agent types: this test's
-- runs are for agent type 'default', configured here and removed at the end)
SELECT aegis.configure_agent('default');

-- conversation_finished(conversation_id, after)
SELECT aegis.publish_node_end('bi-c1', 'n1', 'running') AS n1 \gset
SELECT aegis.conversation_finished('bi-c1', :n1) AS open_after_node;
SELECT aegis.publish_done('bi-c1', 'x1', 'completed') AS d1 \gset
SELECT aegis.conversation_finished('bi-c1', :d1) AS finished_at_done;
-- not yet read up to the done event: not finished
SELECT aegis.conversation_finished('bi-c1', :n1) AS not_read_to_done;
-- read past the done event (other streams' positions): still finished
SELECT aegis.publish('bi-other', '{"n": 1}') AS o1 \gset
SELECT aegis.conversation_finished('bi-c1', :o1) AS finished_past_done;
-- a run requested after the done event, up to after: not finished
SELECT aegis.request_run('bi-c1', 'again') AS r1 \gset
SELECT aegis.conversation_finished('bi-c1', :r1) AS run_requested_after_done;
-- but a run requested above after does not count, unless its event follows after in the stream:
-- the run's event is in stream ('run', ...), so only the run_requests row is
-- above after; the conversation stream has nothing after :d1
SELECT aegis.conversation_finished('bi-c1', :d1) AS run_above_after_ignored;
-- an event that follows after in the stream: not finished
SELECT aegis.publish_node_end('bi-c1', 'n2', 'running') AS n2 \gset
SELECT aegis.conversation_finished('bi-c1', :d1) AS more_follows;
SELECT aegis.publish_error('bi-c1', 'boom') AS e1 \gset
SELECT aegis.conversation_finished('bi-c1', :e1) AS finished_at_error;
-- unknown conversation, after 0, a huge after
SELECT aegis.conversation_finished('bi-none', :e1) AS unknown,
       aegis.conversation_finished('bi-c1', 0) AS from_start,
       aegis.conversation_finished('bi-c1', 9223372036854775807) AS huge_after;
-- the caller's own open transaction holds the safe position below its done
BEGIN;
SELECT aegis.publish_done('bi-c2', 'x2', 'completed') AS d2 \gset
SELECT aegis.conversation_finished('bi-c2', :d2) AS own_open_done;
COMMIT;
SELECT aegis.conversation_finished('bi-c2', :d2) AS committed_done;
-- the same answers as the query aegis-bridge 0.2 ran itself (sse.c's
-- SQL_FINISHED_AT), for every after from base to now, in three conversations
SELECT count(*) AS compared,
       count(*) FILTER (WHERE aegis.conversation_finished(c, a) IS DISTINCT FROM (
    WITH p AS (SELECT least(a, aegis.safe_position()) AS pos),
    last AS (SELECT e.id, e.event_type FROM aegis.events e, p
      WHERE e.stream_kind = 'conversation' AND e.stream_id = c AND e.id <= p.pos
      ORDER BY e.id DESC LIMIT 1)
    SELECT coalesce((SELECT last.event_type IN ('done', 'error') AND NOT EXISTS
      (SELECT 1 FROM aegis.run_requests r WHERE r.conversation_id = c
       AND r.event_id > last.id AND r.event_id <= a) FROM last), false)
    AND NOT EXISTS (SELECT 1 FROM aegis.read_stream('conversation', c, a, 1)))) AS differ,
       count(*) FILTER (WHERE aegis.conversation_finished(c, a)) AS finished
  FROM unnest(ARRAY['bi-c1', 'bi-c2', 'bi-none']) c,
       generate_series(:base, aegis.safe_position() + 1) a;
-- bad input
SELECT aegis.conversation_finished(NULL, 1);
SELECT aegis.conversation_finished('bi-c1', NULL);
SELECT aegis.conversation_finished('bi-c1', -1);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT aegis.conversation_finished('bi-c1', 1);
ROLLBACK;

-- conversation_latest_run(conversation_id)
SELECT aegis.conversation_latest_run('bi-c1') = :r1 AS latest_is_r1;
SELECT aegis.request_run('bi-c1', 'third') AS r2 \gset
SELECT aegis.conversation_latest_run('bi-c1') = :r2 AS latest_is_r2;
SELECT aegis.conversation_latest_run('bi-none') AS none;
BEGIN;
SELECT aegis.request_run('bi-c3', 'open') > 0 AS requested;
SELECT aegis.conversation_latest_run('bi-c3') AS above_safe_is_hidden;
COMMIT;
SELECT aegis.conversation_latest_run('bi-c3') > 0 AS visible_after_commit;
SELECT count(*) FILTER (WHERE aegis.conversation_latest_run(c) IS DISTINCT FROM
    (SELECT coalesce(max(r.event_id), 0) FROM aegis.run_requests r
      WHERE r.conversation_id = c AND r.event_id <= (SELECT aegis.safe_position()))) AS latest_differ
  FROM unnest(ARRAY['bi-c1', 'bi-c2', 'bi-c3', 'bi-none']) c;
SELECT aegis.conversation_latest_run(NULL);

-- topic_settings(topic)
SELECT aegis.ensure_topic('bi-topic', 4, 1);
SELECT * FROM aegis.topic_settings('bi-topic');
SELECT count(*) AS undeclared FROM aegis.topic_settings('bi-undeclared');
SELECT count(*) AS empty_name FROM aegis.topic_settings('');
SELECT * FROM aegis.topic_settings(NULL);

-- consumer_positions(group_id, partitions)
INSERT INTO aegis.consumer_offsets (group_id, topic, partition, next_offset)
VALUES ('bi-g', 't1', 0, 17), ('bi-g', 't1', 2, 5), ('bi-h', 't1', 1, 99);
SELECT * FROM aegis.consumer_positions('bi-g',
    '[{"topic": "t1", "partition": 2}, {"topic": "t1", "partition": 1}, {"topic": "t1", "partition": 0}, {"topic": "t2", "partition": 0}]');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1", "partition": 0.0, "extra": true}]');
SELECT count(*) AS unknown_group FROM aegis.consumer_positions('bi-none', '[{"topic": "t1", "partition": 0}]')
 WHERE next_offset IS NULL;
SELECT count(*) AS empty_array FROM aegis.consumer_positions('bi-g', '[]');
SELECT * FROM aegis.consumer_positions(NULL, '[]');
SELECT * FROM aegis.consumer_positions('bi-g', NULL);
SELECT * FROM aegis.consumer_positions('bi-g', '{"topic": "t1", "partition": 0}');
SELECT * FROM aegis.consumer_positions('bi-g', '"t1"');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1", "partition": 0}, 3]');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1"}]');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": 1, "partition": 0}]');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1", "partition": "0"}]');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1", "partition": -1}]');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1", "partition": 1.5}]');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1", "partition": 2147483648}]');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1", "partition": null}]');

-- drain_status(): the same row as aegis.drain_lag
SELECT (SELECT row(s.*)::text FROM aegis.drain_status() s) = (SELECT row(l.*)::text FROM aegis.drain_lag l) AS same_as_view;
SELECT aegis.cursor_advance('kafka-drain', aegis.safe_position()) >= 0 AS advanced;
SELECT pending_events, oldest_pending_age FROM aegis.drain_status();
SELECT aegis.publish('bi-topic', '{"late": true}') > 0 AS published;
SELECT cursor_position > 0 AS has_cursor, pending_events, oldest_pending_age >= '0'::interval AS has_age
  FROM aegis.drain_status();

-- each is SECURITY DEFINER with a pinned search_path, and granted to nobody
SELECT p.proname, p.prosecdef, p.provolatile, p.proconfig,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'aegis'
   AND p.proname IN ('conversation_finished', 'conversation_latest_run', 'topic_settings',
                     'consumer_positions', 'drain_status')
 ORDER BY 1;

-- a role with EXECUTE on these functions only reads through them
CREATE ROLE regress_bi_bridge;
GRANT USAGE ON SCHEMA aegis TO regress_bi_bridge;
GRANT EXECUTE ON FUNCTION aegis.conversation_finished(text, bigint),
    aegis.conversation_latest_run(text), aegis.topic_settings(text),
    aegis.consumer_positions(text, jsonb), aegis.drain_status() TO regress_bi_bridge;
SET ROLE regress_bi_bridge;
SELECT aegis.conversation_finished('bi-c2', :d2) AS role_finished,
       aegis.conversation_latest_run('bi-c1') = :r2 AS role_latest;
SELECT * FROM aegis.topic_settings('bi-topic');
SELECT * FROM aegis.consumer_positions('bi-g', '[{"topic": "t1", "partition": 0}]');
SELECT pending_events FROM aegis.drain_status();
-- and not the tables
SELECT count(*) FROM aegis.run_requests;
SELECT count(*) FROM aegis.consumer_offsets;
SELECT aegis.safe_position();
RESET ROLE;
-- without the grant: refused
CREATE ROLE regress_bi_nobody;
GRANT USAGE ON SCHEMA aegis TO regress_bi_nobody;
SET ROLE regress_bi_nobody;
SELECT aegis.conversation_finished('bi-c1', 1);
SELECT * FROM aegis.drain_status();
RESET ROLE;
REVOKE ALL ON SCHEMA aegis FROM regress_bi_bridge, regress_bi_nobody;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aegis FROM regress_bi_bridge;
DROP ROLE regress_bi_bridge;
DROP ROLE regress_bi_nobody;
DELETE FROM aegis.consumer_offsets WHERE group_id IN ('bi-g', 'bi-h');
DELETE FROM aegis.agents WHERE agent_type = 'default';
