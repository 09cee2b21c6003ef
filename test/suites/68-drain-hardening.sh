#!/usr/bin/env bash
# 68-drain-hardening.sh: the Kafka drain cannot be wedged by one event, and
# the bridge shows an open publisher that holds every reader back (issue 20,
# items 5 and 6, the bridge's side), against a real PostgreSQL and a real
# Kafka 3.6.2 broker (test/kafka/broker.sh):
#   an event larger than its topic's max.message.bytes (set on that topic)
#   is dead-lettered (aegis.drain_dead_letters, with the error) and the events
#   after it arrive; counted in /metrics and aegis.drain_status();
#   with a topic allow list (AEGIS_TOPIC_ALLOW) an event for another topic is
#   dead-lettered, not produced, and no such topic is created;
#   an idle publishing transaction: its age in /metrics and one warning in
#   the log past AEGIS_PUBLISHER_WARN_SECONDS.
set -u
source "$(dirname "$0")/../lib.sh"
source "$AEGIS_TOP/test/kafka/lib.sh"

BIN=${AEGIS_BRIDGE_BIN:-$AEGIS_TOP/bridge/aegis-bridge-asan}
WORK=$(mktemp -d "$AEGIS_TEST_TMP/drainh-XXXXXX")
BRIDGE_PID=
BG_PIDS=()

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill_pid "$p"; done
    kill_pid "$BRIDGE_PID"
    kafka_stop_all
    pg_stop_all
    rm -rf "$WORK/kafka/data"
    if [ "$TESTS_FAILED" -eq 0 ]; then rm -rf "$WORK"; else echo "# kept $WORK"; fi
}
trap cleanup EXIT

if [ -z "${AEGIS_BRIDGE_BIN:-}" ]; then
    make -s -C "$AEGIS_TOP/bridge" all asan >/dev/null || { not_ok "bridge builds"; finish; exit 1; }
fi
pg_start drainh || { not_ok "postgres starts"; finish; exit 1; }
psql -qX -c "CREATE EXTENSION aegis_events" || { not_ok "extension installs"; finish; exit 1; }
kafka_start "$WORK/kafka" || { not_ok "kafka broker starts"; finish; exit 1; }

q() { psql -qAtX -c "$1"; }
PORT=
B=
LOG=
BRIDGE_ENV=()
start_bridge() {
    local name=$1; shift
    PORT=$(free_port)
    B=http://127.0.0.1:$PORT
    LOG=$WORK/$name.log
    env "${BRIDGE_ENV[@]}" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        KAFKA_BOOTSTRAP_SERVERS="$KAFKA_TEST_BOOTSTRAP" \
        DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
        "$BIN" --listen "127.0.0.1:$PORT" --heartbeat-seconds 1 "$@" >>"$LOG" 2>&1 &
    BRIDGE_PID=$!
    wait_for 30 curl -sf "$B/healthz"
}
stop_bridge() { kill_pid "$BRIDGE_PID"; BRIDGE_PID=; }
metric() { curl -s -m 5 "$B/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
# kafka_values TOPIC: the "n" of every message in TOPIC, sorted (partitions
# are read one after the other)
kafka_values() {
    kcat -C -b "$KAFKA_TEST_BOOTSTRAP" -t "$1" -e -o beginning -q -f '%s\n' 2>/dev/null |
        jq -r '.n' 2>/dev/null | sort -n | tr '\n' ' '
}
kafka_has() { [ "$(kafka_values "$1")" = "$2" ]; }
topic_exists() { kcat -L -b "$KAFKA_TEST_BOOTSTRAP" -t "$1" 2>/dev/null | grep -q "topic \"$1\" with [1-9]"; }
topic_absent() { ! topic_exists "$1"; }

# ---- a message too large for its topic ----
kafka_create_topic "$WORK/kafka" dlq-small 1 >/dev/null 2>&1
kafka_topic_config "$WORK/kafka" dlq-small max.message.bytes=2000 >/dev/null 2>&1 ||
    not_ok "max.message.bytes set on dlq-small"
q "SELECT aegis.publish('dlq-small', '{\"n\": 1}')" >/dev/null
big=$(q "SELECT aegis.publish('dlq-small', jsonb_build_object('n', 2, 'pad', repeat('p', 5000)))")
q "SELECT aegis.publish('dlq-small', '{\"n\": 3}')" >/dev/null
q "SELECT aegis.publish('dlq-other', '{\"n\": 4}')" >/dev/null
check "dead letter: the bridge starts with the drain" start_bridge dlq
check "dead letter: the events after the too-large one arrive in Kafka" \
    wait_for 60 kafka_has dlq-small "1 3 "
check "dead letter: ... and on another topic" wait_for 30 kafka_has dlq-other "4 "
expect_eq "dead letter: the too-large event is in aegis.drain_dead_letters with Kafka's error" \
    "$big dlq-small true" \
    "$(q "SELECT event_id || ' ' || topic || ' ' || (error ILIKE '%too large%') FROM aegis.drain_dead_letters")"
check "dead letter: nothing is pending" \
    wait_for 20 bash -c "[ \"\$(psql -qAtX -c 'SELECT pending_events FROM aegis.drain_status()')\" = 0 ]"
expect_eq "dead letter: aegis.drain_status() counts it" 1 "$(q "SELECT dead_letters FROM aegis.drain_status()")"
expect_eq "dead letter: /metrics counts it" 1 "$(metric aegis_bridge_drain_dead_letters_total)"
check "dead letter: logged once with the event id and the error" \
    test "$(grep -c "dead.letter.*event=$big" "$LOG")" -eq 1
stop_bridge
check "dead letter: a restarted bridge does not produce it again" start_bridge dlq2
q "SELECT aegis.publish('dlq-small', '{\"n\": 5}')" >/dev/null
check "dead letter: ... and delivers the next one" wait_for 60 kafka_has dlq-small "1 3 5 "
expect_eq "dead letter: still one dead letter" 1 "$(q "SELECT count(*) FROM aegis.drain_dead_letters")"
check "dead letter: the drain's role needs no table privilege (a SECURITY DEFINER function records it)" \
    test "$(q "SELECT prosecdef FROM pg_proc WHERE oid = 'aegis.drain_dead_letter(bigint, text)'::regprocedure")" = t
stop_bridge

# ---- a topic allow list ----
BRIDGE_ENV=(AEGIS_TOPIC_ALLOW=dlq-small,dlq-other)
check "allow list: the bridge starts with AEGIS_TOPIC_ALLOW=dlq-small,dlq-other" start_bridge allow
not_allowed=$(q "SELECT aegis.publish('not-allowed-topic', '{\"n\": 6}')")
q "SELECT aegis.publish('dlq-other', '{\"n\": 7}')" >/dev/null
check "allow list: an allowed topic's next event arrives" wait_for 60 kafka_has dlq-other "4 7 "
expect_eq "allow list: the other topic's event is dead-lettered as not allowed" "$not_allowed true" \
    "$(q "SELECT event_id || ' ' || (error ILIKE '%allow%') FROM aegis.drain_dead_letters WHERE topic = 'not-allowed-topic'")"
check "allow list: the topic was not created in Kafka" topic_absent not-allowed-topic
check "allow list: --help documents --topic-allow" bash -c "'$BIN' --help | grep -q -- '--topic-allow'"
stop_bridge
BRIDGE_ENV=()

# ---- an idle publishing transaction ----
BRIDGE_ENV=(AEGIS_PUBLISHER_WARN_SECONDS=2)
check "publisher: the bridge starts with AEGIS_PUBLISHER_WARN_SECONDS=2" start_bridge pub
psql -qX >/dev/null 2>&1 <<'SQL' &
BEGIN;
SELECT aegis.publish_agent_status('ws-held', 'running', 'held open');
SELECT pg_sleep(8);
COMMIT;
SQL
HOLDER=$!
BG_PIDS+=("$HOLDER")
age_above() { awk -v a="$(metric aegis_bridge_oldest_publisher_age_seconds)" -v m="$1" 'BEGIN {exit !(a + 0 > m)}'; }
check "publisher: /metrics shows the open publisher's age" wait_for 15 age_above 2
check "publisher: the log warns about it with its pid" \
    wait_for 10 grep -qE 'publish.*(open|idle).*pid=[0-9]+' "$LOG"
wait "$HOLDER" 2>/dev/null
check "publisher: the age goes back to 0 once it commits" \
    wait_for 10 bash -c "[ \"\$(curl -s '$B/metrics' | awk '\$1 == \"aegis_bridge_oldest_publisher_age_seconds\" {print \$2}')\" = 0 ]"
check "publisher: warned once, not every second" \
    test "$(grep -cE 'publish.*(open|idle).*pid=[0-9]+' "$LOG")" -le 2
stop_bridge
BRIDGE_ENV=()
check "no ASan/UBSan report in the bridge logs" \
    bash -c "! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' '$WORK'/*.log"

finish
