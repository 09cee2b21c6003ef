-- trigger: aegis.emit_row_event(topic) on application tables
CREATE TABLE wells (api text PRIMARY KEY, name text, operator text, depth_ft int);
CREATE TRIGGER wells_events AFTER INSERT OR UPDATE OR DELETE ON wells
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('entity-extraction-worker');
SELECT max(id) AS base FROM aegis.events \gset
INSERT INTO wells VALUES ('42-329-40003', 'Smith #3', 'Devon', 9000);
UPDATE wells SET operator = 'Permian Basin Energy LLC' WHERE api = '42-329-40003';
DELETE FROM wells;
SELECT id - :base AS rel, stream_kind, event_type, topic, key, payload
  FROM aegis.events WHERE id > :base ORDER BY id;
-- rolled back changes publish nothing
BEGIN;
INSERT INTO wells VALUES ('x', 'y', 'z', 1);
ROLLBACK;
SELECT count(*) AS after_rollback FROM aegis.events WHERE id > :base;
-- composite and absent primary keys
CREATE TABLE leases (district int, lease int, name text, PRIMARY KEY (district, lease));
CREATE TRIGGER leases_events AFTER INSERT ON leases
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('leases');
INSERT INTO leases VALUES (8, 12345, 'Lease "A"');
CREATE TABLE logs (msg text);
CREATE TRIGGER logs_events AFTER INSERT ON logs
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('logs');
INSERT INTO logs VALUES ('hello');
SELECT event_type, key, payload FROM aegis.events WHERE topic IN ('leases', 'logs') ORDER BY id;
-- misuse gets a clear error
CREATE TABLE misuse (id int PRIMARY KEY);
CREATE TRIGGER m1 BEFORE INSERT ON misuse FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('t');
INSERT INTO misuse VALUES (1);
DROP TRIGGER m1 ON misuse;
CREATE TRIGGER m2 AFTER INSERT ON misuse FOR EACH STATEMENT EXECUTE FUNCTION aegis.emit_row_event('t');
INSERT INTO misuse VALUES (2);
DROP TRIGGER m2 ON misuse;
CREATE TRIGGER m3 AFTER INSERT ON misuse FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event();
INSERT INTO misuse VALUES (3);
DROP TRIGGER m3 ON misuse;
CREATE TRIGGER m4 AFTER INSERT ON misuse FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('bad topic!');
INSERT INTO misuse VALUES (4);
DROP TRIGGER m4 ON misuse;
SELECT count(*) AS misuse_rows FROM misuse;
SELECT aegis.emit_row_event();
