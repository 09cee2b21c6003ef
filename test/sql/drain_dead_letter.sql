-- drain_dead_letter: the Kafka drain records an event Kafka refused for good
-- (aegis.drain_dead_letter, SECURITY DEFINER), counted by drain_lag and
-- drain_status(); bad input gets a clear error
SELECT aegis.publish('dl-topic', '{"n": 1}') AS dl_id \gset
SELECT aegis.publish_agent_status('ws-dl', 'running') IS NOT NULL AS published;
SELECT aegis.drain_dead_letter(:dl_id, 'Broker: Message size too large');
SELECT event_id = :dl_id AS same_id, topic, error FROM aegis.drain_dead_letters;
-- recording it again keeps one row with the newest error
SELECT aegis.drain_dead_letter(:dl_id, 'topic not in --topic-allow');
SELECT count(*), min(error) FROM aegis.drain_dead_letters;
SELECT dead_letters FROM aegis.drain_lag;
SELECT dead_letters FROM aegis.drain_status();
-- bad input
SELECT aegis.drain_dead_letter(NULL, 'x');
SELECT aegis.drain_dead_letter(:dl_id, '');
DO $$ BEGIN
    PERFORM aegis.drain_dead_letter((SELECT max(id) FROM aegis.events WHERE topic IS NULL), 'x');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'an event without a topic: refused (%)', SQLSTATE;
END $$;
SELECT aegis.drain_dead_letter(-1, 'x');
-- a long error is cut at 2000 characters
SELECT aegis.drain_dead_letter(:dl_id, repeat('e', 5000));
SELECT length(error) FROM aegis.drain_dead_letters;
-- nothing is granted to PUBLIC; a role granted EXECUTE needs no table privilege
SELECT has_table_privilege('public', 'aegis.drain_dead_letters', 'SELECT') AS public_reads,
       has_function_privilege('public', 'aegis.drain_dead_letter(bigint, text)', 'EXECUTE') AS public_runs;
CREATE ROLE regress_dl_drain;
GRANT USAGE ON SCHEMA aegis TO regress_dl_drain;
GRANT EXECUTE ON FUNCTION aegis.drain_dead_letter(bigint, text) TO regress_dl_drain;
SET ROLE regress_dl_drain;
SELECT aegis.drain_dead_letter(:dl_id, 'as the drain role');
SELECT count(*) FROM aegis.drain_dead_letters;
RESET ROLE;
SELECT error FROM aegis.drain_dead_letters;
DELETE FROM aegis.drain_dead_letters;
REVOKE ALL ON SCHEMA aegis FROM regress_dl_drain;
REVOKE ALL ON FUNCTION aegis.drain_dead_letter(bigint, text) FROM regress_dl_drain;
DROP ROLE regress_dl_drain;
