-- hardening: the open publishers are visible (aegis.open_publishers,
-- aegis.publisher_status), and the bridge's writes need EXECUTE only
-- (request_run, cursor_advance, cursor_position run with the owner's rights)
-- (0.3.0 takes run requests only for configured agent types: this test's
-- runs are for agent type 'default', configured here and removed at the end)
SELECT aegis.configure_agent('default');
-- nothing open: no rows, a count of 0 and NULLs
SELECT count(*) AS open_rows FROM aegis.open_publishers;
SELECT * FROM aegis.publisher_status();
-- inside a publishing transaction: this session, its database and role, its
-- lowest position (the safe position is one below it)
BEGIN;
SELECT aegis.publish('hardening', '{"n": 1}') AS p1 \gset
SELECT aegis.publish('hardening', '{"n": 2}') > :p1 AS second_higher;
SELECT pid = pg_backend_pid() AS own_pid, database = current_database() AS own_db,
       role = current_user AS own_role, first_position = :p1 AS lowest_position,
       publishing_since <= clock_timestamp() AS since_past,
       publishing_for >= '0'::interval AS has_age,
       xact_start = now() AS xact_start, state
  FROM aegis.open_publishers;
SELECT aegis.safe_position() = :p1 - 1 AS held_below_it;
SELECT open_publishers, oldest_pid = pg_backend_pid() AS oldest_is_me,
       oldest_database = current_database() AS db, oldest_age >= '0'::interval AS has_age
  FROM aegis.publisher_status();
COMMIT;
SELECT count(*) AS open_after_commit FROM aegis.open_publishers;
BEGIN;
SELECT aegis.publish('hardening', '{"n": 3}') > 0 AS published;
ROLLBACK;
SELECT open_publishers FROM aegis.publisher_status();
-- granted to nobody; SECURITY DEFINER with a pinned search_path
SELECT p.oid::regprocedure AS function, p.prosecdef, p.proconfig,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'aegis'
   AND p.proname IN ('publisher_slots', 'open_publishers', 'publisher_status',
                     'request_run', 'cursor_advance', 'cursor_position', 'ensure_topic')
 ORDER BY p.oid::regprocedure::text;
SELECT has_table_privilege('public', 'aegis.open_publishers', 'SELECT') AS public_select;
-- a role with EXECUTE only: run requests, cursors, the open publishers
CREATE ROLE regress_hd_bridge;
GRANT USAGE ON SCHEMA aegis TO regress_hd_bridge;
GRANT EXECUTE ON FUNCTION aegis.request_run(text, text, text, text),
    aegis.cursor_advance(text, bigint), aegis.cursor_position(text),
    aegis.open_publishers(), aegis.publisher_status() TO regress_hd_bridge;
GRANT SELECT ON aegis.open_publishers TO regress_hd_bridge;
SET ROLE regress_hd_bridge;
SELECT aegis.request_run('hd-conv', 'Hello') AS run1 \gset
SELECT aegis.request_run('hd-conv', 'Hello') = :run1 AS same_while_open;
SELECT aegis.cursor_advance('hd-cursor', 7);
SELECT aegis.cursor_position('hd-cursor');
SELECT count(*) AS open_rows FROM aegis.open_publishers;
SELECT open_publishers FROM aegis.publisher_status();
-- still no table access, no internal function
SELECT count(*) FROM aegis.run_requests;
SELECT count(*) FROM aegis.cursors;
SELECT count(*) FROM aegis.publisher_slots();
SELECT aegis.publish_run_request('hd-conv', 'x', NULL, NULL);
-- bad input still gets the function's own errors
SELECT aegis.request_run(NULL, 'Hello');
SELECT aegis.cursor_advance('hd-cursor', -1);
RESET ROLE;
SELECT conversation_id, message FROM aegis.run_requests WHERE event_id = :run1;
-- a publisher with EXECUTE on ensure_topic declares topics
CREATE ROLE regress_hd_app;
GRANT USAGE ON SCHEMA aegis TO regress_hd_app;
GRANT EXECUTE ON FUNCTION aegis.ensure_topic(text, integer, integer) TO regress_hd_app;
SET ROLE regress_hd_app;
SELECT aegis.ensure_topic('hd-topic', 2, 1);
SELECT aegis.ensure_topic('hd-topic', 2, 1);
SELECT aegis.ensure_topic('hd-topic', 3, 1);
SELECT aegis.ensure_topic('', 3, 1);
SELECT count(*) FROM aegis.topics;
RESET ROLE;
SELECT topic, partitions, replication_factor FROM aegis.topics WHERE topic = 'hd-topic';
REVOKE ALL ON SCHEMA aegis FROM regress_hd_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aegis FROM regress_hd_app;
DROP ROLE regress_hd_app;
CREATE ROLE regress_hd_nobody;
GRANT USAGE ON SCHEMA aegis TO regress_hd_nobody;
SET ROLE regress_hd_nobody;
SELECT count(*) FROM aegis.open_publishers;
SELECT * FROM aegis.publisher_status();
SELECT aegis.request_run('hd-conv', 'Hello');
RESET ROLE;
REVOKE ALL ON SCHEMA aegis FROM regress_hd_bridge, regress_hd_nobody;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aegis FROM regress_hd_bridge;
REVOKE ALL ON aegis.open_publishers FROM regress_hd_bridge;
DROP ROLE regress_hd_bridge;
DROP ROLE regress_hd_nobody;
DELETE FROM aegis.cursors WHERE name = 'hd-cursor';
DELETE FROM aegis.agents WHERE agent_type = 'default';
