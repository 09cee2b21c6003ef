#!/bin/bash
# test/suites/65-roles.sh: aegis-bridge's three parts each run as a role
# granted exactly as the README's Privileges section says (the blocks are
# read from README.md by test/readme_grants.sh; only the role names differ):
# SSE with a run request (?message=), the finished-conversation 204 and
# /metrics as aegis_bridge; the Kafka drain (real broker, test/kafka) as
# aegis_drain; a Kafka consumer as aegis_consumer; the application publishing
# as app.  No bridge may log a permission error.  The bridges are the
# ASan/UBSan build.
set -u
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
source "$AEGIS_TOP/test/kafka/lib.sh"
source "$AEGIS_TOP/test/readme_grants.sh"

T="$AEGIS_TEST_TMP/roles-$$"
mkdir -p "$T"
BRIDGE=${AEGIS_BRIDGE_ASAN:-$AEGIS_TOP/bridge/aegis-bridge-asan}
CLIENT=(python3 "$AEGIS_TOP/test/sse/sse_client.py")
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=66
BG_PIDS=()

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill_pid "$p"; done
    kafka_stop_all
    pg_stop_all
    rm -rf "$T/kafka/data"
    [ "$TESTS_FAILED" -eq 0 ] && rm -rf "$T"
}
trap cleanup EXIT

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
as_app() { psql -X -qAt -v ON_ERROR_STOP=1 -U app -c "$1"; }
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# bridge_start NAME ROLE [ARGS...]: a bridge connecting as ROLE; sets BR_PID, BR_PORT
bridge_start() {
    local name=$1 role=$2; shift 2
    BR_PORT=$(free_port)
    DATABASE_URL="host=127.0.0.1 port=$PGPORT user=$role dbname=postgres" \
        "$BRIDGE" --listen "127.0.0.1:$BR_PORT" "$@" 2>>"$T/$name.log" &
    BR_PID=$!
    BG_PIDS+=("$BR_PID")
    wait_for 30 curl -sf "http://127.0.0.1:$BR_PORT/healthz"
}
# bridge_stop PID NAME: SIGTERM; ok when it exits 0 within 30 s
bridge_stop() {
    local pid=$1 i rc
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 300); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid"; wait "$pid" 2>/dev/null; rc=124; else wait "$pid"; rc=$?; fi
    expect_eq "the $2 bridge stops cleanly on SIGTERM" 0 "$rc"
}
no_permission_errors() {
    ! grep -iE 'permission denied|42501|must be owner' "$T/$1.log"
}
# grants BLOCK ROLE: the README's block with its role name replaced by ROLE
grants() {
    local out
    out=$(readme_grants "$1" | sed "s/\baegis_bridge\b/$2/g" | psql -X -q -v ON_ERROR_STOP=1 2>&1)
    check "the README's $1 grants run for $2 ($out)" test $? -eq 0 -a -z "$out"
}

# ---- set-up ----
if [ -z "${AEGIS_BRIDGE_ASAN:-}" ]; then
    make -s -C "$AEGIS_TOP/bridge" all asan >"$T/build.log" 2>&1 || { cat "$T/build.log"; exit 1; }
fi
pg_start roles >/dev/null || exit 1
q "CREATE EXTENSION aegis_events" || exit 1
# run requests are taken only for configured agent types (0.3.0); no worker
# runs here: an hour's queue_timeout keeps the clock from failing the run
q "SELECT aegis.configure_agent('rule_37', queue_timeout => '1 hour')" >/dev/null || exit 1

grants publisher app
grants bridge-sse aegis_bridge
grants bridge-sse aegis_drain
grants bridge-sse aegis_consumer
out=$(readme_grants bridge-sse | grep -c "CREATE ROLE")
expect_eq "the bridge-sse block creates the role" 1 "$out"
grants bridge-drain aegis_drain
grants bridge-consumer aegis_consumer
# the consumer's handler and its table: "whatever the handler does"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' || exit 1
CREATE SCHEMA kg;
CREATE TABLE kg.entities (id bigint PRIMARY KEY, body jsonb NOT NULL, topic text NOT NULL,
                          part int NOT NULL, off bigint NOT NULL, UNIQUE (topic, part, off));
CREATE FUNCTION kg.handle_entity(event jsonb, meta jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF event ? 'boom' THEN
        RAISE EXCEPTION 'boom: %', event->>'boom';
    END IF;
    INSERT INTO kg.entities VALUES ((event->>'id')::bigint, event, meta->>'topic',
                                    (meta->>'partition')::int, (meta->>'offset')::bigint);
END;
$$;
GRANT USAGE ON SCHEMA kg TO aegis_consumer;
GRANT INSERT ON kg.entities TO aegis_consumer;
SQL
for r in aegis_bridge aegis_drain aegis_consumer app; do
    expect_eq "$r holds no privilege on the store's tables" "f" \
        "$(q "SELECT bool_or(has_table_privilege('$r', c.oid, 'SELECT') OR has_table_privilege('$r', c.oid, 'INSERT'))
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'aegis' AND c.relkind IN ('r', 'v')
                 AND c.relname NOT IN ('consumer_offsets', 'dead_letters')")"
done
kafka_start "$T/kafka" >/dev/null || exit 1
diag "broker $KAFKA_TEST_BOOTSTRAP, PostgreSQL port $PGPORT, bridge $BRIDGE"

# ---- 1. Server-Sent Events as aegis_bridge (Kafka off) ----
unset KAFKA_BOOTSTRAP_SERVERS
check "the SSE bridge starts as aegis_bridge" bridge_start sse aegis_bridge --no-drain --heartbeat-seconds 1
SSE_PID=$BR_PID; B=http://127.0.0.1:$BR_PORT
pos=$(q "SELECT aegis.safe_position()")
"${CLIENT[@]}" get "$B/workspaces/ws-roles/stream" -H "Last-Event-ID: $pos" --timeout 4 >"$T/ws.json" &
cp=$!; BG_PIDS+=("$cp")
as_app "SELECT aegis.publish_checklist_item_update('ws-roles', 1, 'Item', 'complete', 'ok', 'agent')" >/dev/null
wait "$cp"
expect_eq "a workspace event published by app reaches the stream" "checklist_item_update" \
    "$(jq -r '[.events[].event] | join(" ")' "$T/ws.json")"

CONV="$B/conversations/conv-roles/stream?message=Hello&agent_id=a1&agent_type=rule_37"
r=$("${CLIENT[@]}" get "$CONV" --timeout 1.5)
run_id=$(jq -r '.id_only[0]' <<<"$r")
expect_eq "?message= records the run request (aegis.request_run as aegis_bridge)" \
    "$run_id 1" "$(q "SELECT max(event_id) || ' ' || count(*) FROM aegis.run_requests WHERE conversation_id = 'conv-roles'")"
"${CLIENT[@]}" get "$CONV" -H "Last-Event-ID: $run_id" --timeout 15 >"$T/conv.json" &
cp=$!; BG_PIDS+=("$cp")
as_app "SELECT aegis.publish_node_end('conv-roles', 'n1', 'running')" >/dev/null
done_id=$(as_app "SELECT aegis.publish_done('conv-roles', 'x1', 'completed')")
wait "$cp"
expect_eq "the conversation stream gets node_end then done and ends" "node_end done true" \
    "$(jq -r '([.events[].event] | join(" ")) + " " + (.closed | tostring)' "$T/conv.json")"
expect_eq "a reconnect after done gets 204 (aegis.conversation_finished)" 204 \
    "$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "Last-Event-ID: $done_id" "$CONV")"
r=$("${CLIENT[@]}" get "$B/conversations/conv-roles/stream" --timeout 3)
expect_eq "opened later without message: the latest run replayed (aegis.conversation_latest_run)" \
    "node_end done" "$(jq -r '[.events[].event] | join(" ")' <<<"$r")"
expect_eq "one run request in all" 1 "$(q "SELECT count(*) FROM aegis.run_requests")"
metrics=$(curl -s "$B/metrics")
check "/metrics has the drain's gauges (aegis.drain_status as aegis_bridge)" \
    grep -q '^aegis_bridge_drain_pending_events ' <<<"$metrics"
check "the SSE bridge logged no permission error" no_permission_errors sse
bridge_stop "$SSE_PID" SSE

# ---- 2. the Kafka drain as aegis_drain ----
out=$(as_app "SELECT aegis.ensure_topic('roles-out', 2, 1)" 2>&1)
check "app declares the topic ($out)" test -z "$out"
N=200
as_app "SELECT count(aegis.publish('roles-out', jsonb_build_object('n', g), 'k' || g)) FROM generate_series(1, $N) g" >/dev/null
export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP
check "the drain bridge starts as aegis_drain" bridge_start drain aegis_drain
DRAIN_PID=$BR_PID
drained() { [ "$(q "SELECT pending_events FROM aegis.drain_status()")" = 0 ]; }
check "the drain delivers everything (cursor at the last topic event)" wait_for 60 drained
in_kafka() {
    kcat -C -b "$KAFKA_TEST_BOOTSTRAP" -t roles-out -e -q -f '%k\n' 2>/dev/null | sort -u | wc -l
}
expect_eq "Kafka holds the $N events, once each" "$N" "$(in_kafka)"
expect_eq "the topic was created with the declared 2 partitions (aegis.topic_settings)" "2" \
    "$(kcat -L -b "$KAFKA_TEST_BOOTSTRAP" -t roles-out 2>/dev/null | grep -c 'partition [0-9]*,')"
check "the drain bridge logged no permission error" no_permission_errors drain
bridge_stop "$DRAIN_PID" drain
expect_eq "the drain's cursor is stored (aegis.cursor_advance as aegis_drain)" \
    "$(q "SELECT max(id) FROM aegis.events WHERE topic = 'roles-out'")" \
    "$(q "SELECT aegis.cursor_position('kafka-drain')")"

# ---- 3. a Kafka consumer as aegis_consumer ----
M=300
kafka_create_topic "$T/kafka" roles-in 2 >/dev/null
awk -v n="$M" 'BEGIN { for (i = 1; i <= n; i++) printf "k%d\t{\"id\":%d}\n", i, i;
                       printf "kx\t{\"boom\":\"poison\"}\n" }' \
    | kcat -P -b "$KAFKA_TEST_BOOTSTRAP" -t roles-in -K $'\t' 2>>"$T/kcat.log"
check "the consumer bridge starts as aegis_consumer" \
    bridge_start consumer aegis_consumer --no-drain --consumer "group=roles topics=roles-in handler=kg.handle_entity"
CONS_PID=$BR_PID
rows_are() { [ "$(q "SELECT count(*) FROM kg.entities WHERE topic = 'roles-in'")" = "$1" ]; }
dead_is() { [ "$(q "SELECT count(*) FROM aegis.dead_letters WHERE group_id = 'roles'")" = "$1" ]; }
check "the consumer applies every message" wait_for 90 rows_are "$M"
check "and dead-letters the poison one" wait_for 30 dead_is 1
expect_eq "its offsets are stored: messages + 1 poison" "$((M + 1))" \
    "$(q "SELECT sum(next_offset) FROM aegis.consumer_offsets WHERE group_id = 'roles'")"
bridge_stop "$CONS_PID" consumer
# a restart reads the stored offsets (aegis.consumer_positions) and applies nothing twice
awk 'BEGIN { printf "k9001\t{\"id\":9001}\n" }' | kcat -P -b "$KAFKA_TEST_BOOTSTRAP" -t roles-in -K $'\t' 2>>"$T/kcat.log"
check "the consumer bridge starts again" \
    bridge_start consumer aegis_consumer --no-drain --consumer "group=roles topics=roles-in handler=kg.handle_entity"
CONS_PID=$BR_PID
check "after a restart it goes on from the stored offsets" wait_for 90 rows_are "$((M + 1))"
expect_eq "nothing applied twice, no new dead letter" "1" \
    "$(q "SELECT count(*) FROM aegis.dead_letters WHERE group_id = 'roles'")"
check "the consumer bridge logged no permission error" no_permission_errors consumer
bridge_stop "$CONS_PID" consumer

check "no sanitizer reports" bash -c "! grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$T'/*.log"
finish
