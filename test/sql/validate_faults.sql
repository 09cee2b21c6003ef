-- validate_faults: the validator faults of the hardening review (issue 20,
-- items 5 and 9), each a case that failed before its fix.

-- 1. The conversation node counts against aegis.max_payload_bytes: a small
--    data with a 2 kB node was stored with the limit at 1 kB.
SET aegis.max_payload_bytes = '1kB';
SELECT try(format('SELECT aegis.publish_conversation_event(%L, %L, %L, %L)',
                  'conv-size', 'node_end', repeat('n', 2000), '{"status": "running"}'));
SELECT try(format('SELECT aegis.publish_conversation_event(%L, %L, %L, %L)',
                  'conv-size', 'node_end', repeat('n', 900), '{"status": "running"}'));
SELECT try(format('SELECT aegis.publish_conversation_event(%L, %L, %L, %L)',
                  'conv-size', 'node_end', repeat('n', 10), '{"status": "running"}'));
RESET aegis.max_payload_bytes;
SELECT count(*) AS stored, max(length(payload->>'node')) AS longest_node
  FROM aegis.events WHERE stream_id = 'conv-size';

-- 2. A quoted value is cut after 60 bytes on a character boundary: with
--    "é" (2 bytes in UTF-8) across byte 60, the cut used to split it, and a
--    LATIN1 client got an encoding error instead of the real one.
SET client_encoding = 'LATIN1';
SELECT aegis.validate_workspace_event('checklist_item_update',
       jsonb_build_object('item_index', 0, 'item_name', 'n',
                          'status', repeat('a', 59) || chr(233) || 'z'));
SELECT try(format('SELECT aegis.validate_workspace_event(%L, %L)', 'agent_status',
       jsonb_build_object('status', 'running', 'message', 1, 'agent', 'a'))) AS ascii_unchanged;
RESET client_encoding;
SELECT try(format('SELECT aegis.validate_conversation_event(%L, NULL, %L)', 'done',
       jsonb_build_object('execution_id', 'e', 'status', 'completed',
                          'tokens_used', repeat(chr(233), 40))));
-- at every length around the cut, the message is valid in the server encoding
SELECT n, count(*) FILTER (WHERE r LIKE '22023:%' AND convert_to(r, 'UTF8') IS NOT NULL
                             AND convert_from(convert_to(r, 'UTF8'), 'UTF8') = r) AS valid_messages
  FROM (SELECT n, try(format('SELECT aegis.validate_workspace_event(%L, %L)', 'validation_result',
               jsonb_build_object('item_index', 0, 'check_name', 'c', 'passed', true,
                                  'severity', repeat('x', n) || repeat('€', 30)))) AS r
          FROM generate_series(55, 62) n) t GROUP BY n ORDER BY n;

-- 3. Ids and topics: ASCII letters and digits only, whatever the locale;
--    the character a message names is whole (it was its first byte).
SELECT try(format('SELECT aegis.publish_workspace_event(%L, %L, %L)',
       'chk-' || chr(233), 'agent_status', '{"status": "running"}'));
SELECT try(format('SELECT aegis.publish_conversation_event(%L, %L, NULL, %L)',
       'conv-' || chr(8364) || '-1', 'error', '{"error": "x"}'));
SELECT try(format('SELECT aegis.publish(%L, %L)', 'caf' || chr(233), '{}'));
SELECT try(format('SELECT aegis.publish(%L, %L)', 'topic' || chr(181), '{}'));
SELECT try(format('SELECT aegis.publish_run_request(%L, %L, %L, %L)', 'conv', 'hi', 'agent' || chr(170), NULL));

-- 4. Topics that start with "__" are Kafka's internal ones: refused at publish.
SELECT aegis.publish('__consumer_offsets', '{"x": 1}');
SELECT try($$SELECT aegis.publish_event('__transaction_state', 'e', '{}')$$);
SELECT try($$SELECT aegis.ensure_topic('__consumer_offsets')$$);
SELECT try($$SELECT aegis.publish('_single-underscore', '{}') > 0$$) AS one_underscore_is_fine;
SELECT count(*) AS internal_topic_events FROM aegis.events WHERE topic LIKE '\_\_%';

-- 5. data_table_update: 100,000 columns and a row with 100,000 keys are
--    checked in O(n log n); they were compared pairwise (over 20 s per
--    statement, past this 10 s statement_timeout, and not interruptible).
--    Repeats and stray keys are still found.
CREATE TEMP TABLE wide AS
SELECT jsonb_build_object('item_index', 0, 'total_rows', 1,
         'columns', (SELECT jsonb_agg('c' || i) FROM generate_series(1, 100000) i),
         'rows', jsonb_build_array((SELECT jsonb_object_agg('c' || i, i) FROM generate_series(1, 100000) i))) AS p;
SET statement_timeout = '10s';
SELECT aegis.validate_workspace_event('data_table_update', p) AS wide_ok FROM wide;
SELECT try(format('SELECT aegis.validate_workspace_event(%L, %L)', 'data_table_update',
       jsonb_set(p, '{columns}', (p->'columns') || '["c77777"]'))) FROM wide;
SELECT try(format('SELECT aegis.validate_workspace_event(%L, %L)', 'data_table_update',
       jsonb_set(p, '{rows,0,zz}', '1'))) FROM wide;
RESET statement_timeout;
-- the first fault a left-to-right scan meets is the one reported
SELECT v, try(format('SELECT aegis.validate_workspace_event(%L, %L)', 'data_table_update', v)) FROM (VALUES
 ('{"item_index": 0, "columns": ["B", "A", "B", 1, "A"], "rows": [], "total_rows": 0}'::jsonb),
 ('{"item_index": 0, "columns": ["B", 1, "A", "B"], "rows": [], "total_rows": 0}'),
 ('{"item_index": 0, "columns": ["A", "B", "C", "A", "B"], "rows": [], "total_rows": 0}'),
 ('{"item_index": 0, "columns": ["", "a", ""], "rows": [], "total_rows": 0}'),
 ('{"item_index": 0, "columns": ["ab", "a", "abc"], "rows": [{"a": 1, "ab": 2, "abc": 3}, {"b": 1}], "total_rows": 2}'),
 ('{"item_index": 0, "columns": ["x"], "rows": [{"": 1}], "total_rows": 1}')) AS t(v);
DROP TABLE wide;
