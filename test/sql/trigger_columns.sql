-- trigger_columns: aegis.emit_row_event(topic, 'columns=…' | 'exclude=…',
-- 'oversize=reference' | 'oversize=error'): publish only some columns, and
-- what a row too large for aegis.max_payload_bytes does
CREATE TABLE accounts (id int PRIMARY KEY, email text, status text, password_hash text, notes text);
-- only the listed columns are published (the key is always the primary key)
CREATE TRIGGER accounts_some AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('accounts', 'columns=id,status');
SELECT coalesce(max(id), 0) AS base FROM aegis.events \gset
INSERT INTO accounts VALUES (1, 'a@example.com', 'new', 'secret-hash', 'n');
UPDATE accounts SET status = 'active' WHERE id = 1;
DELETE FROM accounts WHERE id = 1;
SELECT event_type, key, payload FROM aegis.events WHERE id > :base ORDER BY id;
DROP TRIGGER accounts_some ON accounts;
-- every column but the excluded ones
CREATE TRIGGER accounts_but AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('accounts', 'exclude=password_hash, email');
SELECT coalesce(max(id), 0) AS base FROM aegis.events \gset
INSERT INTO accounts VALUES (2, 'b@example.com', 'new', 'secret-hash', 'n');
SELECT event_type, key, payload FROM aegis.events WHERE id > :base ORDER BY id;
SELECT count(*) AS leaked FROM aegis.events WHERE payload::text LIKE '%secret-hash%';
DROP TRIGGER accounts_but ON accounts;
-- a column list with a dropped column left out and quoted names
CREATE TABLE "Mixed" ("Id" int PRIMARY KEY, gone int, "Big Name" text);
ALTER TABLE "Mixed" DROP COLUMN gone;
CREATE TRIGGER mixed_events AFTER INSERT ON "Mixed"
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('mixed', 'columns=Id,Big Name');
INSERT INTO "Mixed" VALUES (7, 'x');
SELECT event_type, key, payload FROM aegis.events WHERE topic = 'mixed';
-- a row larger than aegis.max_payload_bytes: by default a reference event
-- (table, operation, key, size) is published and the DML succeeds
CREATE TABLE docs (id int PRIMARY KEY, body text);
CREATE TRIGGER docs_events AFTER INSERT OR UPDATE ON docs
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('docs');
SET aegis.max_payload_bytes = 1024;
SELECT coalesce(max(id), 0) AS base FROM aegis.events \gset
INSERT INTO docs VALUES (1, repeat('x', 5000));
INSERT INTO docs VALUES (2, 'small');
SELECT event_type, key, payload - 'data' AS head,
       payload #> '{data,reference}' AS reference,
       payload #> '{data,table}' AS tbl,
       (payload #>> '{data,bytes}')::int > 1024 AS bytes_over_limit,
       payload #> '{data,new}' AS new
  FROM aegis.events WHERE id > :base ORDER BY id;
SELECT count(*) AS docs_rows FROM docs;
-- oversize=error keeps the strict behaviour: the DML fails with 22001
DROP TRIGGER docs_events ON docs;
CREATE TRIGGER docs_strict AFTER INSERT ON docs
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('docs', 'oversize=error');
INSERT INTO docs VALUES (3, repeat('y', 5000));
INSERT INTO docs VALUES (4, 'fits');
SELECT count(*) AS docs_rows FROM docs;
DROP TRIGGER docs_strict ON docs;
-- options combine; columns= decides what counts against the limit
CREATE TRIGGER docs_ids AFTER INSERT ON docs
    FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('docs', 'columns=id', 'oversize=error');
SELECT coalesce(max(id), 0) AS base FROM aegis.events \gset
INSERT INTO docs VALUES (5, repeat('z', 5000));
SELECT event_type, key, payload FROM aegis.events WHERE id > :base ORDER BY id;
DROP TRIGGER docs_ids ON docs;
RESET aegis.max_payload_bytes;
-- bad options get a clear error naming the option, and the DML is refused
CREATE TABLE opt (id int PRIMARY KEY, a text);
CREATE TRIGGER o1 AFTER INSERT ON opt FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('t', 'columns=id,nope');
INSERT INTO opt VALUES (1, 'a');
DROP TRIGGER o1 ON opt;
CREATE TRIGGER o2 AFTER INSERT ON opt FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('t', 'exclude=zzz');
INSERT INTO opt VALUES (2, 'a');
DROP TRIGGER o2 ON opt;
CREATE TRIGGER o3 AFTER INSERT ON opt FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('t', 'columns=id', 'exclude=a');
INSERT INTO opt VALUES (3, 'a');
DROP TRIGGER o3 ON opt;
CREATE TRIGGER o4 AFTER INSERT ON opt FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('t', 'oversize=truncate');
INSERT INTO opt VALUES (4, 'a');
DROP TRIGGER o4 ON opt;
CREATE TRIGGER o5 AFTER INSERT ON opt FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('t', 'colums=id');
INSERT INTO opt VALUES (5, 'a');
DROP TRIGGER o5 ON opt;
CREATE TRIGGER o6 AFTER INSERT ON opt FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('t', 'columns=');
INSERT INTO opt VALUES (6, 'a');
DROP TRIGGER o6 ON opt;
CREATE TRIGGER o7 AFTER INSERT ON opt FOR EACH ROW EXECUTE FUNCTION aegis.emit_row_event('t', 'columns=id', 'columns=a');
INSERT INTO opt VALUES (7, 'a');
DROP TRIGGER o7 ON opt;
SELECT count(*) AS opt_rows FROM opt;
DROP TABLE accounts, "Mixed", docs, opt;
