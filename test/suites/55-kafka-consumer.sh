#!/bin/bash
# test/suites/55-kafka-consumer.sh: the Kafka -> PostgreSQL consumers of
# aegis-bridge end to end, against a real Apache Kafka 3.6.2 broker
# (test/kafka/broker.sh) and a throwaway PostgreSQL, with messages produced by
# an independent producer (kcat).  The handler inserts into a table whose keys
# are the message id and (topic, partition, offset): a message applied twice
# would fail there and show up in aegis.dead_letters, so "no dead letters and
# every row present" is "exactly once".  Every bridge is the ASan/UBSan build.
# Scenarios: refused start (handler missing, wrong signature, no Kafka, bad
# config), delivery and metadata, poison messages, SIGKILL mid-batch then
# restart, two bridges in one group with one killed, the aegis.publish ->
# Kafka -> handler round trip, SIGTERM, sanitizers.
set -u
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
source "$AEGIS_TOP/test/kafka/lib.sh"

T="$AEGIS_TEST_TMP/consumer-$$"
mkdir -p "$T"
BRIDGE=${AEGIS_BRIDGE_ASAN:-$AEGIS_TOP/bridge/aegis-bridge-asan}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=66
BG_PIDS=()

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill_pid "$p"; done
    kafka_stop_all
    pg_stop_all
}
trap cleanup EXIT

# ---- helpers ----

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# bridge_start NAME [ARGS...]: a bridge with Kafka on and no drain unless
# ARGS say otherwise; sets BR_PID
bridge_start() {
    local name=$1; shift
    KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
    DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
        "$BRIDGE" --listen "127.0.0.1:$(free_port)" "$@" 2>>"$T/$name.log" &
    BR_PID=$!
    BG_PIDS+=("$BR_PID")
}

# bridge_exit PID SECS: sets ST to the exit status of a bridge expected to
# stop by itself (124 if it is still running after SECS, then killed)
bridge_exit() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then kill -KILL "$pid"; wait "$pid" 2>/dev/null; ST=124; return; fi
    wait "$pid"; ST=$?
}

# bridge_term PID: SIGTERM, then ST as bridge_exit sets it (30 s)
bridge_term() {
    kill -TERM "$1" 2>/dev/null
    bridge_exit "$1" 30
}

alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
log_has() { grep -q -- "$2" "$T/$1.log" 2>/dev/null; }
rows() { q "SELECT count(*) FROM kg.entities WHERE topic = '$1'"; }
rows_are() { [ "$(rows "$1")" = "$2" ]; }
dead() { q "SELECT count(*) FROM aegis.dead_letters WHERE topic = '$1'"; }
batch_running() {
    [ "$(q "SELECT count(*) FROM pg_stat_activity
             WHERE state = 'active' AND pid <> pg_backend_pid()
               AND (query LIKE '%aegis.consume_batch%' OR query LIKE '%aegis.consumer_claim%')")" -gt 0 ]
}
no_batch_running() { ! batch_running; }

# produce TOPIC: key<TAB>value lines from stdin, idempotent, with a header
produce() {
    kcat -P -b "$KAFKA_TEST_BOOTSTRAP" -t "$1" -K $'\t' -H "source=suite55" \
        -X enable.idempotence=true 2>>"$T/kcat.log"
}

# json_lines FROM TO: "k<i>\t{"id": i, ...}" lines
json_lines() {
    awk -v a="$1" -v b="$2" 'BEGIN { for (i = a; i <= b; i++)
        printf "k%d\t{\"id\":%d,\"name\":\"entity %d\",\"kind\":\"person\"}\n", i, i, i }'
}

# end_offsets TOPIC N: "partition offset" lines of Kafka's end offsets
end_offsets() {
    local args=() p
    for ((p = 0; p < $2; p++)); do args+=(-t "$1:$p:-1"); done
    kcat -Q -b "$KAFKA_TEST_BOOTSTRAP" "${args[@]}" 2>/dev/null \
        | sed -n 's/.*\[\([0-9]*\)\] *offset \([0-9]*\).*/\1 \2/p' | sort -n
}
stored_offsets() {
    q "SELECT partition || ' ' || next_offset FROM aegis.consumer_offsets
        WHERE group_id = '$1' AND topic = '$2' ORDER BY partition"
}

# per partition: rows applied + dead letters = the stored next offset
offsets_match_effects() {
    [ "$(q "SELECT count(*) FROM aegis.consumer_offsets o
             WHERE o.group_id = '$1' AND o.topic = '$2'
               AND o.next_offset <> (SELECT count(*) FROM kg.entities e
                                      WHERE e.topic = o.topic AND e.part = o.partition)
                                  + (SELECT count(*) FROM aegis.dead_letters d
                                      WHERE d.group_id = o.group_id AND d.topic = o.topic
                                        AND d.partition = o.partition)")" = 0 ]
}

# a dead group member is noticed after 6 s instead of librdkafka's 45 s
DX=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)

# ---- set-up ----

if [ -z "${AEGIS_BRIDGE_ASAN:-}" ]; then   # (re)build: make skips it when up to date
    make -s -C "$AEGIS_TOP/bridge" asan >"$T/build.log" 2>&1 || { cat "$T/build.log"; exit 1; }
fi
pg_start consumer >/dev/null || exit 1
q "CREATE EXTENSION aegis_events" || exit 1
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' || exit 1
CREATE SCHEMA kg;
-- id and (topic, part, off) unique: applying a message twice fails
CREATE TABLE kg.entities (
    id    bigint PRIMARY KEY,
    body  jsonb  NOT NULL,
    topic text   NOT NULL,
    part  int    NOT NULL,
    off   bigint NOT NULL,
    meta  jsonb  NOT NULL,
    UNIQUE (topic, part, off)
);
CREATE FUNCTION kg.handle_entity(event jsonb, meta jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF event ? 'boom' THEN
        RAISE EXCEPTION 'boom: %', event->>'boom';
    END IF;
    INSERT INTO kg.entities
    VALUES ((event->>'id')::bigint, event, meta->>'topic', (meta->>'partition')::int,
            (meta->>'offset')::bigint, meta);
END;
$$;
-- the seed's envelope {"event_type", "data"} as aegis.publish_event builds it
CREATE FUNCTION kg.handle_envelope(event jsonb, meta jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO kg.entities
    VALUES ((event->'data'->>'id')::bigint, event, meta->>'topic', (meta->>'partition')::int,
            (meta->>'offset')::bigint, meta)
$$;
-- a slow handler, so that a SIGKILL lands in the middle of a batch
CREATE FUNCTION kg.handle_slowly(event jsonb, meta jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(0.0005);
    PERFORM kg.handle_entity(event, meta);
END;
$$;
CREATE FUNCTION kg.wrong_args(a text, b text) RETURNS void LANGUAGE sql AS 'SELECT';
SQL
kafka_start "$T/kafka" >/dev/null || exit 1
KDIR="$T/kafka"
diag "broker $KAFKA_TEST_BOOTSTRAP, PostgreSQL port $PGPORT, bridge $BRIDGE"

# ---- 1. refused at start ----

bridge_start refuse1 --no-drain --consumer "group=r1 topics=t handler=kg.nope"
bridge_exit "$BR_PID" 30; st=$ST
if [ "$st" != 0 ] && [ "$st" != 124 ] && log_has refuse1 "consumer handler 'kg.nope' does not exist" \
   && log_has refuse1 'handler=kg.nope'; then
    ok "a missing handler is refused at start, named in the log (exit $st)"
else
    not_ok "a missing handler is refused at start (exit $st): $(tail -3 "$T/refuse1.log")"
fi

bridge_start refuse2 --no-drain --consumer "group=r2 topics=t handler=kg.wrong_args"
bridge_exit "$BR_PID" 30; st=$ST
if [ "$st" != 0 ] && [ "$st" != 124 ] \
   && log_has refuse2 'consumer handler .kg.wrong_args. has the wrong signature: kg.wrong_args(text,text)'; then
    ok "a handler with the wrong signature is refused at start, naming both (exit $st)"
else
    not_ok "a handler with the wrong signature is refused (exit $st): $(tail -3 "$T/refuse2.log")"
fi

DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
    "$BRIDGE" --listen "127.0.0.1:$(free_port)" --consumer "group=r3 topics=t handler=kg.handle_entity" \
    2>"$T/refuse3.log" &
BR_PID=$!; BG_PIDS+=("$BR_PID")
bridge_exit "$BR_PID" 30; st=$ST
if [ "$st" != 0 ] && [ "$st" != 124 ] && log_has refuse3 'consumers need Kafka'; then
    ok "consumers without KAFKA_BOOTSTRAP_SERVERS are refused (exit $st)"
else
    not_ok "consumers without Kafka are refused (exit $st): $(tail -3 "$T/refuse3.log")"
fi

bridge_start refuse4 --no-drain --consumer "group=r4 topics=t handler=kg.handle_entity batch=0"
bridge_exit "$BR_PID" 30; st=$ST
if [ "$st" = 2 ] && log_has refuse4 'batch must be'; then
    ok "a bad consumer option (batch=0) is refused with exit 2, naming it"
else
    not_ok "a bad consumer option is refused (exit $st): $(tail -3 "$T/refuse4.log")"
fi

bridge_start refuse5 --no-drain -X no.such.property=1 \
    --consumer "group=r5 topics=t handler=kg.handle_entity"
bridge_exit "$BR_PID" 30; st=$ST
if [ "$st" != 0 ] && [ "$st" != 124 ] && log_has refuse5 'no.such.property'; then
    ok "an unknown -X property is refused, named in the log (exit $st)"
else
    not_ok "an unknown -X property is refused (exit $st): $(tail -3 "$T/refuse5.log")"
fi

KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
DATABASE_URL="host=127.0.0.1 port=$(free_port) user=postgres dbname=postgres connect_timeout=5" \
    "$BRIDGE" --listen "127.0.0.1:$(free_port)" --no-drain \
    --consumer "group=r6 topics=t handler=kg.handle_entity" 2>"$T/refuse6.log" &
BR_PID=$!; BG_PIDS+=("$BR_PID")
bridge_exit "$BR_PID" 30; st=$ST
if [ "$st" != 0 ] && [ "$st" != 124 ] && log_has refuse6 'cannot check consumer handlers: PostgreSQL unreachable'; then
    ok "consumers are refused when PostgreSQL cannot be reached to check the handlers (exit $st)"
else
    not_ok "consumers refused without PostgreSQL (exit $st): $(tail -2 "$T/refuse6.log")"
fi

# ---- 2. delivery: every message once, offsets, metadata ----

N=3000
kafka_create_topic "$KDIR" entities 3 >/dev/null
json_lines 1 $N | produce entities
bridge_start deliver --no-drain --consumer "group=kg topics=entities handler=kg.handle_entity"
DELIVER_PID=$BR_PID
if wait_for 90 rows_are entities $N; then
    ok "all $N messages from kcat reached the handler"
else
    not_ok "all $N messages reached the handler (got $(rows entities))"
fi
expect_eq "no message applied twice (unique keys held, no dead letters)" "$N 0" \
    "$(q "SELECT count(DISTINCT id) FROM kg.entities WHERE topic = 'entities'") $(dead entities)"
wait_for 10 no_batch_running
expect_eq "stored offsets equal Kafka's end offsets" "$(end_offsets entities 3)" \
    "$(stored_offsets kg entities)"
check "per partition, rows applied = stored next offset" offsets_match_effects kg entities
meta=$(q "SELECT meta->>'topic', meta->>'key', meta->'headers'->>'source',
                 (meta->>'timestamp')::bigint > 1600000000000, jsonb_typeof(meta->'offset')
            FROM kg.entities WHERE id = 42" | tr '\n' ' ')
expect_eq "meta carries topic, key, headers, timestamp and offset" \
    "entities|k42|suite55|t|number " "$meta"

# more messages while it runs: picked up live
json_lines $((N + 1)) $((N + 500)) | produce entities
if wait_for 60 rows_are entities $((N + 500)); then
    ok "messages produced while the bridge runs arrive too"
else
    not_ok "live messages arrive (got $(rows entities))"
fi
wait_for 10 no_batch_running
# the last statement of each of the bridge's connections (3 partitions, 3 connections)
expect_eq "batches without poison go the fast path (the prepared statement, not consume_batch)" \
    "3 0" "$(q "SELECT count(*) FILTER (WHERE query LIKE '%aegis.consumer_claim(\$1%'),
                       count(*) FILTER (WHERE query LIKE '%aegis.consume_batch(\$1%')
                  FROM pg_stat_activity WHERE pid <> pg_backend_pid()
                   AND backend_type = 'client backend'" | tr '|' ' ')"

# ---- 3. poison messages: dead letters in the same transaction, no loop ----

kafka_create_topic "$KDIR" poison 1 >/dev/null
{
    printf 'p1\t{"id":100001}\n'
    printf 'p2\tnot json at all\n'
    printf 'p3\t{"id":100002}\n'
    printf 'p4\t{"id":100003,"boom":"handler says no"}\n'
    printf 'p5\t\xff\xfe{"id":1}\n'
    printf 'p6\t{"id":100004,"s":"nul \\u0000 here"}\n'
    printf 'p7\t{"id":100005,"n":1e-100000}\n'
    printf 'p8\t{"id":100001}\n'
    printf 'p9\t{"id":100006}\n'
} | produce poison
printf 'p10\t\n' | kcat -P -b "$KAFKA_TEST_BOOTSTRAP" -t poison -K $'\t' -Z 2>>"$T/kcat.log"
printf 'p11\t{"id":100007}\n' | produce poison
bridge_start poison --no-drain --consumer "group=kg topics=poison handler=kg.handle_entity"
POISON_PID=$BR_PID
if wait_for 60 rows_are poison 4; then
    ok "good messages around poison ones are applied"
else
    not_ok "good messages around poison ones are applied (got $(rows poison))"
fi
wait_for 10 no_batch_running
expect_eq "each poison message is one dead letter, at its offset" "1 3 4 5 6 7 9" \
    "$(q "SELECT string_agg(\"offset\"::text, ' ' ORDER BY \"offset\") FROM aegis.dead_letters
           WHERE topic = 'poison'")"
expect_eq "dead letters keep the exact bytes and key" \
    "\\x6e6f74206a736f6e20617420616c6c|p2 \\xfffe7b226964223a317d|p5" \
    "$(q "SELECT value::text || '|' || convert_from(key, 'UTF8') FROM aegis.dead_letters
           WHERE topic = 'poison' AND \"offset\" IN (1, 4) ORDER BY \"offset\"" | tr '\n' ' ' | sed 's/ $//')"
errs=$(q "SELECT \"offset\" || ':' || error FROM aegis.dead_letters WHERE topic = 'poison'
           ORDER BY \"offset\"")
if grep -q '^1:value is not JSON' <<<"$errs" && grep -q '^3:handler kg.handle_entity failed: P0001 boom: handler says no' <<<"$errs" \
   && grep -q '^4:value is not JSON' <<<"$errs" && grep -q '^5:value is not JSON' <<<"$errs" \
   && grep -q '^6:handler kg.handle_entity failed: 22003' <<<"$errs" \
   && grep -q '^7:handler kg.handle_entity failed: 23505' <<<"$errs" \
   && grep -q '^9:message has no value' <<<"$errs"; then
    ok "dead letters say why: not JSON, handler error, not jsonb, duplicate key, null value"
else
    not_ok "dead letter errors: $errs"
fi
expect_eq "offsets move past poison messages (no loop)" "0 11" "$(stored_offsets kg poison)"
expect_eq "poison headers are kept in the dead letter" "suite55" \
    "$(q "SELECT headers->>'source' FROM aegis.dead_letters WHERE topic = 'poison' AND \"offset\" = 3")"

# text that is not JSON for PostgreSQL reaches it on the fast path (the bridge
# checks only UTF-8 there): the statement fails, consume_batch takes the batch
kafka_create_topic "$KDIR" fastpoison 1 >/dev/null
{
    printf 'f1\t{"id":100101}\n'
    printf 'f2\tnot json, but text\n'
    printf 'f3\t{"id":100102,"s":"nul \\u0000 here"}\n'
    printf 'f4\t{"id":100103}\n'
} | produce fastpoison
bridge_start fastpoison --no-drain --log-level debug \
    --consumer "group=kgfast topics=fastpoison handler=kg.handle_entity"
if wait_for 60 rows_are fastpoison 2 && wait_for 10 no_batch_running \
   && [ "$(q "SELECT string_agg(\"offset\" || ':' || left(error, 17), ' ' ORDER BY \"offset\")
              FROM aegis.dead_letters WHERE topic = 'fastpoison'")" = "1:value is not JSON 2:value is not JSON" ] \
   && [ "$(stored_offsets kgfast fastpoison)" = "0 4" ] \
   && log_has fastpoison 'fast path failed, batch goes to aegis.consume_batch.*sqlstate=22'; then
    ok "a value PostgreSQL refuses on the fast path: the batch goes to consume_batch, dead letters with jansson's reason"
else
    not_ok "fast path poison: $(rows fastpoison) rows, $(q "SELECT string_agg(\"offset\" || ':' || error, ' | ') FROM aegis.dead_letters WHERE topic = 'fastpoison'"), offsets $(stored_offsets kgfast fastpoison)"
fi
kill_pid "$BR_PID"

# ---- 4. SIGKILL mid-batch, then restart: no loss, no repeat ----

M=20000
kafka_create_topic "$KDIR" crash 3 >/dev/null
json_lines 200001 $((200000 + M)) | produce crash
crash_ok=1
for round in 1 2; do
    bridge_start "crash$round" --no-drain "${DX[@]}" \
        --consumer "group=kg topics=crash handler=kg.handle_slowly batch=200"
    cpid=$BR_PID
    target=$((round * M / 3))
    wait_for 120 bash -c "[ \$(psql -X -qAt -c \"SELECT count(*) FROM kg.entities WHERE topic = 'crash'\") -ge $target ]"
    wait_for 20 batch_running
    if batch_running; then
        kill -KILL "$cpid"
        diag "round $round: SIGKILL with a batch in flight, $(rows crash) rows"
    else
        crash_ok=0
        kill -KILL "$cpid"
    fi
    { wait "$cpid"; } 2>/dev/null
    wait_for 30 no_batch_running
    offsets_match_effects kg crash || crash_ok=0
done
if [ "$crash_ok" = 1 ]; then
    ok "after SIGKILL mid-batch, stored offsets match the applied rows exactly"
else
    not_ok "after SIGKILL mid-batch, stored offsets match the applied rows"
fi
bridge_start crash3 --no-drain "${DX[@]}" --consumer "group=kg topics=crash handler=kg.handle_slowly batch=200"
CRASH_PID=$BR_PID
if wait_for 180 rows_are crash $M; then
    ok "after two SIGKILLs and a restart all $M messages are applied"
else
    not_ok "after SIGKILLs and restart all messages are applied (got $(rows crash))"
fi
wait_for 10 no_batch_running
expect_eq "none applied twice after SIGKILL (no dead letters, distinct ids)" "$M 0" \
    "$(q "SELECT count(DISTINCT id) FROM kg.entities WHERE topic = 'crash'") $(dead crash)"
expect_eq "stored offsets equal Kafka's end offsets after the crashes" \
    "$(end_offsets crash 3)" "$(stored_offsets kg crash)"
if grep -q "msg=assigned group=kg topic=crash partition=[0-9] offset=[1-9]" "$T/crash3.log"; then
    ok "the restarted bridge seeks to the offsets stored in PostgreSQL"
else
    not_ok "the restarted bridge seeks to stored offsets: $(grep assigned "$T/crash3.log")"
fi

# ---- 4b. PostgreSQL restarts under the consumer ----

kafka_create_topic "$KDIR" pgrestart 3 >/dev/null
json_lines 500001 506000 | produce pgrestart
bridge_start pgrestart --no-drain --consumer "group=kg topics=pgrestart handler=kg.handle_slowly batch=100"
PGR_PID=$BR_PID
wait_for 60 bash -c "[ \$(psql -X -qAt -c \"SELECT count(*) FROM kg.entities WHERE topic = 'pgrestart'\") -ge 1000 ]"
pg_restart_dir "$PGDATA_consumer" || diag "restart failed"
diag "PostgreSQL restarted with $(rows pgrestart) rows applied"
if wait_for 120 rows_are pgrestart 6000; then
    ok "after a PostgreSQL restart the consumer reconnects and applies everything"
else
    not_ok "after a PostgreSQL restart everything is applied (got $(rows pgrestart))"
fi
wait_for 10 no_batch_running
expect_eq "none lost or repeated across the PostgreSQL restart" "6000 0" \
    "$(q "SELECT count(DISTINCT id) FROM kg.entities WHERE topic = 'pgrestart'") $(dead pgrestart)"
if log_has pgrestart "PostgreSQL connection lost" || log_has pgrestart "batch failed, will retry it"; then
    ok "the lost connection is logged and the batch retried"
else
    not_ok "the lost connection is logged: $(grep -c . "$T/pgrestart.log") lines"
fi

# ---- 4b'. the broker restarts under the consumer ----

kafka_create_topic "$KDIR" brk 3 >/dev/null
json_lines 700001 703000 | produce brk
bridge_start brk --no-drain "${DX[@]}" --consumer "group=kg topics=brk handler=kg.handle_slowly batch=100"
BRK_PID=$BR_PID
wait_for 60 bash -c "[ \$(psql -X -qAt -c \"SELECT count(*) FROM kg.entities WHERE topic = 'brk'\") -ge 500 ]"
kafka_restart "$KDIR" >/dev/null || diag "broker restart failed"
diag "broker restarted with $(rows brk) rows applied"
json_lines 703001 704000 | produce brk
if wait_for 120 rows_are brk 4000; then
    ok "after a broker restart the consumer goes on and applies everything"
else
    not_ok "after a broker restart everything is applied (got $(rows brk))"
fi
wait_for 10 no_batch_running
expect_eq "none lost or repeated across the broker restart" "4000 0" \
    "$(q "SELECT count(DISTINCT id) FROM kg.entities WHERE topic = 'brk'") $(dead brk)"

# ---- 4c. the SQL entry points reject bad arguments clearly ----

err=$(psql -X -qAt -c "SELECT aegis.consume_batch('g', 'kg.handle_entity(jsonb,jsonb)', '{}', '[]')" 2>&1)
if grep -q "positions, messages and dead must be JSON arrays" <<<"$err"; then
    ok "consume_batch rejects arguments that are not arrays, saying which"
else
    not_ok "consume_batch rejects non-arrays: $err"
fi
err=$(psql -X -qAt -c "SELECT aegis.consume_batch('g', 'kg.wrong_args(text,text)', '[]', '[]')" 2>&1)
if grep -q "is not a function (event jsonb, meta jsonb)" <<<"$err"; then
    ok "consume_batch rejects a handler with the wrong signature"
else
    not_ok "consume_batch rejects a wrong handler: $err"
fi
expect_eq "an empty batch changes nothing" '{"dead": 0, "handled": 0, "skipped": 0}' \
    "$(q "SELECT aegis.consume_batch('g', 'kg.handle_entity(jsonb,jsonb)', '[]', '[]')")"

# fencing: a batch applied twice (a retry after a lost reply, a zombie) is skipped
FB='[{"m":{"topic":"fence","partition":0,"offset":0,"key":"f0","headers":null,"timestamp":null},"v":{"id":600001}},
     {"m":{"topic":"fence","partition":0,"offset":1,"key":"f1","headers":null,"timestamp":null},"v":{"id":600002}}]'
FP='[{"topic":"fence","partition":0,"first":0,"last":1}]'
r1=$(q "SELECT aegis.consume_batch('fence', 'kg.handle_entity(jsonb,jsonb)', '$FP', '$FB')")
r2=$(q "SELECT aegis.consume_batch('fence', 'kg.handle_entity(jsonb,jsonb)', '$FP', '$FB')")
expect_eq "the same batch twice: applied once, then skipped" \
    '{"dead": 0, "handled": 2, "skipped": 0} {"dead": 0, "handled": 0, "skipped": 2} 2 2' \
    "$r1 $r2 $(rows fence) $(q "SELECT next_offset FROM aegis.consumer_offsets WHERE group_id = 'fence'")"

# the fast path's fence: aegis.consumer_claim moves the offsets past a batch
# and refuses one of which anything was applied (the bridge then sends it to
# consume_batch); the bridge's statement rolls back whole when a handler fails
c1=$(q "SELECT aegis.consumer_claim('claim', '[{\"topic\":\"fence\",\"partition\":0,\"first\":0,\"last\":4}]')")
c2=$(psql -X -qAt -c "SELECT aegis.consumer_claim('claim', '[{\"topic\":\"fence\",\"partition\":0,\"first\":4,\"last\":6}]')" 2>&1)
c3=$(q "SELECT aegis.consumer_claim('claim', '[{\"topic\":\"fence\",\"partition\":0,\"first\":5,\"last\":5}]')")
if [ "$c1 $c3" = "t t" ] && grep -q 'part of the batch was applied already' <<<"$c2" \
   && [ "$(q "SELECT next_offset FROM aegis.consumer_offsets WHERE group_id = 'claim'")" = 6 ]; then
    ok "consumer_claim moves next_offset past a batch and refuses a batch partly applied"
else
    not_ok "consumer_claim: '$c1' '$c2' '$c3'"
fi
err=$(psql -X -qAt -c "SELECT count(h) FROM (SELECT kg.handle_entity(x.v, x.m)
        FROM unnest(ARRAY['{\"id\":600101}', '{\"id\":600102,\"boom\":\"no\"}']::jsonb[],
                    ARRAY['{\"topic\":\"claim2\",\"partition\":0,\"offset\":0}',
                          '{\"topic\":\"claim2\",\"partition\":0,\"offset\":1}']::jsonb[]) AS x(v, m)
       WHERE (SELECT aegis.consumer_claim('claim2', '[{\"topic\":\"claim2\",\"partition\":0,\"first\":0,\"last\":1}]'))) h" 2>&1)
if grep -q 'boom' <<<"$err" \
   && [ "$(q "SELECT count(*) FROM kg.entities WHERE id = 600101") $(q "SELECT count(*) FROM aegis.consumer_offsets WHERE group_id = 'claim2'")" = "0 0" ]; then
    ok "the fast statement with a failing handler leaves neither effects nor offsets"
else
    not_ok "fast statement rollback: $err"
fi

# a role without EXECUTE on aegis.consumer_claim: every fast statement fails,
# consume_batch applies each batch; after 10 failures in a row the connection
# stops trying
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' || not_ok "creating the role slowpath"
CREATE ROLE slowpath LOGIN;
GRANT USAGE ON SCHEMA aegis, kg TO slowpath;
GRANT EXECUTE ON FUNCTION aegis.consumer_check_handler(text),
    aegis.consumer_handler_name(regprocedure), aegis.consumer_bytes(jsonb),
    aegis.consume_batch(text, regprocedure, jsonb, jsonb, jsonb),
    aegis.consumer_positions(text, jsonb) TO slowpath;
GRANT SELECT, INSERT, UPDATE ON aegis.consumer_offsets TO slowpath;
GRANT INSERT ON aegis.dead_letters TO slowpath;
GRANT SELECT, INSERT ON kg.entities TO slowpath;
SQL
kafka_create_topic "$KDIR" slowpath 1 >/dev/null
json_lines 800001 800400 | produce slowpath
KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
DATABASE_URL="host=127.0.0.1 port=$PGPORT user=slowpath dbname=postgres" \
    "$BRIDGE" --listen "127.0.0.1:$(free_port)" --no-drain --log-level debug \
    --consumer "group=slow topics=slowpath handler=kg.handle_entity batch=10" 2>"$T/slowpath.log" &
BR_PID=$!; BG_PIDS+=("$BR_PID")
if wait_for 60 rows_are slowpath 400 && wait_for 10 no_batch_running \
   && [ "$(dead slowpath) $(stored_offsets slow slowpath)" = "0 0 400" ] \
   && log_has slowpath 'fast path failed, batch goes to aegis.consume_batch.*sqlstate=42501' \
   && log_has slowpath 'fast path failed 10 times in a row' \
   && [ "$(grep -c 'path=fast' "$T/slowpath.log")" = 0 ] \
   && [ "$(grep -c 'path=consume_batch' "$T/slowpath.log")" -ge 10 ]; then
    ok "without EXECUTE on consumer_claim every batch falls back to consume_batch, once each, all applied"
else
    not_ok "fast path refused: $(rows slowpath) rows, $(dead slowpath) dead, offsets $(stored_offsets slow slowpath), $(grep -c 'path=consume_batch' "$T/slowpath.log") consume_batch batches"
fi
kill_pid "$BR_PID"

# ---- 5. two bridges in one group; one dies, the other takes over ----

kafka_create_topic "$KDIR" duo 3 >/dev/null
DUO="group=duo topics=duo handler=kg.handle_entity batch=50"
bridge_start duoA --no-drain "${DX[@]}" --consumer "$DUO"; A=$BR_PID
wait_for 60 log_has duoA "msg=assigned group=duo topic=duo partition=2"
bridge_start duoB --no-drain "${DX[@]}" --consumer "$DUO"; B=$BR_PID
wait_for 60 log_has duoB "msg=assigned group=duo"
json_lines 300001 301500 | produce duo
wait_for 60 rows_are duo 1500
a_parts=$(grep -c "msg=assigned group=duo" "$T/duoA.log")
b_parts=$(grep -c "msg=assigned group=duo" "$T/duoB.log")
if [ "$b_parts" -ge 1 ] && [ "$b_parts" -le 2 ] && log_has duoA "partitions revoked"; then
    ok "two bridges in one group split the partitions (A revoked, B took $b_parts)"
else
    not_ok "two bridges split the partitions (A $a_parts assignments, B $b_parts)"
fi
kill -KILL "$A"; { wait "$A"; } 2>/dev/null
diag "bridge A killed; producing more"
json_lines 301501 303000 | produce duo
if wait_for 90 rows_are duo 3000; then
    ok "after one bridge is killed the other takes all partitions over"
else
    not_ok "the surviving bridge takes over (got $(rows duo) of 3000)"
fi
if [ "$(grep "msg=assigned group=duo" "$T/duoB.log" | tail -3 | grep -c "offset=[1-9]")" = 3 ]; then
    ok "the survivor resumed every partition from the offsets stored in PostgreSQL"
else
    not_ok "the survivor resumed from stored offsets: $(grep "assigned group=duo" "$T/duoB.log" | tail -3)"
fi
wait_for 10 no_batch_running
expect_eq "nothing lost or repeated across the rebalance" "3000 0" \
    "$(q "SELECT count(DISTINCT id) FROM kg.entities WHERE topic = 'duo'") $(dead duo)"
bridge_term "$B"; st=$ST
expect_eq "the surviving bridge exits 0 on SIGTERM" 0 "$st"

# ---- 6. round trip: aegis.publish_event -> drain -> Kafka -> handler ----

bridge_start trip --consumer "group=kg-trip topics=entity-extraction-worker handler=kg.handle_envelope"
TRIP_PID=$BR_PID
ids=$(q "SELECT string_agg(aegis.publish_event('entity-extraction-worker', 'entity_extracted',
                jsonb_build_object('id', 400000 + g, 'name', 'person ' || g), 'k' || g)::text, ',')
           FROM generate_series(1, 20) g")
if wait_for 90 rows_are entity-extraction-worker 20; then
    ok "events published with aegis.publish_event reach the handler through Kafka"
else
    not_ok "published events reach the handler (got $(rows entity-extraction-worker))"
fi
expect_eq "the handler sees the seed's envelope and the event id header" "20 20" \
    "$(q "SELECT count(*) FILTER (WHERE body->>'event_type' = 'entity_extracted'),
                 count(*) FILTER (WHERE meta->'headers'->>'aegis-event-id' = ANY (string_to_array('$ids', ',')))
            FROM kg.entities WHERE topic = 'entity-extraction-worker'" | tr '|' ' ')"

# ---- 6b. valgrind: the release build through poison and good messages ----

make -s -C "$AEGIS_TOP/bridge" all >>"$T/build.log" 2>&1 || diag "release build failed"
KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
    valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    "$AEGIS_TOP/bridge/aegis-bridge" --listen "127.0.0.1:$(free_port)" --no-drain \
    --consumer "group=kg-valgrind topics=poison handler=kg.handle_entity" 2>"$T/valgrind.out" &
VG_PID=$!; BG_PIDS+=("$VG_PID")
vg_done() { [ "$(q "SELECT next_offset FROM aegis.consumer_offsets
                     WHERE group_id = 'kg-valgrind' AND topic = 'poison'")" = 11 ]; }
wait_for 120 vg_done || diag "valgrind run: offsets did not reach 11"
kill -TERM "$VG_PID"; bridge_exit "$VG_PID" 60
if vg_done && [ "$ST" = 0 ] && grep -q "ERROR SUMMARY: 0 errors" "$T/valgrind.out"; then
    ok "valgrind: no memory error and no definite leak (poison batch, text mode, shutdown)"
else
    not_ok "valgrind (exit $ST): $(grep -E "ERROR SUMMARY|definitely" "$T/valgrind.out" | tr '\n' ' ')"
fi

# ---- 7. SIGTERM, sanitizers ----

statuses=""
for p in "$DELIVER_PID" "$POISON_PID" "$CRASH_PID" "$PGR_PID" "$BRK_PID" "$TRIP_PID"; do
    bridge_term "$p"; statuses="$statuses $ST"
done
if [ "$statuses" = " 0 0 0 0 0 0" ] && log_has deliver "msg=stopped group=kg" \
   && log_has trip "msg=stopped group=kg-trip"; then
    ok "bridges leave their groups and exit 0 on SIGTERM"
else
    not_ok "bridges leave their groups and exit 0 on SIGTERM (statuses$statuses)"
fi
if grep -l "AddressSanitizer\|LeakSanitizer\|runtime error" "$T"/*.log >/dev/null 2>&1; then
    not_ok "sanitizers: reports in $(grep -l "AddressSanitizer\|LeakSanitizer\|runtime error" "$T"/*.log | tr '\n' ' ')"
else
    ok "sanitizers: no ASan/UBSan/leak report from any bridge"
fi

finish
