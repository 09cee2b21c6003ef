#!/bin/bash
# test/suites/50-kafka-drain.sh: the PostgreSQL -> Kafka drain of aegis-bridge
# end to end, against a real Apache Kafka 3.6.2 broker (test/kafka/broker.sh)
# and a throwaway PostgreSQL, verified with kcat as an independent consumer
# (test/kafka/check_drain.py compares Kafka with the store).  Every bridge here
# is the ASan/UBSan build; the last test checks their logs for reports.
# Scenarios: Kafka off, delivery and topics, SIGTERM, SIGKILL, broker outage,
# PostgreSQL restart, two bridges (HA), SIGTERM without a broker, a bridge
# started before the broker, bad configuration; the plain build under valgrind.
set -u
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
source "$AEGIS_TOP/test/kafka/lib.sh"

T="$AEGIS_TEST_TMP/drain-$$"
mkdir -p "$T"
BRIDGE=${AEGIS_BRIDGE_ASAN:-$AEGIS_TOP/bridge/aegis-bridge-asan}
CHECK="$AEGIS_TOP/test/kafka/check_drain.py"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=66
BG_PIDS=()

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill_pid "$p"; done
    kafka_stop_all
    pg_stop_all
    # data is throwaway; logs stay for a failed run
    rm -rf "$AEGIS_TEST_TMP/pg-drain-$$" "$T/kafka/data"
    [ "$TESTS_FAILED" -eq 0 ] && rm -rf "$T"
}
trap cleanup EXIT

# ---- helpers ----

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# bridge_start NAME [ARGS...]: starts the bridge with Kafka on; sets BR_PID, BR_PORT
bridge_start() {
    local name=$1; shift
    BR_PORT=$(free_port)
    KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
    DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
        "$BRIDGE" --listen "127.0.0.1:$BR_PORT" "$@" 2>>"$T/$name.log" &
    BR_PID=$!
    BG_PIDS+=("$BR_PID")
}

alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# bridge_term PID: SIGTERM; sets TERM_RC to the exit status (124: still
# running after 30 s, then killed).  Not in a subshell: wait needs the parent.
bridge_term() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 300); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        kill -KILL "$pid"; wait "$pid" 2>/dev/null; TERM_RC=124; return
    fi
    wait "$pid"; TERM_RC=$?
}
max_id() { q "SELECT coalesce(max(id), 0) FROM aegis.events"; }
max_topic_id() { q "SELECT coalesce(max(id), 0) FROM aegis.events WHERE topic IS NOT NULL"; }
cursor() { q "SELECT aegis.cursor_position('kafka-drain')"; }
pending() { q "SELECT pending_events FROM aegis.drain_lag"; }
drained() { [ "$(pending)" = 0 ]; }
cursor_past() { [ "$(cursor)" -gt "$1" ]; }
healthz_kafka() { curl -s "http://127.0.0.1:$1/healthz" | grep -q "\"kafka\":\"$2\""; }
log_has() { grep -q -- "$2" "$T/$1.log" 2>/dev/null; }

# publisher TOPIC TXS PER_TX: TXS transactions of PER_TX keyed events, each
# retried (bounded) while PostgreSQL is away; runs in the background
publisher() {
    local topic=$1 txs=$2 per=$3 i tries
    for ((i = 0; i < txs; i++)); do
        for ((tries = 0; tries < 150; tries++)); do
            q "SELECT count(aegis.publish('$topic',
                   jsonb_build_object('tx', $i, 'n', g, 'pad', repeat('x', 200)),
                   'k' || (g % 10), jsonb_build_object('src', 'suite50', 'tx', '$i')))
               FROM generate_series(1, $per) g" >/dev/null 2>&1 && break
            sleep 0.2
        done
        sleep 0.01
    done
}

# verdict NAME FROM TO TOPIC...: checks Kafka against the store's events of
# TOPICs with FROM < id <= TO; leaves the counts in $T/NAME.verdict
verdict() {
    local name=$1 from=$2 to=$3; shift 3
    local topics t
    topics=$(printf "'%s'," "$@"); topics=${topics%,}
    q "SELECT json_build_object('id', id, 'topic', topic, 'key', key, 'headers', headers,
                                'type', event_type, 'value', payload::text)
       FROM aegis.events WHERE topic IN ($topics) AND id > $from AND id <= $to ORDER BY id" \
        >"$T/$name.store"
    verdict_read "$name" "$@"
    diag "$name: $(cat "$T/$name.verdict") store_events=$(wc -l <"$T/$name.store")"
    if [ "$(v "$name" missing)" != 0 ]; then
        # kcat -e stops at the end offsets it saw when it started; read the
        # topics once more, from the beginning, before calling an event lost
        # (the second read decides; both are in the log)
        sleep 3
        verdict_read "$name" "$@"
        diag "$name, read again: $(cat "$T/$name.verdict")"
        verdict_explain "$name"
    fi
}
# what the store and the bridges' logs say of the events still missing
verdict_explain() {
    local ids id f
    ids=$(jq -r '.missing_ids | map(tostring) | join(" ")' "$T/$1.verdict")
    [ -n "$ids" ] || return 0
    diag "$1: missing ids $ids; dead letters: $(q "SELECT coalesce(string_agg(event_id || ': ' || error, '; '), 'none')
        FROM aegis.drain_dead_letters WHERE event_id IN (${ids// /,})" 2>&1)"
    for f in "$T"/*.log; do
        for id in $ids; do
            grep -h -e "$id" "$f" 2>/dev/null | head -5 | sed "s|^|# $(basename "$f"): |"
        done
        grep -h -e 'level=warn' -e 'level=error' -e 'topic' "$f" 2>/dev/null | tail -15 | sed "s|^|# $(basename "$f"): |"
    done
}
verdict_read() { # NAME TOPIC...: Kafka's messages of the TOPICs against $T/NAME.store
    local name=$1 t; shift
    : >"$T/$name.kafka"
    for t in "$@"; do
        kcat -C -b "$KAFKA_TEST_BOOTSTRAP" -t "$t" -J -e -o beginning -q >>"$T/$name.kafka" 2>/dev/null
    done
    python3 "$CHECK" "$T/$name.store" "$T/$name.kafka" >"$T/$name.verdict"
}
v() { jq -r ".$2" "$T/$1.verdict"; }

# every event delivered once or more, intact, in order per key
expect_complete() {
    local name=$1
    expect_eq "$name: no event missing" 0 "$(v "$name" missing)"
    expect_eq "$name: values, keys, headers and topics as stored" "0 0 0 0" \
        "$(v "$name" wrong_value) $(v "$name" wrong_key) $(v "$name" wrong_headers) $(v "$name" wrong_topic)"
    expect_eq "$name: per key, Kafka order is store order" "0 0" \
        "$(v "$name" order_violations) $(v "$name" key_split)"
}

partitions_of() {
    kcat -L -b "$KAFKA_TEST_BOOTSTRAP" -t "$1" 2>/dev/null | sed -n 's/.*topic "'"$1"'" with \([0-9]*\) partitions.*/\1/p'
}

# ---- set-up ----

if [ -z "${AEGIS_BRIDGE_ASAN:-}" ]; then   # (re)build: make skips what is up to date
    make -s -C "$AEGIS_TOP/bridge" all asan >"$T/build.log" 2>&1 || { cat "$T/build.log"; exit 1; }
fi
pg_start drain >/dev/null || exit 1
q "CREATE EXTENSION aegis_events" || exit 1
kafka_start "$T/kafka" || exit 1
KDIR="$T/kafka"
diag "broker $KAFKA_TEST_BOOTSTRAP, PostgreSQL port $PGPORT, bridge $BRIDGE"

# ---- 1. Kafka off: one warning, no drain, events wait ----

q "SELECT aegis.publish('waiting', jsonb_build_object('n', g), 'w' || (g % 3)) FROM generate_series(1, 50) g" >/dev/null
BR_PORT=$(free_port)
env -u KAFKA_BOOTSTRAP_SERVERS DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
    "$BRIDGE" --listen "127.0.0.1:$BR_PORT" 2>"$T/off.log" &
OFF_PID=$!; BG_PIDS+=("$OFF_PID")
check "kafka off: bridge serves /healthz" wait_for 30 healthz_kafka "$BR_PORT" off
expect_eq "kafka off: exactly one warning about Kafka" 1 \
    "$(grep 'level=warn' "$T/off.log" | grep -c 'KAFKA_BOOTSTRAP_SERVERS')"
bridge_term "$OFF_PID"
expect_eq "kafka off: SIGTERM exits 0" 0 "$TERM_RC"
expect_eq "kafka off: the 50 events still wait (cursor unmoved)" "50 0" "$(pending) $(cursor)"
expect_eq "lag: aegis.drain_lag shows the oldest pending event's age" t \
    "$(q "SELECT oldest_pending_age > interval '0' FROM aegis.drain_lag")"

# ---- 2. delivery, topics, headers, order ----

q "SELECT aegis.ensure_topic('declared', 5, 1)" >/dev/null
q "SELECT aegis.publish('orders', jsonb_build_object('n', g, 's', 'tab	and \"quote\"'), 'k' || (g % 10),
                        jsonb_build_object('trace', 't' || g, 'origin', 'suite'))
   FROM generate_series(1, 500) g" >/dev/null
q "SELECT aegis.publish_event('declared', 'item_created', jsonb_build_object('n', g), 'd' || (g % 4))
   FROM generate_series(1, 200) g" >/dev/null
q "SELECT aegis.publish('nokey', jsonb_build_object('n', g)) FROM generate_series(1, 30) g" >/dev/null
q "SELECT aegis.publish_workspace_event('ck-1', 'agent_status', '{\"status\": \"running\"}')" >/dev/null
TO=$(max_id)
bridge_start main
MAIN_PID=$BR_PID; MAIN_PORT=$BR_PORT
check "delivery: everything pending is drained" wait_for 90 drained
check "delivery: /healthz shows kafka up" wait_for 15 healthz_kafka "$MAIN_PORT" up
verdict basic 0 "$TO" waiting orders declared nokey
expect_complete basic
expect_eq "delivery: each event exactly once" "780 0" "$(v basic delivered) $(v basic duplicates)"
expect_eq "delivery: cursor = last topic event" "$(max_topic_id)" "$(cursor)"
expect_eq "lag: nothing pending, no age" "0 true" "$(q "SELECT pending_events || ' ' || (oldest_pending_age IS NULL) FROM aegis.drain_lag")"
expect_eq "topics: auto-created topic has 3 partitions" 3 "$(partitions_of orders)"
expect_eq "topics: ensure_topic('declared', 5, 1) has 5 partitions" 5 "$(partitions_of declared)"
expect_eq "topics: the drain created them (auto-create is off on the broker)" 2 \
    "$(grep -c 'topic_create topic="\(orders\|declared\)"' "$T/main.log")"

# ---- 3. SIGTERM mid-stream: flush, store the cursor, exit 0; no duplicate after restart ----

FROM=$(max_id)
publisher sigterm 20 1000 &
PUB=$!; BG_PIDS+=("$PUB")
wait_for 60 cursor_past $((FROM + 2000)) || diag "sigterm: cursor did not move past $((FROM + 2000))"
bridge_term "$MAIN_PID"
expect_eq "sigterm: bridge exits 0 mid-stream" 0 "$TERM_RC"
check "sigterm: flush and cursor logged" log_has main "module=drain msg=stopped"
STOPPED_AT=$(cursor)
verdict sigterm_before "$FROM" "$STOPPED_AT" sigterm
expect_eq "sigterm: every event up to the stored cursor is in Kafka" 0 "$(v sigterm_before missing)"
wait "$PUB"
bridge_start main2
MAIN_PID=$BR_PID; MAIN_PORT=$BR_PORT
check "sigterm: restarted bridge drains the rest" wait_for 90 drained
TO=$(max_id)
verdict sigterm "$FROM" "$TO" sigterm
expect_complete sigterm
expect_eq "sigterm: no duplicates after a clean stop" 0 "$(v sigterm duplicates)"

# ---- 4. SIGKILL mid-stream: duplicates only of unacknowledged events ----

FROM=$(max_id)
publisher sigkill 40 500 &
PUB=$!; BG_PIDS+=("$PUB")
wait_for 60 cursor_past $((FROM + 3000)) || diag "sigkill: cursor did not move past $((FROM + 3000))"
kill -KILL "$MAIN_PID"; wait "$MAIN_PID" 2>/dev/null
KILLED_AT=$(cursor)
bridge_start main3
MAIN_PID=$BR_PID; MAIN_PORT=$BR_PORT
wait "$PUB"
check "sigkill: restarted bridge drains everything" wait_for 90 drained
TO=$(max_id)
verdict sigkill "$FROM" "$TO" sigkill
expect_complete sigkill
DUPS=$(v sigkill duplicates); DUPMIN=$(v sigkill dup_min_id)
diag "sigkill: $DUPS duplicates; cursor at kill $KILLED_AT, smallest duplicated id $DUPMIN"
if [ "$DUPS" = 0 ] || [ "$DUPMIN" -gt "$KILLED_AT" ]; then
    ok "sigkill: duplicates only after the stored cursor ($DUPS counted)"
else
    not_ok "sigkill: event $DUPMIN at or below the cursor $KILLED_AT was sent again"
fi

# ---- 5. broker stopped for several seconds mid-stream ----

FROM=$(max_id)
publisher outage 40 500 &
PUB=$!; BG_PIDS+=("$PUB")
wait_for 60 cursor_past $((FROM + 2000)) || diag "outage: cursor did not move past $((FROM + 2000))"
kafka_stop "$KDIR"
check "outage: /healthz shows kafka down" wait_for 30 healthz_kafka "$MAIN_PORT" down
sleep 5
check "outage: bridge keeps running without the broker" alive "$MAIN_PID"
check "outage: a warning was logged" log_has main3 "level=warn module=kafka"
kafka_start "$KDIR" >/dev/null || not_ok "outage: broker restart"
wait "$PUB"
check "outage: everything drained after the broker returned" wait_for 120 drained
TO=$(max_id)
verdict outage "$FROM" "$TO" outage
expect_complete outage

# ---- 5b. the broker rejects a message for good: dead-lettered, the rest drained ----
# (issue 20 item 5: before, the drain retried it for ever and nothing after it
# was delivered until the topic's max.message.bytes was raised)

kafka_create_topic "$KDIR" small 3
kafka_topic_config "$KDIR" small max.message.bytes=1000
FROM=$(max_id)
q "SELECT aegis.publish('small', jsonb_build_object('n', g, 'pad', repeat('x', CASE WHEN g = 100 THEN 3000 ELSE 10 END)),
                        'k' || (g % 10))
   FROM generate_series(1, 300) g" >/dev/null
BIG_ID=$(q "SELECT id FROM aegis.events WHERE topic = 'small' AND length(payload::text) > 1000")
check "rejected: everything else drained" wait_for 120 drained
expect_eq "rejected: the too-large event $BIG_ID is in aegis.drain_dead_letters with Kafka's error" "$BIG_ID true" \
    "$(q "SELECT event_id || ' ' || (error ILIKE '%too large%') FROM aegis.drain_dead_letters WHERE topic = 'small'")"
check "rejected: bridge keeps running" alive "$MAIN_PID"
TO=$(max_id)
verdict rejected "$FROM" "$((BIG_ID - 1))" small
expect_complete rejected
verdict rejected-after "$BIG_ID" "$TO" small
expect_complete rejected-after
kafka_topic_config "$KDIR" small max.message.bytes=100000

# ---- 6. PostgreSQL restarted mid-stream ----

FROM=$(max_id)
publisher pgrestart 40 500 &
PUB=$!; BG_PIDS+=("$PUB")
wait_for 60 cursor_past $((FROM + 2000)) || diag "pgrestart: cursor did not move past $((FROM + 2000))"
pg_restart_dir "$PGDATA_drain" || not_ok "pgrestart: restart PostgreSQL"
check "pgrestart: bridge survives the restart" alive "$MAIN_PID"
wait "$PUB"
check "pgrestart: everything drained after reconnecting" wait_for 120 drained
TO=$(max_id)
verdict pgrestart "$FROM" "$TO" pgrestart
expect_complete pgrestart
check "pgrestart: the drain logged the pause" log_has main3 'module=drain msg=paused'

# ---- 7. two bridges: one drains, the other takes over when it dies ----

bridge_start standby --flush-timeout-ms 2000 --log-level debug
SB_PID=$BR_PID; SB_PORT=$BR_PORT
check "ha: the second bridge stands by" wait_for 30 healthz_kafka "$SB_PORT" standby
FROM=$(max_id)
publisher ha 40 500 &
PUB=$!; BG_PIDS+=("$PUB")
wait_for 60 cursor_past $((FROM + 2000)) || diag "ha: cursor did not move past $((FROM + 2000))"
expect_eq "ha: only one bridge drains" 0 "$(grep -c 'module=drain msg=active' "$T/standby.log")"
kill -KILL "$MAIN_PID"; wait "$MAIN_PID" 2>/dev/null
KILLED_AT=$(cursor)
check "ha: the standby takes over" wait_for 30 log_has standby 'module=drain msg=active'
expect_eq "ha: standby logged once, not at every lock attempt" 1 \
    "$(grep -c 'module=drain msg=standby' "$T/standby.log")"
wait "$PUB"
check "ha: everything drained by the new active bridge" wait_for 90 drained
TO=$(max_id)
verdict ha "$FROM" "$TO" ha
expect_complete ha
DUPS=$(v ha duplicates); DUPMIN=$(v ha dup_min_id)
diag "ha: $DUPS duplicates; cursor at kill $KILLED_AT, smallest duplicated id $DUPMIN"
if [ "$DUPS" = 0 ] || [ "$DUPMIN" -gt "$KILLED_AT" ]; then
    ok "ha: duplicates only after the stored cursor ($DUPS counted)"
else
    not_ok "ha: event $DUPMIN at or below the cursor $KILLED_AT was sent again"
fi

# ---- 7b. SIGTERM while the broker is away: flush gives up at its deadline ----

kafka_stop "$KDIR"
check "shutdown: /healthz shows kafka down" wait_for 30 healthz_kafka "$SB_PORT" down
FROM=$(max_id); FROM_7B=$FROM
q "SELECT aegis.publish('ha', jsonb_build_object('n', g), 'k' || (g % 10)) FROM generate_series(1, 200) g" >/dev/null
check "shutdown: the events reached the producer" wait_for 30 log_has standby "batch rows=200 produced=200"
bridge_term "$SB_PID"
expect_eq "shutdown: exits 0 after the flush deadline" 0 "$TERM_RC"
check "shutdown: unflushed events reported" grep -q "module=drain msg=stopped .* unflushed=200" "$T/standby.log"
expect_eq "shutdown: the cursor stays before the unacknowledged events" "$FROM" "$(cursor)"

# ---- 8. bad configuration is refused with a clear message ----

bad_config() {   # NAME EXPECTED_TEXT ARGS...
    local name=$1 text=$2 rc; shift 2
    KAFKA_BOOTSTRAP_SERVERS=${BAD_BOOTSTRAP-$KAFKA_TEST_BOOTSTRAP} \
    DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
        timeout 30 "$BRIDGE" --listen "127.0.0.1:$(free_port)" "$@" >"$T/bad.out" 2>"$T/bad.err"
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q -- "$text" "$T/bad.err"; then
        ok "config: $name refused (exit $rc)"
    else
        not_ok "config: $name (exit $rc): $(tail -n 2 "$T/bad.err")"
    fi
}
bad_config "-X enable.idempotence=false" "enable.idempotence=false refused" -X enable.idempotence=false
bad_config "-X acks=1" "acks=1 refused" -X acks=1
bad_config "-X unknown property" "no.such.property" -X no.such.property=1
bad_config "-X bad value" "linger.ms=soon" -X linger.ms=soon
bad_config "-X without =" "-X" -X linger.ms
BAD_BOOTSTRAP=" , " bad_config "blank KAFKA_BOOTSTRAP_SERVERS" "KAFKA_BOOTSTRAP_SERVERS"
unset BAD_BOOTSTRAP

# ---- 8b. a bridge that starts while the broker is down waits, then delivers ----

FROM=$(max_id)
q "SELECT aegis.publish('late', jsonb_build_object('n', g), 'k' || (g % 10)) FROM generate_series(1, 100) g" >/dev/null
PEND=$(pending)   # these 100 and the 200 left unacknowledged by 7b
bridge_start late
LATE_PID=$BR_PID; LATE_PORT=$BR_PORT
check "late broker: the bridge is up and reports kafka down" wait_for 30 healthz_kafka "$LATE_PORT" down
sleep 3
check "late broker: still running" alive "$LATE_PID"
expect_eq "late broker: nothing skipped while waiting" "$PEND" "$(pending)"
kafka_start "$KDIR" >/dev/null || not_ok "late broker: broker start"
check "late broker: everything delivered once the broker is up" wait_for 120 drained
verdict late "$FROM" "$(max_id)" late
expect_complete late
verdict late_ha "$FROM_7B" "$(max_id)" ha
expect_complete late_ha
bridge_term "$LATE_PID"
expect_eq "late broker: exit 0" 0 "$TERM_RC"

# ---- 9. valgrind: the plain build drains and stops with no memory error or leak ----

FROM=$(max_id)
q "SELECT aegis.publish('vg', jsonb_build_object('n', g), 'k' || (g % 10), jsonb_build_object('h', 'v'))
   FROM generate_series(1, 300) g" >/dev/null
KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
    valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
    "$AEGIS_TOP/bridge/aegis-bridge" --listen "127.0.0.1:$(free_port)" 2>"$T/valgrind.txt" &
VG_PID=$!; BG_PIDS+=("$VG_PID")
check "valgrind: the bridge drains under valgrind" wait_for 120 drained
bridge_term "$VG_PID"
expect_eq "valgrind: exit 0 (no error, no definite leak)" 0 "$TERM_RC"
verdict vg "$FROM" "$(max_id)" vg
expect_complete vg

# ---- 10. sanitizers ----

check "sanitizers: the bridge under test is the ASan build" bash -c "ldd '$BRIDGE' | grep -q libasan"
if grep -l "AddressSanitizer\|LeakSanitizer\|runtime error" "$T"/*.log "$T/bad.err" >/dev/null 2>&1; then
    not_ok "sanitizers: reports in $(grep -l "AddressSanitizer\|LeakSanitizer\|runtime error" "$T"/*.log | tr '\n' ' ')"
else
    ok "sanitizers: no ASan/UBSan/leak report from any bridge"
fi

finish
