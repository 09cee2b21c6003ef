-- demo/replay.sql: one replay of the seed's compliance assessment and conversation flow.
-- Owns the demo's data: a Rule 37 spacing-exception assessment on workspace :checklist
-- (all eight workspace event types, the seed's four payload examples verbatim), the
-- conversation :conv1 (system_prompt_node ... output_format, then done) and :conv2
-- (a second run that ends in "Budget exceeded"), and two Kafka events on the seed's topic.
-- Run by demo/publish.sh: psql -v checklist=… -v conv1=… -v conv2=… -v pace=…
-- Every statement commits on its own (autocommit), so each event is live at once;
-- the pauses are separate statements for that reason.

SET demo.pace = :'pace';

CREATE FUNCTION pg_temp.say(kind text, id bigint) RETURNS text
LANGUAGE sql AS $$ SELECT format('%s  %-28s id=%s', to_char(clock_timestamp(), 'HH24:MI:SS'), kind, id) $$;

-- pause(seconds): sleeps seconds * demo.pace and prints nothing (an empty set)
CREATE FUNCTION pg_temp.pause(seconds float8) RETURNS SETOF int
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(seconds * current_setting('demo.pace')::float8);
END $$;

SELECT clock_timestamp() AS started \gset

-- ---------------------------------------------------------------- the run starts
SELECT pg_temp.say('agent_status started', aegis.publish_agent_status(:'checklist', 'started',
    'Rule 37 spacing exception assessment for Permian Basin 12H', 0.0, NULL, 'compliance-agent'));
SELECT pg_temp.say('node_end system_prompt_node', aegis.publish_node_end(:'conv1', 'system_prompt_node', 'running', 412,
    NULL, ARRAY[]::text[]));
SELECT * FROM pg_temp.pause(1.2);

SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', i, name, 'pending'))
  FROM (VALUES (0, 'Application Intake'), (1, 'Lease and Unit Verification'),
               (2, 'Offset Well Identification'), (3, 'Spacing Calculation'),
               (4, 'Operator Verification (P-5)'), (5, 'Form W-1 Population'),
               (6, 'Location Plat'), (7, 'Offset Operator Notice List'),
               (8, 'Exception Justification'), (9, 'Plat and Table Cross-check'),
               (10, 'Service List'), (11, 'Filing Packet')) AS items(i, name)
 ORDER BY i;
SELECT pg_temp.say('node_end memory_node', aegis.publish_node_end(:'conv1', 'memory_node', 'running', 96,
    NULL, ARRAY[]::text[]));
SELECT * FROM pg_temp.pause(1.8);

-- ---------------------------------------------------------------- items 0-1
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 0,
    'Application Intake', 'in_progress'));
SELECT pg_temp.say('node_end initial_llm_call', aegis.publish_node_end(:'conv1', 'initial_llm_call', 'running', 1234,
    '{"role": "assistant", "content": "I''ll calculate the spacing between Permian Basin 12H and every offset well within 1,200 ft, then check the lease-line distance against Rule 37."}',
    ARRAY[]::text[]));
SELECT * FROM pg_temp.pause(2.1);
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 0,
    'Application Intake', 'complete', 'Application RRC-2026-0412 received: horizontal well, Spraberry (Trend Area)', 'agent'));
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Verifying lease and unit', 1.0 / 12, 1, 'compliance-agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 1,
    'Lease and Unit Verification', 'in_progress'));
SELECT * FROM pg_temp.pause(2.4);
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 1,
    'Lease and Unit Verification', 'complete', 'Permian Basin 12 Unit, 640 acres, Midland County', 'agent'));

-- ---------------------------------------------------------------- item 2: offset wells (seed examples)
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Identifying offset wells', 2.0 / 12, 2, 'compliance-agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 2,
    'Offset Well Identification', 'in_progress'));
SELECT pg_temp.say('node_end tool_node', aegis.publish_node_end(:'conv1', 'tool_node', 'running', 0,
    '{"role": "tool", "content": "offset_well_search(radius_ft=1200): Smith #3, Smith #4, Jones Unit 1, Baker A-2"}',
    ARRAY[]::text[]));
SELECT * FROM pg_temp.pause(2.4);
-- the seed's data table example, verbatim: the first row of four
SELECT pg_temp.say('data_table_update', aegis.publish_workspace_event(:'checklist', 'data_table_update',
    '{ "event_type": "data_table_update", "item_index": 2, "columns": ["Well Name", "API", "Operator", "Distance (ft)"], "rows": [ {"Well Name": "Smith #3", "API": "42-329-40003", "Operator": "Devon", "Distance (ft)": 890} ], "total_rows": 4 }'));
SELECT pg_temp.say('spatial_update', aegis.publish_spatial_update(:'checklist', 2,
    '{"type": "FeatureCollection", "features": [
       {"type": "Feature", "properties": {"name": "Permian Basin 12H", "kind": "subject"},
        "geometry": {"type": "Point", "coordinates": [-102.0850, 31.9000]}},
       {"type": "Feature", "properties": {"name": "Permian Basin 12H lateral", "kind": "lateral"},
        "geometry": {"type": "LineString", "coordinates": [[-102.0850, 31.9000], [-102.0930, 31.9001], [-102.1010, 31.9003]]}},
       {"type": "Feature", "properties": {"name": "Permian Basin 12 Unit", "kind": "lease"},
        "geometry": {"type": "Polygon", "coordinates": [[[-102.1050, 31.8962], [-102.08393, 31.8962], [-102.08393, 31.9038], [-102.1050, 31.9038], [-102.1050, 31.8962]]]}},
       {"type": "Feature", "properties": {"name": "Smith #3", "api": "42-329-40003"},
        "geometry": {"type": "Point", "coordinates": [-102.08296, 31.90173]}}]}',
    '[{"from": "Permian Basin 12H", "to": "Smith #3", "distance_ft": 890}]'));
SELECT * FROM pg_temp.pause(2.7);
SELECT pg_temp.say('data_table_update', aegis.publish_data_table_update(:'checklist', 2,
    '["Well Name", "API", "Operator", "Distance (ft)"]',
    '[{"Well Name": "Smith #3", "API": "42-329-40003", "Operator": "Devon", "Distance (ft)": 890},
      {"Well Name": "Smith #4", "API": "42-329-40004", "Operator": "Devon", "Distance (ft)": 1050},
      {"Well Name": "Jones Unit 1", "API": "42-329-38871", "Operator": "Caprock Resources", "Distance (ft)": 1140},
      {"Well Name": "Baker A-2", "API": "42-329-39516", "Operator": "Midland Ridge Operating", "Distance (ft)": 1185}]',
    4));
SELECT pg_temp.say('spatial_update', aegis.publish_spatial_update(:'checklist', 2,
    '{"type": "FeatureCollection", "features": [
       {"type": "Feature", "properties": {"name": "Smith #4", "api": "42-329-40004"},
        "geometry": {"type": "Point", "coordinates": [-102.08740, 31.90204]}},
       {"type": "Feature", "properties": {"name": "Jones Unit 1", "api": "42-329-38871"},
        "geometry": {"type": "Point", "coordinates": [-102.08198, 31.89820]}},
       {"type": "Feature", "properties": {"name": "Baker A-2", "api": "42-329-39516"},
        "geometry": {"type": "Point", "coordinates": [-102.08794, 31.89791]}}]}',
    '[{"from": "Permian Basin 12H", "to": "Smith #4", "distance_ft": 1050},
      {"from": "Permian Basin 12H", "to": "Jones Unit 1", "distance_ft": 1140},
      {"from": "Permian Basin 12H", "to": "Baker A-2", "distance_ft": 1185}]'));
-- the seed's checklist example, verbatim
SELECT pg_temp.say('checklist_item_update', aegis.publish_workspace_event(:'checklist', 'checklist_item_update',
    '{ "event_type": "checklist_item_update", "item_index": 2, "item_name": "Offset Well Identification", "status": "complete", "summary": "Found 4 offset wells within 1,200 ft", "completed_by": "agent" }'));
SELECT pg_temp.say('validation_result', aegis.publish_validation_result(:'checklist', 2,
    'Offset wells located', true, 'info', '4 wells within the 1,200 ft search radius'));
SELECT pg_temp.say('node_end initial_llm_call', aegis.publish_node_end(:'conv1', 'initial_llm_call', 'running', 1710,
    '{"role": "assistant", "content": "Four offset wells are within 1,200 ft; the closest is Smith #3 at 890 ft."}',
    ARRAY[]::text[]));
SELECT * FROM pg_temp.pause(2.4);

-- ---------------------------------------------------------------- item 3: spacing
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Calculating lease-line and between-well spacing', 3.0 / 12, 3, 'compliance-agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 3,
    'Spacing Calculation', 'in_progress'));
SELECT pg_temp.say('node_end skill_select_node', aegis.publish_node_end(:'conv1', 'skill_select_node', 'running', 88,
    NULL, ARRAY[]::text[]));
SELECT * FROM pg_temp.pause(2.4);
SELECT pg_temp.say('validation_result', aegis.publish_validation_result(:'checklist', 3,
    'Lease-line distance (467 ft)', false, 'info', 'Nearest lease line 330 ft: the exception this application requests'));
SELECT pg_temp.say('validation_result', aegis.publish_validation_result(:'checklist', 3,
    'Between-well distance (1,200 ft)', true, 'info', 'Closest offset 890 ft, no producing well in the same interval'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 3,
    'Spacing Calculation', 'complete', 'Lease line 330 ft (467 ft required): Rule 37 exception needed', 'agent'));
SELECT pg_temp.say('node_end skill_inject_node', aegis.publish_node_end(:'conv1', 'skill_inject_node', 'running', 640,
    NULL, ARRAY['spacing-calculation', 'offset-well-analysis']));
SELECT * FROM pg_temp.pause(1.8);

-- ---------------------------------------------------------------- the second run starts (it will run out of budget)
SELECT pg_temp.say('node_end system_prompt_node', aegis.publish_node_end(:'conv2', 'system_prompt_node', 'running', 412,
    NULL, ARRAY[]::text[]));
SELECT pg_temp.say('node_end memory_node', aegis.publish_node_end(:'conv2', 'memory_node', 'running', 52310,
    NULL, ARRAY[]::text[]));

-- ---------------------------------------------------------------- items 4-5: operator, form W-1 (seed example)
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Verifying operator and filling Form W-1', 4.0 / 12, 4, 'compliance-agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 4,
    'Operator Verification (P-5)', 'in_progress'));
SELECT * FROM pg_temp.pause(2.1);
SELECT pg_temp.say('validation_result', aegis.publish_validation_result(:'checklist', 4,
    'Operator P-5 active', true, 'info', 'P-5 682547 active, financial assurance on file'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 4,
    'Operator Verification (P-5)', 'complete', 'Permian Basin Energy LLC, P-5 682547', 'agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 5,
    'Form W-1 Population', 'in_progress'));
SELECT pg_temp.say('node_end approval_node', aegis.publish_node_end(:'conv1', 'approval_node', 'running', 0,
    NULL, ARRAY[]::text[]));
-- the seed's form field example, verbatim
SELECT pg_temp.say('form_field_update', aegis.publish_workspace_event(:'checklist', 'form_field_update',
    '{ "event_type": "form_field_update", "item_index": 5, "field_name": "operator_name", "field_value": "Permian Basin Energy LLC", "confidence": 0.98, "source": "knowledge_graph:P-5" }'));
SELECT * FROM pg_temp.pause(1.2);
SELECT pg_temp.say('form_field_update', aegis.publish_form_field_update(:'checklist', 5, f, v, c, s))
  FROM (VALUES (1, 'operator_p5_number', '"682547"'::jsonb, 0.95, 'knowledge_graph:P-5'),
               (2, 'lease_name', '"Permian Basin 12 Unit"', 0.91, 'lease_records'),
               (3, 'well_number', '"12H"', 0.99, 'application'),
               (4, 'county', '"Midland"', 0.97, 'gis:county_boundaries'),
               (5, 'field_name', '"Spraberry (Trend Area)"', 0.84, 'rrc:field_lookup'),
               (6, 'total_depth_ft', '10450', 0.78, 'application'),
               (7, 'nearest_lease_line_ft', '330', 0.93, 'spacing_calculation'),
               (8, 'exception_reason', '"Geologic: lateral placement to drain the lower Spraberry"', 0.62, 'llm:draft'))
          AS fields(n, f, v, c, s)
 ORDER BY n;
SELECT pg_temp.say('node_end initial_llm_call', aegis.publish_node_end(:'conv2', 'initial_llm_call', 'running', 61200,
    '{"role": "assistant", "content": "Re-running the offset analysis with the full production history of every well in the county."}',
    ARRAY[]::text[]));
SELECT pg_temp.say('validation_result', aegis.publish_validation_result(:'checklist', 5,
    'Form W-1 required fields', true, 'info', 'All 9 required fields present'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 5,
    'Form W-1 Population', 'complete', '9 fields filled, 1 below 70 % confidence', 'agent'));
SELECT * FROM pg_temp.pause(2.4);

-- ---------------------------------------------------------------- items 6-7: plat, notice list
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Generating the location plat', 6.0 / 12, 6, 'compliance-agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 6,
    'Location Plat', 'in_progress'));
SELECT pg_temp.say('node_end tool_node', aegis.publish_node_end(:'conv2', 'tool_node', 'running', 38000,
    '{"role": "tool", "content": "production_history(county=Midland): 18,442 wells"}', ARRAY[]::text[]));
SELECT * FROM pg_temp.pause(3.0);
SELECT pg_temp.say('artifact_generated', aegis.publish_artifact_generated(:'checklist', 'art-plat-12h',
    'Location plat - Permian Basin 12H.pdf', 'pdf', 6, 'static/artifacts/location-plat.pdf', 'application/pdf', 935));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 6,
    'Location Plat', 'complete', 'Plat with lease lines, lateral and 4 offset wells', 'agent'));
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Building the offset operator notice list', 7.0 / 12, 7, 'compliance-agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 7,
    'Offset Operator Notice List', 'in_progress'));
SELECT * FROM pg_temp.pause(2.1);
SELECT pg_temp.say('artifact_generated', aegis.publish_artifact_generated(:'checklist', 'art-offsets-csv',
    'Offset wells.csv', 'data_export', 7, 'static/artifacts/offset-wells.csv', 'text/csv', 203));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 7,
    'Offset Operator Notice List', 'complete', '3 offset operators to notify', 'agent'));
SELECT pg_temp.say('error', aegis.publish_error(:'conv2', 'Budget exceeded: 150000 tokens'));
SELECT * FROM pg_temp.pause(1.8);

-- ---------------------------------------------------------------- items 8-9
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Drafting the exception justification', 8.0 / 12, 8, 'compliance-agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 8,
    'Exception Justification', 'in_progress'));
SELECT pg_temp.say('node_end synthesis_llm_call', aegis.publish_node_end(:'conv1', 'synthesis_llm_call', 'completed', 1450,
    '{"role": "assistant", "content": "Permian Basin 12H sits 330 ft from the east lease line, short of the 467 ft Rule 37 minimum, so a spacing exception is required. Four offset wells lie within 1,200 ft (closest: Smith #3 at 890 ft); their three operators must be notified."}',
    ARRAY['spacing-calculation', 'offset-well-analysis']));
SELECT * FROM pg_temp.pause(2.7);
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 8,
    'Exception Justification', 'needs_review', 'Draft justification at 62 % confidence: review before filing', 'agent'));
SELECT pg_temp.say('node_end output_format', aegis.publish_node_end(:'conv1', 'output_format', 'completed', 0,
    NULL, ARRAY['spacing-calculation', 'offset-well-analysis']));
SELECT pg_temp.say('done', aegis.publish_done(:'conv1', 'exec-abc-123', 'completed', 5678, 0.045,
    ARRAY['spacing-calculation', 'offset-well-analysis']));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 9,
    'Plat and Table Cross-check', 'in_progress'));
SELECT * FROM pg_temp.pause(1.8);
SELECT pg_temp.say('validation_result', aegis.publish_validation_result(:'checklist', 9,
    'Plat matches offset table', true, 'info', '4 of 4 wells on the plat at the tabled distances'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 9,
    'Plat and Table Cross-check', 'complete', NULL, 'agent'));

-- ---------------------------------------------------------------- items 10-11: service list (seed example), packet
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Checking the service list', 10.0 / 12, 10, 'compliance-agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 10,
    'Service List', 'in_progress'));
SELECT * FROM pg_temp.pause(2.4);
-- the seed's validation example, verbatim
SELECT pg_temp.say('validation_result', aegis.publish_workspace_event(:'checklist', 'validation_result',
    '{ "event_type": "validation_result", "item_index": 10, "check_name": "Service list completeness", "passed": false, "message": "2 offset operators missing addresses", "severity": "warning" }'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 10,
    'Service List', 'complete', '3 operators listed, 2 without a mailing address', 'agent'));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 11,
    'Filing Packet', 'in_progress'));
SELECT pg_temp.say('agent_status running', aegis.publish_agent_status(:'checklist', 'running',
    'Assembling the filing packet', 11.0 / 12, 11, 'compliance-agent'));
SELECT * FROM pg_temp.pause(3.0);
SELECT pg_temp.say('artifact_generated', aegis.publish_artifact_generated(:'checklist', 'art-w1-draft',
    'Form W-1 draft.pdf', 'pdf', 11, 'static/artifacts/form-w1-draft.pdf', 'application/pdf', 927));
SELECT pg_temp.say('artifact_generated', aegis.publish_artifact_generated(:'checklist', 'art-packet-notes',
    'Reviewer notes.txt', 'document', 11, 'static/artifacts/reviewer-notes.txt', 'text/plain', 400));
SELECT pg_temp.say('checklist_item_update', aegis.publish_checklist_item_update(:'checklist', 11,
    'Filing Packet', 'complete', 'Plat, W-1 draft and offset table ready', 'agent'));

-- ---------------------------------------------------------------- the seed's Kafka side: events for entity-extraction-worker
SELECT pg_temp.say('kafka wells_scraped', aegis.publish_event('entity-extraction-worker', 'wells_scraped',
    '{"county": "Midland", "wells": ["42-329-40003", "42-329-40004", "42-329-38871", "42-329-39516"]}',
    'wells_scraped', '{"source": "ingestion"}'));
SELECT pg_temp.say('kafka permits_scraped', aegis.publish_event('entity-extraction-worker', 'permits_scraped',
    '{"county": "Midland", "permits": ["RRC-2026-0412"]}', 'permits_scraped', '{"source": "ingestion"}'));

-- ---------------------------------------------------------------- the end
SELECT pg_temp.say('agent_status completed', aegis.publish_agent_status(:'checklist', 'completed',
    'Assessment finished: 1 item needs review', 1.0, NULL, 'compliance-agent'));
SELECT pg_temp.say('assessment_complete', aegis.publish_assessment_complete(:'checklist', 12, 11, 5, 2,
    'Rule 37 exception packet ready for review: 4 offset wells within 1,200 ft, 2 service-list addresses missing, exception justification needs review',
    (extract(epoch FROM clock_timestamp() - :'started'::timestamptz) * 1000)::bigint));
