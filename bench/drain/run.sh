#!/bin/bash
# bench/drain/run.sh (`make bench-drain`): throughput of aegis-bridge's
# PostgreSQL -> Kafka drain against a baseline in the same run, and its
# wake-up latency.  Starts a throwaway PostgreSQL and a real Kafka 3.6.2
# broker (test/kafka), both on 127.0.0.1, stops them by pid at the end.
#
# Throughput, for each size (default 100000 and 1000000 events of ~300 bytes):
#   bridge:   N events wait in the store; start the bridge; time until its
#             durable cursor reaches the last event (everything acknowledged
#             by Kafka, acks=all, idempotent, and the cursor stored)
#   baseline: psql COPY (key, payload of the same rows) TO STDOUT | kcat -P
#             (idempotent) into another topic of the same broker; no cursor,
#             no delivery tracking beyond kcat's own
# The store is ANALYZEd after each bulk publish (as autovacuum would be a
# little later): without statistics PostgreSQL plans the reader's first
# queries with a sort of every remaining row.
# Latency: pgbench publishes single-event transactions at 1000/s for
# LAT_SECONDS; latency = Kafka's LogAppendTime of the message minus the
# event's created_at (taken inside the publishing transaction).
#
# Environment: BENCH_SIZES ("100000 1000000"), BENCH_BATCH (drain batch, 5000: the default),
# BENCH_REPEAT (rounds per size, 1; one table row each), BENCH_BRIDGE_ARGS,
# BENCH_ALT_ARGS (A/B: even rounds run the bridge with these flags instead of
# BENCH_BRIDGE_ARGS; their rows say "alt"), BENCH_LOG (a file that keeps the bridge's log), LAT_RATE (1000),
# BENCH_ALT_BRIDGE (A/B of two builds: even rounds run this binary, with
# BENCH_ALT_ARGS if set), BENCH_COLD (1: the bridge's topics are not created beforehand, so the
# bridge's CreateTopics and the new topic's first metadata are on the clock; the
# baseline's topic is made beforehand, as kcat cannot create one),
# LAT_SECONDS (20; 0 skips the latency run), LAT_REPEAT (latency rounds, 1; with
# BENCH_ALT_ARGS even rounds use the alt flags), LAT_RATES (a list of rates:
# LAT_REPEAT latency rounds at each; with more than one rate the summary has a
# row per rate and the chart of latency percentiles vs rate is drawn into
# LAT_PLOT, default bench/drain/out/latency-vs-rate.png, with Debian's
# python3-matplotlib).
set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$TOP/test/lib.sh"
source "$TOP/test/kafka/lib.sh"

SIZES=${BENCH_SIZES:-100000 1000000}
REPEAT=${BENCH_REPEAT:-1}
BATCH=${BENCH_BATCH:-5000}
LAT_RATE=${LAT_RATE:-1000}
LAT_SECONDS=${LAT_SECONDS:-20}
LAT_REPEAT=${LAT_REPEAT:-1}
LAT_RATES=${LAT_RATES:-$LAT_RATE}
LAT_PLOT=${LAT_PLOT:-$TOP/bench/drain/out/latency-vs-rate.png}
for lr in $LAT_RATES; do
    [[ "$lr" =~ ^[1-9][0-9]{0,5}$ ]] || { echo "bench-drain: LAT_RATES must be rates 1-999999, got '$lr'" >&2; exit 2; }
done
B="$AEGIS_TEST_TMP/bench-drain-$$"
mkdir -p "$B"
BRIDGE=${AEGIS_BRIDGE:-$TOP/bridge/aegis-bridge}
BR_PID=

cleanup() {
    kill_pid "$BR_PID"; kafka_stop_all; pg_stop_all
    [ -n "${BENCH_LOG:-}" ] && cp "$B/bridge.log" "$BENCH_LOG"
    rm -rf "$B" "$AEGIS_TEST_TMP/pg-bench-$$"   # ~2 GB after 1M events
}
trap cleanup EXIT

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
now_ns() { date +%s%N; }
secs() { python3 -c "print(f'{($2 - $1) / 1e9:.3f}')"; }
rate() { python3 -c "print(f'{$1 / ($3 - $2) * 1e9:.0f}')"; }

# bridge_start [PORT]: the port is taken before the clock starts (free_port runs python)
bridge_start() {
    local port=${1:-$(free_port)} args=${2:-${BENCH_BRIDGE_ARGS:-}}
    DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
    KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
        "${BRIDGE_BIN:-$BRIDGE}" --listen "127.0.0.1:$port" --drain-batch "$BATCH" $args \
        2>>"$B/bridge.log" &
    BR_PID=$!
}
bridge_stop() { kill_pid "$BR_PID"; wait "$BR_PID" 2>/dev/null; BR_PID=; }

# publish TOPIC N: N events of ~300 bytes (payload 280 x's + fields), 10 keys
publish() {
    q "SELECT count(aegis.publish('$1', jsonb_build_object('n', g, 'pad', repeat('x', 270)),
                                  'k' || (g % 10)))
       FROM generate_series(1, $2) g" >/dev/null
}

# wait until the drain's cursor reaches $1 (bounded: 10 min).  One session
# polls every 5 ms inside the server: a psql started per check would take
# CPU from the bridge, PostgreSQL and the broker while they are being timed
# (a plpgsql statement sees each commit, READ COMMITTED takes a new snapshot).
wait_cursor() {
    q "DO \$\$ BEGIN
         FOR i IN 1..120000 LOOP
           IF aegis.cursor_position('kafka-drain') >= $1 THEN RETURN; END IF;
           PERFORM pg_sleep(0.005);
         END LOOP;
         RAISE EXCEPTION 'cursor did not reach $1';
       END \$\$" 2>/dev/null
}

baseline() {   # SRC_TOPIC DST_TOPIC
    q "COPY (SELECT key, payload::text FROM aegis.events WHERE topic = '$1' ORDER BY id) TO STDOUT" |
        kcat -P -b "$KAFKA_TEST_BOOTSTRAP" -t "$2" -K '\t' -X enable.idempotence=true -X linger.ms=5
}

# ---- set-up ----
make -s -C "$TOP" bridge >"$B/build.log" 2>&1 || { cat "$B/build.log"; exit 1; }
pg_start bench >/dev/null || exit 1
q "CREATE EXTENSION aegis_events"
kafka_start "$B/kafka" >/dev/null || exit 1
echo "# PostgreSQL 15 (fsync off), Kafka 3.6.2 (1 broker, KRaft), $(nproc) cores, drain batch $BATCH"

# warm-up (a fresh broker's JIT): one baseline and one bridge round of 50k
kafka_create_topic "$B/kafka" warm 3
kafka_create_topic "$B/kafka" warm-base 3
publish warm 50000
baseline warm warm-base
bridge_start
wait_cursor "$(q "SELECT max(id) FROM aegis.events")" || { echo "warm-up drain stuck"; exit 1; }
bridge_stop

RESULTS="$B/results"
: >"$RESULTS"
for n in $SIZES; do
  for ((r = 1; r <= REPEAT; r++)); do
    [ "${BENCH_COLD:-0}" = 1 ] || kafka_create_topic "$B/kafka" "bridge-$n-$r" 3
    kafka_create_topic "$B/kafka" "base-$n-$r" 3
    publish "bridge-$n-$r" "$n"
    q "ANALYZE aegis.events"   # as autovacuum would soon: the readers' plans need statistics
    last=$(q "SELECT max(id) FROM aegis.events")
    t0=$(now_ns); baseline "bridge-$n-$r" "base-$n-$r"; t1=$(now_ns)
    base_rate=$(rate "$n" "$t0" "$t1"); base_s=$(secs "$t0" "$t1")
    echo "# round $r of $n: bridge start $(date -u +%H:%M:%S.%N)" >>"$B/bridge.log"
    port=$(free_port) args=${BENCH_BRIDGE_ARGS:-} tag=
    BRIDGE_BIN=$BRIDGE
    if [ -n "${BENCH_ALT_ARGS:-}${BENCH_ALT_BRIDGE:-}" ] && ((r % 2 == 0)); then
        args=${BENCH_ALT_ARGS:-$args} BRIDGE_BIN=${BENCH_ALT_BRIDGE:-$BRIDGE} tag=alt
    fi
    t0=$(now_ns); bridge_start "$port" "$args"
    wait_cursor "$last" || { echo "drain of $n events stuck"; exit 1; }
    t1=$(now_ns); bridge_stop
    br_rate=$(rate "$n" "$t0" "$t1"); br_s=$(secs "$t0" "$t1")
    echo "$n $br_s $br_rate $base_s $base_rate $tag" >>"$RESULTS"
  done
done

# ---- latency at LAT_RATE events/s ----
# LAT_REPEAT rounds; with BENCH_ALT_ARGS even rounds use those flags (rows "alt").
# Each round: its own LogAppendTime topic, a fresh bridge, pgbench for LAT_SECONDS.
LATRES="$B/lat.results"
: >"$LATRES"
if [ "$LAT_SECONDS" -gt 0 ]; then
 for LAT_RATE in $LAT_RATES; do
  for ((r = 1; r <= LAT_REPEAT; r++)); do
    args=${BENCH_BRIDGE_ARGS:-} tag=-
    BRIDGE_BIN=$BRIDGE
    if [ -n "${BENCH_ALT_ARGS:-}${BENCH_ALT_BRIDGE:-}" ] && ((r % 2 == 0)); then
        args=${BENCH_ALT_ARGS:-$args} BRIDGE_BIN=${BENCH_ALT_BRIDGE:-$BRIDGE} tag=alt
    fi
    kafka_create_topic "$B/kafka" "lat-$LAT_RATE-$r" 3
    kafka_topic_config "$B/kafka" "lat-$LAT_RATE-$r" message.timestamp.type=LogAppendTime
    bridge_start "" "$args"
    sleep 2
    echo "SELECT aegis.publish('lat-$LAT_RATE-$r', jsonb_build_object('pad', repeat('x', 270)), 'k' || (random() * 9)::int);" \
        >"$B/publish.sql"
    FIRST=$(q "SELECT coalesce(max(id), 0) FROM aegis.events")
    "$PG_BIN/pgbench" -n -f "$B/publish.sql" -c 4 -j 2 -R "$LAT_RATE" -T "$LAT_SECONDS" \
        >"$B/pgbench.log" 2>&1 || { cat "$B/pgbench.log"; exit 1; }
    LAST=$(q "SELECT max(id) FROM aegis.events")
    wait_cursor "$LAST" || { echo "latency drain stuck"; exit 1; }
    bridge_stop
    kcat -C -b "$KAFKA_TEST_BOOTSTRAP" -t "lat-$LAT_RATE-$r" -o beginning -e -q -f '%T %h\n' |
        sed -n 's/^\([0-9]*\) .*aegis-event-id=\([0-9]*\).*/\2 \1/p' | sort -n >"$B/lat.kafka.$LAT_RATE.$r"
    q "SELECT id, (extract(epoch FROM created_at) * 1000)::bigint FROM aegis.events
       WHERE topic = 'lat-$LAT_RATE-$r' AND id > $FIRST ORDER BY id" | tr '|' ' ' >"$B/lat.store.$LAT_RATE.$r"
    rate_r=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$B/pgbench.log" | head -1)
    echo "$r $tag ${rate_r:-0} $B/lat.store.$LAT_RATE.$r $B/lat.kafka.$LAT_RATE.$r $LAT_RATE" >>"$LATRES"
  done
 done
fi

python3 - "$RESULTS" "$LATRES" "$LAT_SECONDS" "$B/lat.sweep" <<'PY'
import statistics, sys
res, latres, secs, sweep = sys.argv[1:5]
def med(xs):
    return statistics.median(xs) if xs else float("nan")
print()
print("| events    | bridge s | bridge events/s | baseline s | baseline events/s | ratio |")
print("|-----------|----------|-----------------|------------|-------------------|-------|")
ratios = {}
for line in open(res):
    n, bs, br, ks, kr, *tag = line.split()
    tag = tag[0] if tag else "-"
    ratios.setdefault((int(n), tag), []).append(int(br) / int(kr))
    print(f"| {int(n):>9} | {float(bs):>8.2f} | {int(br):>15} | {float(ks):>10.2f} | {int(kr):>17} | {int(br)/int(kr):>5.2f} |" + ("" if tag == "-" else " " + tag))
def pct(lat, p):
    return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
lats = {}
rows = [l.split() for l in open(latres) if l.strip()]
if rows:
    print()
    print(f"wake-up latency, publish -> appended by Kafka (LogAppendTime), {secs} s per round:")
    print("| round | rate | events/s | events | p50 ms | p90 ms | p99 ms | max ms | missing |")
    print("|-------|------|----------|--------|--------|--------|--------|--------|---------|")
sw = open(sweep, "w")
for r, tag, actual, store, kafka, want in rows:
    created = dict(map(int, l.split()) for l in open(store) if l.strip())
    appended = {}
    for l in open(kafka):
        i, t = map(int, l.split())
        appended.setdefault(i, t)          # first copy
    lat = sorted(appended[i] - created[i] for i in created if i in appended)
    missing = sum(1 for i in created if i not in appended)
    if not lat:
        print(f"| {r:>5} | {want} | {float(actual):>8.0f} | {0:>6} | - | - | - | - | {missing:>7} |")
        continue
    lats.setdefault((tag, int(want)), []).append((pct(lat, 50), pct(lat, 99)))
    sw.write(f"{tag} {want} {actual} {pct(lat, 50)} {pct(lat, 90)} {pct(lat, 99)} {lat[-1]}\n")
    print(f"| {r:>5} | {want} | {float(actual):>8.0f} | {len(lat):>6} | {pct(lat, 50):>6} | {pct(lat, 90):>6} | {pct(lat, 99):>6} | {lat[-1]:>6} | {missing:>7} |" + ("" if tag == "-" else " " + tag))
sw.close()
print()
print("summary (medians over rounds; ranges in brackets):")
print("| variant | size | throughput ratio vs kcat | lat rate /s | lat p50 ms | lat p99 ms |")
print("|---------|------|--------------------------|-------------|------------|------------|")
for tag in sorted({t for _, t in ratios} | {t for t, _ in lats}):
    lrates = sorted(w for t, w in lats if t == tag) or [0]
    for i, n in enumerate(sorted({n for n, t in ratios if t == tag}) or [0]):
        rs = ratios.get((n, tag), [])
        rt = f"{med(rs):.2f} [{min(rs):.2f}-{max(rs):.2f}] ({len(rs)} rounds)" if rs else "-"
        for j, w in enumerate(lrates if i == 0 else [None]):
            pl = lats.get((tag, w), [])
            p50 = f"{med([a for a, _ in pl]):.1f} [{min(a for a, _ in pl)}-{max(a for a, _ in pl)}]" if pl else "-"
            p99 = f"{med([b for _, b in pl]):.1f} [{min(b for _, b in pl)}-{max(b for _, b in pl)}]" if pl else "-"
            print(f"| {'default' if tag == '-' else 'alt'} | {n if j == 0 else ''} | {rt if j == 0 else ''} | {w or '-'} | {p50} | {p99} |")
PY
if [ "$(echo $LAT_RATES | wc -w)" -gt 1 ] && [ -s "$B/lat.sweep" ]; then
    mkdir -p "$(dirname "$LAT_PLOT")"
    /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || apt-get install -y -q python3-matplotlib >/dev/null 2>&1
    /usr/bin/python3 "$TOP/bench/drain/plot_latency.py" "$B/lat.sweep" "$LAT_PLOT" || echo "# no chart"
    cp "$B/lat.sweep" "${LAT_PLOT%.png}.txt"
fi
