-- docker/initdb/20-roles.sql: the least-privilege roles of the compose setup,
-- run once on a new data directory after 10-aegis-events.sql. POSTGRES_USER
-- (a superuser) only administers; nothing in compose connects as it.
--   app             an application that publishes (the README's "publisher" block)
--   aegis_bridge    the bridge service: SSE, run requests, /metrics, the Kafka
--                   drain ("bridge-sse" and "bridge-drain" blocks)
--   aegis_consumer  a bridge run with --consumer: its SQL handler runs with
--                   these rights only ("bridge-consumer" block, plus what the
--                   handler itself needs, granted by you)
-- The grants are the README's blocks (test/demo/compose_check.py compares
-- them). The passwords are for a loopback-only demo: change them, and
-- DATABASE_URL in docker-compose.yml, before exposing anything.

CREATE ROLE app LOGIN PASSWORD 'app';
GRANT USAGE ON SCHEMA aegis TO app;
GRANT EXECUTE ON FUNCTION aegis.publish, aegis.publish_event, aegis.ensure_topic,
    aegis.publish_workspace_event, aegis.publish_conversation_event,
    aegis.publish_checklist_item_update, aegis.publish_artifact_generated,
    aegis.publish_data_table_update, aegis.publish_form_field_update,
    aegis.publish_validation_result, aegis.publish_spatial_update,
    aegis.publish_agent_status, aegis.publish_assessment_complete,
    aegis.publish_node_end, aegis.publish_done, aegis.publish_error TO app;
ALTER ROLE app SET idle_in_transaction_session_timeout = '30s';

CREATE ROLE aegis_bridge LOGIN PASSWORD 'aegis_bridge';
GRANT USAGE ON SCHEMA aegis TO aegis_bridge;
GRANT EXECUTE ON FUNCTION aegis.safe_position, aegis.wait_all, aegis.read_stream,
    aegis.request_run, aegis.conversation_finished, aegis.conversation_latest_run,
    aegis.drain_status, aegis.publisher_status, aegis.read_stream_resume TO aegis_bridge;
GRANT EXECUTE ON FUNCTION aegis.read_topic_events, aegis.topic_settings,
    aegis.cursor_position, aegis.cursor_advance, aegis.drain_dead_letter TO aegis_bridge;

CREATE ROLE aegis_consumer LOGIN PASSWORD 'aegis_consumer';
GRANT USAGE ON SCHEMA aegis TO aegis_consumer;
GRANT EXECUTE ON FUNCTION aegis.consumer_check_handler, aegis.consumer_handler_name,
    aegis.consumer_bytes, aegis.consumer_positions, aegis.consume_batch,
    aegis.consumer_claim TO aegis_consumer;
GRANT SELECT, INSERT, UPDATE ON aegis.consumer_offsets TO aegis_consumer;
GRANT INSERT ON aegis.dead_letters TO aegis_consumer;
