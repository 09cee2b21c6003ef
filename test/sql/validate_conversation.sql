-- validate_conversation: the seed's StreamEvent (node_end, done, error)
-- The seed's three examples
SELECT aegis.publish_conversation_event('conv-1', 'node_end', 'initial_llm_call',
  '{ "status": "running", "tokens_used": 1234, "message": { "role": "assistant", "content": "I''ll calculate the spacing..." }, "skills_injected": [] }') > 0 AS ok;
SELECT aegis.publish_conversation_event('conv-1', 'done', NULL,
  '{ "execution_id": "exec-abc-123", "status": "completed", "tokens_used": 5678, "cost_usd": 0.045, "skills_injected": ["spacing-calculation", "offset-well-analysis"] }') > 0 AS ok;
SELECT aegis.publish_conversation_event('conv-2', 'error', NULL, '{ "error": "Budget exceeded: 150000 tokens" }') > 0 AS ok;
-- stored in the seed's shape {"event", "node", "data"}
SELECT stream_kind, stream_id, event_type, payload FROM aegis.events
 WHERE stream_kind = 'conversation' AND stream_id IN ('conv-1', 'conv-2') ORDER BY id;
-- the helpers
SELECT aegis.publish_node_end('conv-3', 'system_prompt_node', 'running') > 0 AS ok;
SELECT aegis.publish_node_end('conv-3', 'skill_inject_node', 'running', 10, NULL, ARRAY['spacing-calculation']) > 0 AS ok;
SELECT aegis.publish_node_end('conv-3', 'synthesis_llm_call', 'running', 900,
       '{"role": "assistant", "content": "Spacing is compliant."}') > 0 AS ok;
SELECT aegis.publish_done('conv-3', 'exec-1', 'completed', 5678, 0.045, ARRAY['a', 'b']) > 0 AS ok;
SELECT aegis.publish_error('conv-4', 'Budget exceeded: 150000 tokens') > 0 AS ok;
SELECT event_type, payload FROM aegis.events WHERE stream_id IN ('conv-3', 'conv-4') ORDER BY id;
-- every rule
SELECT e, n, d, try(format('SELECT aegis.validate_conversation_event(%L, %L, %L)', e, n, d)) FROM (VALUES
 ('node_end', 'n', '{"status": "running"}'),
 ('node_end', NULL, '{"status": "running"}'),
 ('node_end', '', '{"status": "running"}'),
 ('node_end', 'n', '{}'),
 ('node_end', 'n', '{"status": 1}'),
 ('node_end', 'n', '{"status": "running", "tokens_used": -1}'),
 ('node_end', 'n', '{"status": "running", "tokens_used": 0}'),
 ('node_end', 'n', '{"status": "running", "tokens_used": "12"}'),
 ('node_end', 'n', '{"status": "running", "message": {"role": "robot", "content": "x"}}'),
 ('node_end', 'n', '{"status": "running", "message": {"role": "tool"}}'),
 ('node_end', 'n', '{"status": "running", "message": {"content": "x"}}'),
 ('node_end', 'n', '{"status": "running", "message": {"role": "user", "content": "x", "name": "y"}}'),
 ('node_end', 'n', '{"status": "running", "message": "hello"}'),
 ('node_end', 'n', '{"status": "running", "skills_injected": ["a", 1]}'),
 ('node_end', 'n', '{"status": "running", "skills_injected": "a"}'),
 ('node_end', 'n', '{"status": "running", "tokens": 5}'),
 ('done', NULL, '{"execution_id": "e", "status": "completed"}'),
 ('done', 'n', '{"execution_id": "e", "status": "completed"}'),
 ('done', NULL, '{"status": "completed"}'),
 ('done', NULL, '{"execution_id": "e"}'),
 ('done', NULL, '{"execution_id": 7, "status": "completed"}'),
 ('done', NULL, '{"execution_id": "e", "status": "completed", "cost_usd": 0}'),
 ('done', NULL, '{"execution_id": "e", "status": "completed", "cost_usd": -0.01}'),
 ('done', NULL, '{"execution_id": "e", "status": "completed", "cost_usd": "0.04"}'),
 ('done', NULL, '{"execution_id": "e", "status": "completed", "tokens_used": -5}'),
 ('done', NULL, '{"execution_id": "e", "status": "completed", "skills_injected": [null]}'),
 ('error', NULL, '{"error": "boom"}'),
 ('error', NULL, '{}'),
 ('error', NULL, '{"error": null}'),
 ('error', NULL, '{"error": ["boom"]}'),
 ('error', NULL, '{"error": "boom", "code": 5}'),
 ('error', 'n', '{"error": "boom"}'),
 ('node_start', 'n', '{}'),
 ('done', NULL, '[]')) AS t(e, n, d);
SELECT try($$SELECT aegis.publish_conversation_event('conv 1', 'error', NULL, '{"error": "x"}')$$);
SELECT try($$SELECT aegis.publish_conversation_event(NULL, 'error', NULL, '{"error": "x"}')$$);
SELECT try($$SELECT aegis.publish_conversation_event('c', NULL, NULL, '{"error": "x"}')$$);
SELECT try($$SELECT aegis.publish_conversation_event('c', 'error', NULL, NULL)$$);
SELECT try($$SELECT aegis.publish_node_end('c', 'n', NULL)$$);
