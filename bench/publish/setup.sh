# bench/publish/setup.sh: sourced by run.sh and interleaved.sh.  Starts the
# throwaway cluster (test/lib.sh pg_start) with the extension and the
# baseline table, and defines the payload and the baseline rows both
# scripts measure: rows of the shape the function stores, a workspace event
# (no topic) or a Kafka event (topic and key, so the topic index is written
# too).  bench_setup NAME
bench_setup() {
    pg_start "$1" "max_connections = 100"
    psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION aegis_events;
CREATE TABLE bench_plain (LIKE aegis.events INCLUDING ALL);
CREATE SEQUENCE bench_seq;
SQL
}
payload='{"status": "running", "message": "Checking offset wells", "progress": 0.5, "item_index": 3, "agent": "rule37"}'
ws_row="nextval('bench_seq'), 'workspace', 'chk-1', 'agent_status', '$payload'::jsonb, NULL, NULL, NULL, now()"
tp_row="nextval('bench_seq'), 'topic', 'bench', 'agent_status', '$payload'::jsonb, 'bench', 'k', NULL, now()"
