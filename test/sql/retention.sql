-- retention: policies, enforcement, horizons, and the drain's cursor as a hard limit
SET client_min_messages = warning;
SELECT aegis.cursor_advance('kafka-drain', (SELECT coalesce(max(id), 0) FROM aegis.events)) >= 0 AS drain_caught_up;
SELECT max(id) AS base FROM aegis.events \gset
-- bad arguments: unknown kind, negative interval, unknown topic, NULLs
SELECT aegis.set_retention('bogus', '1 day');
SELECT aegis.set_retention(NULL, '1 day');
SELECT aegis.set_retention('workspace', '-1 second');
SELECT aegis.set_topic_retention('no-such-topic', '1 day');
SELECT aegis.set_topic_retention('', '1 day');
SELECT aegis.set_topic_retention('*', '-1 day');
SELECT aegis.set_topic_retention('*', '1 day', NULL);
SELECT aegis.set_dead_letter_retention('-5 minutes');
SELECT aegis.set_run_retention('-1 day');
SELECT aegis.stream_horizon('bogus', 'x');
SELECT aegis.stream_horizon('workspace', NULL);
SELECT count(*) AS policies_after_bad_input FROM aegis.retention_policies;
-- nothing removed without a policy
SELECT count(aegis.publish_agent_status('ret-w1', 'running')) FROM generate_series(1, 5);
SELECT count(aegis.publish_agent_status('ret-w2', 'running')) FROM generate_series(1, 3);
SELECT count(aegis.publish_node_end('ret-c1', 'n1', 'ok')) FROM generate_series(1, 4);
SELECT aegis.enforce_retention() AS removed_without_policy;
SELECT aegis.stream_horizon('workspace', 'ret-w1') AS horizon_before;
-- a kind policy: workspace events go, conversation events stay
SELECT aegis.set_retention('workspace', '0');
SELECT aegis.set_retention('conversation', '1 day');
SELECT target, name, keep, force, rows > 0 AS holds_rows FROM aegis.retention ORDER BY target, name;
SELECT aegis.enforce_retention() >= 8 AS removed_workspace;
SELECT count(*) AS workspace_left FROM aegis.events WHERE stream_kind = 'workspace';
SELECT count(*) AS conversation_left FROM aegis.events WHERE stream_id = 'ret-c1';
SELECT aegis.stream_horizon('workspace', 'ret-w1') = (SELECT max(id) FROM aegis.events) - 4 - 3 AS w1_horizon_is_its_last,
       aegis.stream_horizon('workspace', 'ret-w2') = (SELECT max(id) FROM aegis.events) - 4 AS w2_horizon,
       aegis.stream_horizon('conversation', 'ret-c1') AS c1_horizon,
       aegis.stream_horizon('workspace', 'never-seen') AS unknown_stream;
-- a resuming SSE client's first batch: a reset marker below the horizon, rows at or above it
SELECT id IS NULL AS marker, event_type, payload, horizon = aegis.stream_horizon('workspace', 'ret-w1') AS at_horizon
  FROM aegis.read_stream_resume('workspace', 'ret-w1', aegis.stream_horizon('workspace', 'ret-w1') - 1, 10);
SELECT count(*) AS rows_at_horizon
  FROM aegis.read_stream_resume('conversation', 'ret-c1', aegis.stream_horizon('conversation', 'ret-c1'), 10);
SELECT * FROM aegis.read_stream_resume('bogus', 'x', 0, 10);
-- readers after retention: the retained stream reads whole, the removed one reads empty
SELECT count(*) AS c1_read FROM aegis.read_stream('conversation', 'ret-c1', 0, 100);
SELECT count(*) AS w1_read FROM aegis.read_stream('workspace', 'ret-w1', 0, 100);
-- a stream's later events stay until they expire
SELECT aegis.publish_agent_status('ret-w1', 'completed') AS later \gset
SELECT aegis.set_retention('workspace', '1 hour');
SELECT aegis.enforce_retention() AS removed_within_keep;
SELECT count(*) AS later_kept FROM aegis.events WHERE id = :later;
-- topic events: never removed while the drain has not delivered them
SELECT aegis.set_retention('*', '0');
SELECT count(aegis.publish('ret-topic', jsonb_build_object('n', n))) AS published FROM generate_series(1, 6) n;
SELECT max(id) AS topic_last FROM aegis.events WHERE topic = 'ret-topic' \gset
SELECT aegis.cursor_advance('kafka-drain', :topic_last - 3) > 0 AS drain_delivered_three;
SELECT aegis.enforce_retention() >= 3 AS removed_delivered;
SELECT payload->>'n' AS undelivered_kept FROM aegis.events WHERE topic = 'ret-topic' ORDER BY id;
SELECT aegis.cursor_advance('kafka-drain', :topic_last) > 0 AS drain_delivered_all;
SELECT aegis.enforce_retention() AS removed_after_delivery;
SELECT count(*) AS topic_left FROM aegis.events WHERE topic = 'ret-topic';
SELECT aegis.set_retention('*', NULL);
-- topic policies count from delivery; force removes undelivered events
SELECT count(aegis.publish('ret-t2', jsonb_build_object('n', n))) AS published FROM generate_series(1, 4) n;
SELECT aegis.set_topic_retention('ret-t2', '0');
SELECT aegis.enforce_retention() AS t2_undelivered_removed;
SELECT aegis.cursor_advance('kafka-drain', (SELECT max(id) FROM aegis.events)) > 0 AS t2_delivered;
SELECT aegis.enforce_retention() AS t2_marked_now;
SELECT aegis.enforce_retention() AS t2_removed_after_mark;
SELECT aegis.publish('ret-t3', '{"x": 1}') > 0 AS published;
SELECT aegis.set_topic_retention('ret-t3', '0');
SELECT aegis.enforce_retention() AS t3_kept_undelivered;
SELECT aegis.set_topic_retention('ret-t3', '0', force => true);
SELECT aegis.enforce_retention() AS t3_forced;
SELECT count(*) AS t3_left FROM aegis.events WHERE topic = 'ret-t3';
SELECT aegis.stream_horizon('topic', 'ret-t3') > 0 AS t3_has_horizon;
-- removing a policy keeps everything from then on
SELECT aegis.set_retention('workspace', NULL);
SELECT aegis.set_retention('conversation', NULL);
SELECT aegis.set_topic_retention('ret-t2', NULL);
SELECT aegis.set_topic_retention('ret-t3', NULL);
SELECT count(*) AS policies_left FROM aegis.retention_policies;
-- dead letters and finished run requests
INSERT INTO aegis.dead_letters (group_id, topic, partition, "offset", error, failed_at)
VALUES ('g', 't', 0, 1, 'old', now() - interval '2 days'), ('g', 't', 0, 2, 'new', now());
SELECT aegis.set_dead_letter_retention('1 day');
SELECT aegis.configure_agent('ret_agent') IS NULL AS configured;
SELECT aegis.request_run('ret-conv', 'hi', NULL, 'ret_agent') AS run1 \gset
SELECT aegis.request_run('ret-conv2', 'hi', NULL, 'ret_agent') AS run2 \gset
UPDATE aegis.run_requests SET state = 'done', finished_at = now() - interval '3 days' WHERE event_id = :run1;
SELECT aegis.set_run_retention('1 day');
SELECT aegis.enforce_retention() AS events_removed;
SELECT error FROM aegis.dead_letters ORDER BY id;
SELECT event_id = :run2 AS open_run_kept FROM aegis.run_requests WHERE event_id IN (:run1, :run2);
-- rows as the view counts them: finished run requests (the earlier tests' are in this database too)
SELECT target, rows = CASE target WHEN 'run_requests' THEN (SELECT count(*) FROM aegis.run_requests WHERE state IN ('done', 'failed'))
                               WHEN 'dead_letters' THEN 1 END AS rows_counted
  FROM aegis.retention ORDER BY target;
SELECT aegis.set_dead_letter_retention(NULL);
SELECT aegis.set_run_retention(NULL);
-- maintain() notes the drain and enforces every aegis.retention_interval
SELECT (aegis.maintain() -> 'retention') ? 'enforced' AS maintain_reports_retention;
-- the guard still holds for everyone else
CREATE ROLE ret_user;
GRANT USAGE ON SCHEMA aegis TO ret_user;
GRANT SELECT, DELETE ON aegis.events TO ret_user;
SET ROLE ret_user;
SET aegis.retention_deleting = on;
DELETE FROM aegis.events WHERE id = :later;
SELECT aegis.enforce_retention();
RESET ROLE;
SELECT count(*) AS later_still_there FROM aegis.events WHERE id = :later;
REVOKE ALL ON aegis.events FROM ret_user;
REVOKE ALL ON SCHEMA aegis FROM ret_user;
DROP ROLE ret_user;
