-- upgrade: the oldest version installs, and ALTER EXTENSION UPDATE reaches the newest
DROP EXTENSION aegis_events CASCADE;
CREATE EXTENSION aegis_events VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'aegis_events';
SELECT to_regclass('aegis.cursors') AS cursors_before;
SELECT aegis.publish('upgrade', '{"v": 1}') > 0 AS published_on_010;
-- 0.2.0's run requests: one ended by done, one by error, one still open
ALTER EXTENSION aegis_events UPDATE TO '0.2.0';
SELECT aegis.request_run('conv-old-done', 'q') > 0 AS old_done,
       aegis.publish_done('conv-old-done', 'exec-old', 'completed') > 0 AS done,
       aegis.request_run('conv-old-error', 'q') > 0 AS old_error,
       aegis.publish_error('conv-old-error', 'Budget exceeded') > 0 AS error,
       aegis.request_run('conv-old-open', 'q') > 0 AS old_open;
ALTER EXTENSION aegis_events UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'aegis_events';
SELECT to_regclass('aegis.cursors') AS cursors_after, to_regclass('aegis.drain_lag') AS lag_view;
SELECT payload FROM aegis.events WHERE topic = 'upgrade';
-- 0.2.0: cursors move forward only, and the drain's lag is visible
SELECT aegis.cursor_advance('kafka-drain', 0);
SELECT pending_events >= 1 AS has_pending, oldest_pending_age > '0'::interval AS has_age FROM aegis.drain_lag;
SELECT aegis.cursor_advance('kafka-drain', (SELECT max(id) FROM aegis.events)) = (SELECT max(id) FROM aegis.events) AS advanced;
SELECT aegis.cursor_advance('kafka-drain', 1) = (SELECT max(id) FROM aegis.events) AS never_back;
SELECT pending_events, oldest_pending_age FROM aegis.drain_lag;
SELECT aegis.cursor_advance('kafka-drain', -1);
SELECT aegis.cursor_advance('', 1);
-- 0.3.0: the old requests became runs, ended or queued (the clock ends the queued one)
SELECT conversation_id, state, attempt, error, end_event_id IS NOT NULL AS has_end,
       queued_at = requested_at AS queued_at_request
  FROM aegis.runs WHERE conversation_id LIKE 'conv-old-%' ORDER BY run_id;
-- run requests: once while the run is open, again after it finished
-- (0.3.0 takes requests only for configured agent types, and one open run
-- per conversation by default: these assertions configure the agents and
-- allow two open runs)
SELECT aegis.configure_agent('rule_37'), aegis.configure_agent('default');
SET aegis.max_open_runs = 2;
SELECT aegis.request_run('conv-u', 'Hello', 'rule37-agent', 'rule_37') AS r1 \gset
SELECT aegis.request_run('conv-u', 'Hello', 'rule37-agent', 'rule_37') = :r1 AS same_while_open;
SELECT aegis.request_run('conv-u', 'Other', 'rule37-agent', 'rule_37') <> :r1 AS other_message_new;
SELECT stream_kind, stream_id, event_type, payload FROM aegis.events WHERE id = :r1;
SELECT aegis.publish_done('conv-u', 'exec-1', 'completed') > 0 AS done;
SELECT aegis.request_run('conv-u', 'Hello', 'rule37-agent', 'rule_37') > :r1 AS new_after_done;
SELECT aegis.request_run(NULL, 'Hello');
SELECT aegis.request_run('conv u', 'Hello');
SELECT aegis.request_run('conv-u', 'Hello', 'a', 'bad type');
SELECT count(*) AS run_requests FROM aegis.run_requests WHERE conversation_id = 'conv-u';
