-- validate_workspace: the eight EVENT_MODELS, field by field
-- The seed's four payload examples publish unchanged.
CREATE TEMP TABLE seed (name text, event_type text, payload jsonb);
INSERT INTO seed VALUES
('checklist', 'checklist_item_update', '{ "event_type": "checklist_item_update", "item_index": 2, "item_name": "Offset Well Identification", "status": "complete", "summary": "Found 4 offset wells within 1,200 ft", "completed_by": "agent" }'),
('table', 'data_table_update', '{ "event_type": "data_table_update", "item_index": 2, "columns": ["Well Name", "API", "Operator", "Distance (ft)"], "rows": [ {"Well Name": "Smith #3", "API": "42-329-40003", "Operator": "Devon", "Distance (ft)": 890} ], "total_rows": 4 }'),
('form', 'form_field_update', '{ "event_type": "form_field_update", "item_index": 5, "field_name": "operator_name", "field_value": "Permian Basin Energy LLC", "confidence": 0.98, "source": "knowledge_graph:P-5" }'),
('validation', 'validation_result', '{ "event_type": "validation_result", "item_index": 10, "check_name": "Service list completeness", "passed": false, "message": "2 offset operators missing addresses", "severity": "warning" }');
CREATE TEMP TABLE seed_ids AS
SELECT name, aegis.publish_workspace_event('chk-seed', event_type, payload) AS id FROM seed;
SELECT s.name, e.payload = s.payload AS unchanged, e.event_type, e.stream_kind, e.stream_id
  FROM seed s JOIN seed_ids i USING (name) JOIN aegis.events e ON e.id = i.id ORDER BY e.id;

-- A valid payload of every type (optional fields included).
CREATE TEMP TABLE base (model text PRIMARY KEY, payload jsonb);
INSERT INTO base VALUES
('checklist_item_update', '{"item_index": 0, "item_name": "n", "status": "pending", "summary": "s", "completed_by": "agent"}'),
('artifact_generated', '{"artifact_id": "a1", "name": "Plat.pdf", "artifact_type": "pdf", "item_index": 1, "url": "/a/1", "mime_type": "application/pdf", "size_bytes": 0}'),
('data_table_update', '{"item_index": 0, "columns": ["A", "B"], "rows": [{"A": 1, "B": null}, {"A": 2}], "total_rows": 2}'),
('form_field_update', '{"item_index": 0, "field_name": "f", "field_value": 3, "confidence": 0, "source": "s"}'),
('validation_result', '{"item_index": 0, "check_name": "c", "passed": true, "severity": "info", "message": "m"}'),
('spatial_update', '{"item_index": 0, "geojson": {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [-102.1, 31.9]}, "properties": {"name": "Smith #3"}}, {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[-102.1, 31.9], [-102.0, 32.0]]}, "properties": null}, {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[-102, 31], [-101, 31], [-101, 32], [-102, 31]]]}, "properties": {}}]}, "distances": [{"from": "Smith #3", "to": "Jones #1", "distance_ft": 890}]}'),
('agent_status', '{"status": "running", "message": "m", "progress": 1, "item_index": 0, "agent": "rule37"}'),
('assessment_complete', '{"total_items": 12, "completed_items": 12, "passed_checks": 0, "failed_checks": 1, "summary": "s", "duration_ms": 0}');
SELECT model, try(format('SELECT aegis.validate_workspace_event(%L, %L)', model, payload)) AS valid
  FROM base ORDER BY model;
-- event_type inside the payload is allowed when it matches, refused otherwise
SELECT try($$SELECT aegis.validate_workspace_event('agent_status', '{"status": "started", "event_type": "agent_status"}')$$);
SELECT try($$SELECT aegis.validate_workspace_event('agent_status', '{"status": "started", "event_type": "assessment_complete"}')$$);

-- Each field: required or not, a value of the wrong type, and range ends.
CREATE TEMP TABLE fields (model text, field text, required bool, wrong jsonb);
INSERT INTO fields VALUES
('checklist_item_update', 'item_index', true, '"2"'),
('checklist_item_update', 'item_name', true, '5'),
('checklist_item_update', 'status', true, '"done"'),
('checklist_item_update', 'summary', false, '[]'),
('checklist_item_update', 'completed_by', false, 'true'),
('artifact_generated', 'artifact_id', true, '1'),
('artifact_generated', 'name', true, '{}'),
('artifact_generated', 'artifact_type', true, '"PDF"'),
('artifact_generated', 'item_index', false, '1.5'),
('artifact_generated', 'url', false, '1'),
('artifact_generated', 'mime_type', false, 'false'),
('artifact_generated', 'size_bytes', false, '"big"'),
('data_table_update', 'item_index', true, 'true'),
('data_table_update', 'columns', true, '"A,B"'),
('data_table_update', 'rows', true, '{"A": 1}'),
('data_table_update', 'total_rows', true, '"2"'),
('form_field_update', 'item_index', true, 'null'),
('form_field_update', 'field_name', true, '["f"]'),
('form_field_update', 'field_value', true, '{"v": 1}'),
('form_field_update', 'confidence', true, '"high"'),
('form_field_update', 'source', false, '3'),
('validation_result', 'item_index', true, '-1'),
('validation_result', 'check_name', true, 'null'),
('validation_result', 'passed', true, '"false"'),
('validation_result', 'severity', true, '"fatal"'),
('validation_result', 'message', false, '{}'),
('spatial_update', 'item_index', true, '[0]'),
('spatial_update', 'geojson', true, '"POINT(1 2)"'),
('spatial_update', 'distances', false, '{"from": "a"}'),
('agent_status', 'status', true, '"RUNNING"'),
('agent_status', 'message', false, '1'),
('agent_status', 'progress', false, '"50%"'),
('agent_status', 'item_index', false, '"0"'),
('agent_status', 'agent', false, '{}'),
('assessment_complete', 'total_items', true, '1.2'),
('assessment_complete', 'completed_items', true, '"12"'),
('assessment_complete', 'passed_checks', false, '-3'),
('assessment_complete', 'failed_checks', false, 'true'),
('assessment_complete', 'summary', false, '0'),
('assessment_complete', 'duration_ms', false, '"1s"');
-- every field of every model is listed above
SELECT b.model, count(f.field) AS fields_tested,
       (SELECT count(*) FROM jsonb_object_keys(b.payload)) AS fields_in_model
  FROM base b LEFT JOIN fields f USING (model) GROUP BY b.model, b.payload ORDER BY 1;
-- a required field missing: 23502 naming it; an optional one missing: ok
SELECT f.model, f.field, f.required,
       try(format('SELECT aegis.validate_workspace_event(%L, %L)', f.model, b.payload - f.field)) AS missing
  FROM fields f JOIN base b USING (model) ORDER BY f.model, f.field;
-- a wrong value: 22xxx naming the field and what was given
SELECT f.model, f.field,
       try(format('SELECT aegis.validate_workspace_event(%L, %L)', f.model,
                  jsonb_set(b.payload, ARRAY[f.field], f.wrong))) AS wrong_value
  FROM fields f JOIN base b USING (model) ORDER BY f.model, f.field;
-- null for an optional field means absent
SELECT f.model, f.field,
       try(format('SELECT aegis.validate_workspace_event(%L, %L)', f.model,
                  jsonb_set(b.payload, ARRAY[f.field], 'null'))) AS optional_null
  FROM fields f JOIN base b USING (model) WHERE NOT f.required ORDER BY f.model, f.field;
-- an unknown field (a typo) is refused for every model
SELECT model, try(format('SELECT aegis.validate_workspace_event(%L, %L)', model,
                         payload || '{"item_indx": 1}')) AS unknown_field
  FROM base ORDER BY model;

-- Range ends.
CREATE TEMP TABLE ranges (model text, field text, value jsonb);
INSERT INTO ranges VALUES
('checklist_item_update', 'item_index', '0'), ('checklist_item_update', 'item_index', '-1'),
('checklist_item_update', 'item_index', '2.0'), ('checklist_item_update', 'item_index', '9223372036854775807'),
('checklist_item_update', 'item_index', '9223372036854775808'),
('form_field_update', 'confidence', '0'), ('form_field_update', 'confidence', '1'),
('form_field_update', 'confidence', '-0.0001'), ('form_field_update', 'confidence', '1.7'),
('form_field_update', 'confidence', '1e-300'),
('form_field_update', 'field_value', 'null'), ('form_field_update', 'field_value', 'true'),
('form_field_update', 'field_value', '"x"'), ('form_field_update', 'field_value', '[1]'),
('agent_status', 'progress', '0'), ('agent_status', 'progress', '1'),
('agent_status', 'progress', '1.0000001'), ('agent_status', 'progress', '-1'),
('artifact_generated', 'size_bytes', '0'), ('artifact_generated', 'size_bytes', '-1'),
('assessment_complete', 'completed_items', '0'), ('assessment_complete', 'completed_items', '12'),
('assessment_complete', 'completed_items', '13'), ('assessment_complete', 'duration_ms', '-1'),
('data_table_update', 'total_rows', '2'), ('data_table_update', 'total_rows', '1'),
('data_table_update', 'total_rows', '1000000');
SELECT r.model, r.field, left(r.value::text, 24) AS value,
       try(format('SELECT aegis.validate_workspace_event(%L, %L)', r.model,
                  jsonb_set(b.payload, ARRAY[r.field], r.value))) AS result
  FROM ranges r JOIN base b USING (model) ORDER BY r.model, r.field, r.value::text;

-- data_table_update: columns non-empty and distinct, rows keyed by columns
SELECT v, try(format('SELECT aegis.validate_workspace_event(%L, %L)', 'data_table_update', v)) FROM (VALUES
 ('{"item_index": 0, "columns": [], "rows": [], "total_rows": 0}'::jsonb),
 ('{"item_index": 0, "columns": ["A", "A"], "rows": [], "total_rows": 0}'),
 ('{"item_index": 0, "columns": ["A", 1], "rows": [], "total_rows": 0}'),
 ('{"item_index": 0, "columns": ["A"], "rows": [{"B": 1}], "total_rows": 1}'),
 ('{"item_index": 0, "columns": ["A"], "rows": [[1]], "total_rows": 1}'),
 ('{"item_index": 0, "columns": ["A"], "rows": [], "total_rows": 0}')) AS t(v);

-- spatial_update: GeoJSON FeatureCollection (RFC 7946)
SELECT g, try(format('SELECT aegis.validate_workspace_event(%L, %L)', 'spatial_update',
                     jsonb_build_object('item_index', 0, 'geojson', g::jsonb))) FROM (VALUES
 ('{"type": "FeatureCollection", "features": []}'),
 ('{"type": "Feature", "features": []}'),
 ('{"type": "FeatureCollection"}'),
 ('{"type": "FeatureCollection", "features": {}}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Point", "coordinates": [0, 0]}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null, "properties": {}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Circle", "coordinates": [0, 0]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point"}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [180, 90]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [-180, -90, 12.5]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [180.5, 0]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, -90.1]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": ["0", 1]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0]]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 91]]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": []}}]}'),
 ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, "properties": 5}]}')) AS t(g);
SELECT d, try(format('SELECT aegis.validate_workspace_event(%L, %L)', 'spatial_update',
                     jsonb_build_object('item_index', 0, 'geojson', '{"type": "FeatureCollection", "features": []}'::jsonb, 'distances', d::jsonb))) FROM (VALUES
 ('[]'), ('[{"from": "a", "to": "b", "distance_ft": 0}]'), ('[{"from": "a", "to": "b", "distance_ft": -1}]'),
 ('[{"from": "a", "to": "b"}]'), ('[{"from": "a", "to": "b", "distance_ft": 1, "unit": "ft"}]'), ('[5]')) AS t(d);

-- payload and event type themselves
SELECT try($$SELECT aegis.validate_workspace_event('checklist_item_updated', '{}')$$);
SELECT try($$SELECT aegis.validate_workspace_event('agent_status', '[]')$$);
SELECT try($$SELECT aegis.validate_workspace_event('agent_status', '"started"')$$);
-- the full error, with its hint

SELECT aegis.publish_workspace_event('chk-1', 'form_field_update',
    '{"item_index": 5, "field_name": "operator_name", "field_value": "x", "confidence": 1.7}');
SELECT aegis.publish_workspace_event('chk-1', 'checklist_item_update', '{"item_index": 2, "item_name": "x"}');

-- stream ids (they appear in URLs) and nulls
SELECT try($$SELECT aegis.publish_workspace_event('', 'agent_status', '{"status": "started"}')$$);
SELECT try($$SELECT aegis.publish_workspace_event('chk 1', 'agent_status', '{"status": "started"}')$$);
SELECT try($$SELECT aegis.publish_workspace_event('chk/1', 'agent_status', '{"status": "started"}')$$);
SELECT try(format('SELECT aegis.publish_workspace_event(%L, %L, %L)', repeat('c', 129), 'agent_status', '{"status": "started"}'));
SELECT try($$SELECT aegis.publish_workspace_event(NULL, 'agent_status', '{"status": "started"}')$$);
SELECT try($$SELECT aegis.publish_workspace_event('chk-1', NULL, '{"status": "started"}')$$);
SELECT try($$SELECT aegis.publish_workspace_event('chk-1', 'agent_status', NULL)$$);
SELECT try(format('SELECT aegis.publish_workspace_event(%L, %L, %L)', 'chk-1', 'agent_status',
               jsonb_build_object('status', 'running', 'message', repeat('m', 1100000))));

-- the stored payload carries event_type even when the caller left it out
SELECT aegis.publish_workspace_event('chk-2', 'agent_status', '{"status": "started", "progress": 0.5}') AS new_id \gset
SELECT payload FROM aegis.events WHERE id = :new_id;

-- one typed helper per type
SELECT aegis.publish_checklist_item_update('chk-3', 2, 'Offset Well Identification', 'complete',
       'Found 4 offset wells within 1,200 ft', 'agent') > 0 AS ok;
SELECT aegis.publish_artifact_generated('chk-3', 'art-1', 'Spacing plat', 'pdf', 2, '/artifacts/art-1', 'application/pdf', 18233) > 0 AS ok;
SELECT aegis.publish_data_table_update('chk-3', 2, '["Well Name", "API"]', '[{"Well Name": "Smith #3", "API": "42-329-40003"}]', 4) > 0 AS ok;
SELECT aegis.publish_form_field_update('chk-3', 5, 'operator_name', '"Permian Basin Energy LLC"', 0.98, 'knowledge_graph:P-5') > 0 AS ok;
SELECT aegis.publish_validation_result('chk-3', 10, 'Service list completeness', false, 'warning', '2 offset operators missing addresses') > 0 AS ok;
SELECT aegis.publish_spatial_update('chk-3', 3, '{"type": "FeatureCollection", "features": []}', '[{"from": "Smith #3", "to": "Jones #1", "distance_ft": 890}]') > 0 AS ok;
SELECT aegis.publish_agent_status('chk-3', 'running', 'Checking offsets', 0.4, 3, 'rule37') > 0 AS ok;
SELECT aegis.publish_assessment_complete('chk-3', 12, 12, 10, 2, 'done', 95000) > 0 AS ok;
SELECT event_type, payload FROM aegis.events WHERE stream_id = 'chk-3' ORDER BY id;
-- helpers validate too
SELECT aegis.publish_form_field_update('chk-3', 5, 'operator_name', '"x"', 1.5);
SELECT aegis.publish_checklist_item_update('chk-3', -1, 'x', 'complete');
