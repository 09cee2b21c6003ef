-- readers: read_all, wait_all, read_stream, read_topic_events, stream_position, safe_position
SELECT max(id) AS base FROM aegis.events \gset
SELECT aegis.publish_agent_status('r-1', 'started') - :base AS a,
       aegis.publish_agent_status('r-2', 'started') - :base AS b,
       aegis.publish('reader-topic', '{"n": 1}', 'k') - :base AS c,
       aegis.publish_agent_status('r-1', 'running') - :base AS d;
-- with no transaction open, everything is safe
SELECT aegis.safe_position() = (SELECT max(id) FROM aegis.events) AS all_safe;
SELECT id - :base AS rel, stream_kind, stream_id, event_type FROM aegis.read_all(:base, 10);
SELECT id - :base AS rel, event_type FROM aegis.read_all(:base, 2);
SELECT id - :base AS rel, event_type FROM aegis.read_all(:base + 2, 10);
SELECT id - :base AS rel, payload FROM aegis.read_stream('workspace', 'r-1', :base, 10);
SELECT id - :base AS rel, payload FROM aegis.read_stream('workspace', 'r-1', :base + 1, 10);
SELECT count(*) FROM aegis.read_stream('workspace', 'no-such', 0, 10);
SELECT id - :base AS rel, topic, key FROM aegis.read_topic_events(:base, 10);
SELECT aegis.stream_position('workspace', 'r-1') - :base AS r1,
       aegis.stream_position('workspace', 'r-2') - :base AS r2,
       aegis.stream_position('workspace', 'no-such') AS none;
-- a reader's own open transaction holds its horizon below its own events
BEGIN;
SELECT aegis.publish_agent_status('r-1', 'completed') - :base AS e;
SELECT aegis.safe_position() - :base AS safe_inside;
SELECT count(*) AS visible_own FROM aegis.read_stream('workspace', 'r-1', :base, 10);
COMMIT;
SELECT aegis.safe_position() - :base AS safe_after;
-- bad arguments
SELECT * FROM aegis.read_all(-1, 10);
SELECT * FROM aegis.read_all(0, 0);
SELECT * FROM aegis.read_all(0, 100001);
SELECT * FROM aegis.read_stream('nope', 'x', 0, 10);
SELECT aegis.stream_position('Workspace', 'x');
SELECT count(*) FROM aegis.read_all(NULL, 10);
-- wait_all: read_all that waits; with events waiting it returns at once
SELECT id - :base AS rel, event_type FROM aegis.wait_all(:base, 2, 0);
SELECT id - :base AS rel, event_type FROM aegis.wait_all(:base + 2, 10, 1000);
-- nothing after the safe position: empty once timeout_ms has passed
SELECT count(*) AS none_new FROM aegis.wait_all(aegis.safe_position(), 10, 50);
-- a cancel (here statement_timeout) ends the wait
SET statement_timeout = '100ms';
SELECT count(*) FROM aegis.wait_all(aegis.safe_position(), 10, 5000);
RESET statement_timeout;
SELECT * FROM aegis.wait_all(-1, 10, 0);
SELECT * FROM aegis.wait_all(0, 0, 0);
SELECT * FROM aegis.wait_all(0, 10, -1);
SELECT * FROM aegis.wait_all(0, 10, 60001);
SELECT count(*) FROM aegis.wait_all(0, 10, NULL);
-- readers need READ COMMITTED: a snapshot older than the horizon could skip
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM aegis.read_all(0, 1);
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT aegis.safe_position();
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM aegis.wait_all(0, 1, 0);
ROLLBACK;
