-- guard: aegis.events is append-only
SELECT aegis.publish('guarded', '{"v": 1}') > 0 AS published;
UPDATE aegis.events SET payload = '{}' WHERE topic = 'guarded';
DELETE FROM aegis.events WHERE topic = 'guarded';
TRUNCATE aegis.events;
SELECT payload FROM aegis.events WHERE topic = 'guarded';
