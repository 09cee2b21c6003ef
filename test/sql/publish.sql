-- publish: the seed's KafkaProducerManager.publish, inside the caller's transaction
CREATE TEMP TABLE ids (name text, id bigint);
INSERT INTO ids SELECT 'p1', aegis.publish('entity-extraction-worker',
    '{"event_type": "wells_scraped", "data": {"wells": 12}}', 'wells_scraped',
    '{"source": "ingestion"}');
INSERT INTO ids SELECT 'p2', aegis.publish('entity-extraction-worker', '[1, 2, 3]');
INSERT INTO ids SELECT 'p3', aegis.publish_event('entity-extraction-worker', 'leases_scraped',
    '{"leases": 3}', 'leases_scraped', '{"source": "ingestion"}');
-- ids increase in call order
SELECT (SELECT id FROM ids WHERE name = 'p2') - (SELECT id FROM ids WHERE name = 'p1') AS step1,
       (SELECT id FROM ids WHERE name = 'p3') - (SELECT id FROM ids WHERE name = 'p2') AS step2;
SELECT stream_kind, stream_id, event_type, payload, topic, key, headers
  FROM aegis.events e JOIN ids USING (id) ORDER BY id;
-- the event exists iff the transaction commits
BEGIN;
SELECT aegis.publish('rolled-back', '{"x": 1}') > 0 AS published;
ROLLBACK;
SELECT count(*) AS rolled_back_events FROM aegis.events WHERE topic = 'rolled-back';
BEGIN;
SAVEPOINT s;
SELECT aegis.publish('savepoint-topic', '{"x": 1}') > 0 AS published;
ROLLBACK TO SAVEPOINT s;
SELECT aegis.publish('savepoint-topic', '{"x": 2}') > 0 AS published;
COMMIT;
SELECT payload FROM aegis.events WHERE topic = 'savepoint-topic';
-- publishing before, inside and after subtransactions that commit or abort
BEGIN;
SELECT aegis.publish('subxact-topic', '{"x": 1}') > 0 AS published;
SAVEPOINT a;
SELECT aegis.publish('subxact-topic', '{"x": 2}') > 0 AS published;
RELEASE SAVEPOINT a;
SAVEPOINT b;
SELECT aegis.publish('subxact-topic', '{"x": 3}') > 0 AS published;
SELECT 1 / 0;
ROLLBACK TO SAVEPOINT b;
SELECT aegis.publish('subxact-topic', '{"x": 4}') > 0 AS published;
DO $$ BEGIN PERFORM aegis.publish('subxact-topic', '{"x": 5}'); RAISE EXCEPTION 'undo'; EXCEPTION WHEN OTHERS THEN NULL; END $$;
DO $$ BEGIN PERFORM aegis.publish('subxact-topic', '{"x": 6}'); END $$;
COMMIT;
SELECT string_agg(payload->>'x', ',' ORDER BY id) AS committed FROM aegis.events WHERE topic = 'subxact-topic';
-- bad input: each gets a clear error and stores nothing
SELECT count(*) AS before FROM aegis.events \gset
SELECT aegis.publish(NULL, '{}');
SELECT aegis.publish('t', NULL);
SELECT aegis.publish('', '{}');
SELECT aegis.publish('bad topic', '{}');
SELECT aegis.publish('..', '{}');
SELECT aegis.publish(repeat('t', 250), '{}');
SELECT aegis.publish('t', '{}', 'k', '[1]');
SELECT aegis.publish('t', '{}', 'k', '{"n": 1}');
SELECT aegis.publish('t', '{}', 'k', '{"aegis-event-id": "1"}');
SELECT aegis.publish_event('t', '', '{}');
SELECT aegis.publish_event('t', NULL, '{}');
SELECT aegis.publish_event('t', 'x', NULL);
SELECT count(*) = :before AS nothing_stored FROM aegis.events;
-- size limit (default 960 kB, configurable): the last byte in, the first byte out
SELECT aegis.publish('t', jsonb_build_object('blob', repeat('x', 983020))) > 0 AS at_limit_ok;
SELECT aegis.publish('t', jsonb_build_object('blob', repeat('x', 983021)));
SET aegis.max_payload_bytes = '2kB';
SELECT aegis.publish('t', jsonb_build_object('blob', repeat('x', 3000)));
SELECT aegis.publish('t', jsonb_build_object('blob', repeat('x', 1000))) > 0 AS small_ok;
RESET aegis.max_payload_bytes;
SELECT aegis.publish('t', jsonb_build_object('blob', repeat('x', 900000)), 'k', '{"h": "v"}') > 0 AS big_ok;
SELECT aegis.publish('t', jsonb_build_object('blob', repeat('x', 983000)), repeat('k', 40));
-- read-only transactions cannot publish
BEGIN READ ONLY;
SELECT aegis.publish('t', '{}');
ROLLBACK;
-- a publishing transaction cannot be prepared (two-phase commit is refused)
BEGIN;
SELECT aegis.publish('prepared', '{}') > 0 AS published;
PREPARE TRANSACTION 'aegis_p1';
SELECT count(*) AS prepared_xacts FROM pg_prepared_xacts;
SELECT count(*) AS prepared_events FROM aegis.events WHERE topic = 'prepared';
-- a transaction that did not publish can still be prepared
BEGIN;
CREATE TABLE t2pc (x int);
PREPARE TRANSACTION 'aegis_no_events';
COMMIT PREPARED 'aegis_no_events';
DROP TABLE t2pc;
-- ensure_topic: defaults 3 and 1; a declaration is fixed once made
SELECT aegis.ensure_topic('entity-extraction-worker');
SELECT aegis.ensure_topic('six-partitions', 6, 1);
SELECT aegis.ensure_topic('six-partitions', 6, 1);
SELECT topic, partitions, replication_factor FROM aegis.topics ORDER BY topic;
SELECT aegis.ensure_topic('six-partitions', 4, 1);
SELECT aegis.ensure_topic('zero', 0, 1);
SELECT aegis.ensure_topic('rf', 3, 0);
SELECT aegis.ensure_topic('bad/topic');
SELECT aegis.ensure_topic(NULL);
