#!/bin/bash
# bench/consume/run.sh: messages/s from Kafka into a SQL handler that inserts
# one row (aegis-bridge's consumer: exactly-once, offsets in the same
# transaction), against a baseline in the same run: kcat -C | psql COPY of the
# same messages into the same kind of table (no exactly-once, no offsets).
# Real Kafka 3.6.2 broker (test/kafka), throwaway PostgreSQL 15 (test/lib.sh).
# Prints a table; the target is consumer/baseline >= 0.5.
#   BENCH_N      messages (default 200000)
#   BENCH_ROUNDS rounds per case, the median is reported (default 3)
#   BENCH_BATCHES consumer batch sizes to measure (default "100 1000")
#   BENCH_LOG_LEVEL the bridge's --log-level (default warn; debug logs every batch)
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../../test/lib.sh"
source "$AEGIS_TOP/test/kafka/lib.sh"

N=${BENCH_N:-200000}
ROUNDS=${BENCH_ROUNDS:-3}
BATCHES=${BENCH_BATCHES:-100 1000}
T="$AEGIS_TEST_TMP/bench-consume-$$"
BRIDGE=${AEGIS_BRIDGE:-$AEGIS_TOP/bridge/aegis-bridge}
mkdir -p "$T"
BR_PID=

cleanup() {
    kill_pid "$BR_PID"
    kafka_stop_all
    pg_stop_all
}
trap cleanup EXIT

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
rows_are() { [ "$(q "SELECT count(*) FROM bench.$1")" = "$2" ]; }

make -s -C "$AEGIS_TOP" bridge >"$T/build.log" 2>&1 || { cat "$T/build.log"; exit 1; }
pg_start bench >/dev/null || exit 1
q "CREATE EXTENSION aegis_events" || exit 1
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' || exit 1
CREATE SCHEMA bench;
CREATE TABLE bench.handled (k text PRIMARY KEY, v jsonb NOT NULL);
CREATE FUNCTION bench.insert_row(event jsonb, meta jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO bench.handled (k, v) VALUES (meta->>'key', event) $$;
SQL
kafka_start "$T/kafka" >/dev/null || exit 1
kafka_create_topic "$T/kafka" bench 3 >/dev/null || exit 1

# N messages of ~200 bytes, keyed, 3 partitions, from an independent producer
awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++)
    printf "k%d\t{\"id\":%d,\"name\":\"entity %d\",\"kind\":\"person\",\"score\":%d.5,\"tags\":[\"a\",\"b\"],\"pad\":\"%s\"}\n",
        i, i, i, i % 100, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }' \
    | kcat -P -b "$KAFKA_TEST_BOOTSTRAP" -t bench -K $'\t' -X enable.idempotence=true -X linger.ms=50 \
    || { echo "produce failed"; exit 1; }
# warm-up: the broker's first full read is slow (JIT)
kcat -C -b "$KAFKA_TEST_BOOTSTRAP" -t bench -o beginning -e -q >/dev/null 2>&1

fresh_table() {
    q "DROP TABLE IF EXISTS bench.$1;
       CREATE TABLE bench.$1 (k text PRIMARY KEY, v jsonb NOT NULL,
                              at timestamptz NOT NULL DEFAULT clock_timestamp())"
}
# rate TABLE: messages per second between the first and the last row written
rate() {
    q "SELECT round(count(*) / extract(epoch FROM max(at) - min(at)))::bigint FROM bench.$1"
}

baseline_round() {
    local t0 t1
    fresh_table copied
    t0=$(now)
    kcat -C -b "$KAFKA_TEST_BOOTSTRAP" -t bench -o beginning -e -q -f '%k\t%s\n' \
        | psql -X -q -v ON_ERROR_STOP=1 -c "COPY bench.copied (k, v) FROM STDIN" || return 1
    t1=$(now)
    rows_are copied "$N" || { echo "baseline: wrong row count" >&2; return 1; }
    echo "$(rate copied) $(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", n / (b - a) }')"
}

consumer_round() {
    local batch=$1 round=$2 t0 t1 group
    group="bench-$batch-$round-$$"
    fresh_table handled
    t0=$(now)
    KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
    DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
        "$BRIDGE" --listen "127.0.0.1:$(free_port)" --no-drain --log-level "${BENCH_LOG_LEVEL:-warn}" \
        --consumer "group=$group topics=bench handler=bench.insert_row batch=$batch" \
        2>>"$T/bridge.log" &
    BR_PID=$!
    wait_for 600 rows_are handled "$N" || { echo "consumer: timed out" >&2; return 1; }
    t1=$(now)
    # CPU spent: the bridge process (librdkafka threads included) and its backends
    cpu_bridge=$(awk '{print $14 + $15}' "/proc/$BR_PID/stat")
    cpu_pg=0
    for p in $(q "SELECT pid FROM pg_stat_activity WHERE (query LIKE '%aegis.consume_batch%' OR query LIKE '%aegis.consumer_claim%')
                   AND pid <> pg_backend_pid()"); do
        cpu_pg=$((cpu_pg + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    kill_pid "$BR_PID"; wait "$BR_PID" 2>/dev/null; BR_PID=
    [ "$(q "SELECT count(*) FROM aegis.dead_letters")" = 0 ] || { echo "dead letters!" >&2; return 1; }
    [ "$(q "SELECT sum(next_offset) FROM aegis.consumer_offsets WHERE group_id = '$group'")" = "$N" ] \
        || { echo "offsets do not cover the messages" >&2; return 1; }
    echo "$(rate handled) $(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", n / (b - a) }') $(awk -v n="$N" -v c="$cpu_bridge" -v h="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", c / h * 1e6 / n }') $(awk -v n="$N" -v c="$cpu_pg" -v h="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", c / h * 1e6 / n }')"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A RATE WALL CPUB CPUP
for ((r = 1; r <= ROUNDS; r++)); do
    read -r a w < <(baseline_round) || exit 1
    RATE[base]+="$a "; WALL[base]+="$w "
    for b in $BATCHES; do
        read -r a w cb cp < <(consumer_round "$b" "$r") || exit 1
        RATE[$b]+="$a "; WALL[$b]+="$w "; CPUB[$b]+="$cb "; CPUP[$b]+="$cp "
    done
done

base=$(tr ' ' '\n' <<<"${RATE[base]}" | grep . | median)
printf '\n%s messages of ~200 bytes, 3 partitions, median of %s rounds (rate = rows / (last - first row time))\n\n' "$N" "$ROUNDS"
printf '| %-44s | %12s | %18s | %16s |\n' "case" "msgs/s" "wall msgs/s (all)" "ratio to baseline"
printf '|%s|%s|%s|%s|\n' "----------------------------------------------" "--------------" "--------------------" "------------------"
printf '| %-44s | %12s | %18s | %16s |\n' "baseline: kcat -C | psql COPY (no offsets)" "$base" "${WALL[base]% }" "1.00"
for b in $BATCHES; do
    m=$(tr ' ' '\n' <<<"${RATE[$b]}" | grep . | median)
    printf '| %-44s | %12s | %18s | %16s |\n' "aegis-bridge consumer, batch=$b, exactly-once" "$m" "${WALL[$b]% }" \
        "$(awk -v m="$m" -v b="$base" 'BEGIN { printf "%.2f", m / b }')"
done
echo
echo "(wall msgs/s of the consumer include its start-up and group join)"
echo
printf '| %-44s | %26s | %26s |\n' "CPU per message (each round)" "aegis-bridge process, us" "PostgreSQL backends, us"
printf '|%s|%s|%s|\n' "----------------------------------------------" "----------------------------" "----------------------------"
for b in $BATCHES; do
    printf '| %-44s | %26s | %26s |\n' "batch=$b" "${CPUB[$b]% }" "${CPUP[$b]% }"
done
echo
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
