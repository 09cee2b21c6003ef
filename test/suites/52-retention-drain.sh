#!/bin/bash
# test/suites/52-retention-drain.sh: retention beside the real Kafka drain
# (test/kafka/broker.sh, aegis-bridge, kcat as the independent consumer).
# The maintenance worker runs aegis.maintain() every second with
# aegis.retention_interval = 1 s, so retention runs on its own here.
# Topic 'ret-a' keeps events 0 s after delivery, 'ret-b' 20 s, workspace
# events 0 s.  Checks: nothing undelivered goes while the bridge is down;
# after the bridge starts every event reaches Kafka exactly as in suite 50
# (check_drain.py against a copy of the store taken before removal); the rows
# then go; no removed position is above the drain's cursor.
set -u
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
source "$AEGIS_TOP/test/kafka/lib.sh"

T="$AEGIS_TEST_TMP/retdrain-$$"
mkdir -p "$T"
BRIDGE=${AEGIS_BRIDGE:-$AEGIS_TOP/bridge/aegis-bridge}
CHECK="$AEGIS_TOP/test/kafka/check_drain.py"
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
cursor() { q "SELECT aegis.cursor_position('kafka-drain')"; }
rows_of() { q "SELECT count(*) FROM aegis.events WHERE topic = '$1'"; }
rows_gone() { [ "$(rows_of "$1")" = 0 ]; }
drained() { [ "$(q "SELECT pending_events FROM aegis.drain_lag")" = 0 ]; }
# snapshot NAME TOPIC: the store's events of TOPIC as check_drain.py reads them
snapshot() {
    q "SELECT json_build_object('id', id, 'topic', topic, 'key', key, 'headers', headers,
                                'type', event_type, 'value', payload::text)
       FROM aegis.events WHERE topic = '$2' ORDER BY id" >"$T/$1.store"
}
# verdict NAME TOPIC: Kafka's copy of TOPIC against the snapshot
verdict() {
    kcat -C -b "$KAFKA_TEST_BOOTSTRAP" -t "$2" -J -e -o beginning -q >"$T/$1.kafka" 2>/dev/null
    python3 "$CHECK" "$T/$1.store" "$T/$1.kafka" >"$T/$1.verdict"
    diag "$1: $(cat "$T/$1.verdict") store_events=$(wc -l <"$T/$1.store")"
}
v() { jq -r ".$2" "$T/$1.verdict"; }
expect_exact() {
    local name=$1 n=$2
    expect_eq "$name: every event in Kafka once, intact, in order per key" \
        "0 $n 0 0 0 0 0 0 0" \
        "$(v "$name" missing) $(v "$name" delivered) $(v "$name" duplicates) $(v "$name" wrong_value) $(v "$name" wrong_key) $(v "$name" wrong_headers) $(v "$name" wrong_topic) $(v "$name" order_violations) $(v "$name" key_split)"
}

make -s -C "$AEGIS_TOP/bridge" all >"$T/build.log" 2>&1 || { cat "$T/build.log"; exit 1; }
pg_start retdrain "aegis.retention_interval = '1s'" "aegis.maintenance_naptime = '200ms'" >/dev/null || exit 1
q "CREATE EXTENSION aegis_events" || exit 1
kafka_start "$T/kafka" || exit 1
diag "broker $KAFKA_TEST_BOOTSTRAP, PostgreSQL port $PGPORT"

q "SELECT aegis.ensure_topic('ret-a', 3, 1), aegis.ensure_topic('ret-b', 3, 1)" >/dev/null
q "SELECT aegis.set_topic_retention('ret-a', '0'), aegis.set_topic_retention('ret-b', '20 s'),
          aegis.set_retention('workspace', '0')" >/dev/null

# ---- 1. bridge down: expired but undelivered events stay ----
q "SELECT count(aegis.publish('ret-a', jsonb_build_object('n', g, 'pad', repeat('x', 100)),
                              'k' || (g % 7), jsonb_build_object('src', 'suite52')))
   FROM generate_series(1, 3000) g" >/dev/null
WS=$(q "SELECT aegis.publish_agent_status('ret-ws', 'running')")
snapshot a ret-a
check "the maintenance worker removes an expired event without a topic" \
    wait_for 30 bash -c "[ \"\$(psql -XAtc \"SELECT count(*) FROM aegis.events WHERE id = $WS\")\" = 0 ]"
expect_eq "undelivered topic events are all still there (the worker ran: the workspace event went)" \
    3000 "$(rows_of ret-a)"
expect_eq "the drain's cursor has not moved" 0 "$(cursor)"

# ---- 2. the bridge drains while publishers go on; rows go after delivery ----
publish_b() {
    local i
    for ((i = 0; i < 20; i++)); do
        q "SELECT count(aegis.publish('ret-b', jsonb_build_object('tx', $i, 'n', g),
                                      'k' || (g % 5), jsonb_build_object('tx', '$i')))
           FROM generate_series(1, 100) g" >/dev/null
        sleep 0.05
    done
}
BR_PORT=$(free_port)
KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
    "$BRIDGE" --listen "127.0.0.1:$BR_PORT" 2>>"$T/bridge.log" &
BR=$!; BG_PIDS+=("$BR")
publish_b
check "the drain delivers everything" wait_for 90 drained
snapshot b ret-b
check "ret-a's rows go once delivered (keep 0 after delivery)" wait_for 60 rows_gone ret-a
verdict a ret-a
expect_exact a 3000
verdict b ret-b
expect_exact b 2000
check "ret-b's rows go 20 s after delivery" wait_for 90 rows_gone ret-b
expect_eq "no removed topic event lies above the drain's cursor" t \
    "$(q "SELECT max(horizon) <= aegis.cursor_position('kafka-drain') FROM aegis.stream_horizons WHERE stream_kind = 'topic'")"
expect_eq "the horizon of ret-a's stream is its last event" \
    "$(tail -1 "$T/a.store" | jq .id)" "$(q "SELECT aegis.stream_horizon('topic', 'ret-a')")"
expect_eq "aegis.retention counts what each policy removed" "3000 2000" \
    "$(q "SELECT string_agg(removed::text, ' ' ORDER BY name) FROM aegis.retention WHERE target = 'topic'")"
kill_pid "$BR"
check "no errors from retention in the server log" \
    bash -c "! grep -E 'ERROR|TRAP|PANIC' '$AEGIS_TEST_TMP/pg-retdrain-$$/server.log'"
finish
