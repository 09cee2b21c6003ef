#!/usr/bin/env bash
# bench/retention/run.sh (make bench-retention): the store under retention.
#   1. size over time: pgbench publishes at a steady RATE events/s (PER_TX
#      events per transaction, 4 clients) for 10x the retention window
#      (WINDOW seconds, workspace policy keep = WINDOW); the maintenance
#      worker enforces retention every aegis.retention_interval (1 s).  The
#      table's total size (heap + indexes) is sampled every 2 s into
#      docs/retention-size.csv and drawn into docs/retention-size.png.
#      Reported: the size after the first window and the largest size over
#      the last 5 windows, as a ratio (goal: < 1.5).
#   2. publish throughput with retention running vs off, same cluster:
#      unthrottled pgbench, 8 clients, ROUNDS rounds of SECS seconds each,
#      off and on alternating; medians and their ratio (goal: >= 0.9).
#   3. p99 commit -> SSE latency with retention running vs off, same cluster:
#      the plain bridge (--no-drain) and bench/sse/sseload (100 subscribers
#      over 10 fresh workspace streams, SSE_EVENTS events at SSE_RATE/s, from
#      the COMMIT sent to the subscriber's read), while pgbench publishes RATE
#      events/s in the background; LAT_ROUNDS rounds, off and on alternating;
#      medians of the rounds' p99 and their ratio (goal: within 10%).
# PARTS (123) selects the parts to run: PARTS=3 runs the third alone.
# aegis.events is partitioned (PARTITION_WIDTH positions per partition,
# PARTITIONS_AHEAD made ahead): at RATE events/s a partition fills in
# PARTITION_WIDTH / RATE seconds (10 s by default), so the table holds about
# one partition more than the window before a whole one is dropped.  The
# sizes are summed over the partitions (pg_partition_tree).
# autovacuum_naptime is 2 s on this cluster: with a 30 s window the default
# (1 min) lets two windows of dead rows pile up before space is reused; for
# windows of hours the default is enough.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
WINDOW=${WINDOW:-30}
RATE=${RATE:-2000}
PER_TX=${PER_TX:-10}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
SSE_EVENTS=${SSE_EVENTS:-2000}
SSE_RATE=${SSE_RATE:-200}
LAT_ROUNDS=${LAT_ROUNDS:-3}
PARTS=${PARTS:-123}
tps=$(( RATE / PER_TX ))
PARTITION_WIDTH=${PARTITION_WIDTH:-20000}
PARTITIONS_AHEAD=${PARTITIONS_AHEAD:-20}
OUT=${OUT:-docs/retention-size.csv}
work=$(mktemp -d)
SAMPLER= BR= BG=
trap 'kill_pid "$SAMPLER"; kill_pid "$BG"; kill_pid "$BR"; pg_stop_all; rm -rf "$work"' EXIT

pg_start bench-retention "max_connections = 100" "aegis.retention_interval = '1s'" \
    "autovacuum_naptime = '2s'" "shared_buffers = '256MB'" \
    "aegis.partition_width = $PARTITION_WIDTH" "aegis.partitions_ahead = $PARTITIONS_AHEAD" >/dev/null
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION aegis_events" >/dev/null
payload='{"status": "running", "message": "Checking offset wells", "progress": 0.5, "item_index": 3, "agent": "rule37"}'
echo "SELECT count(aegis.publish_workspace_event('chk-' || (random() * 100)::int, 'agent_status', '$payload')) FROM generate_series(1, $PER_TX);" >"$work/pub.sql"
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
TOTAL="(SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree('aegis.events') t)"
size() { q "SELECT $TOTAL"; }

# ---- 1. size over time at a steady rate ----
if [[ $PARTS == *1* ]]; then
q "SELECT aegis.set_retention('workspace', '$WINDOW s')" >/dev/null
echo "seconds,bytes,live_rows,partitions" >"$OUT"
t0=$(date +%s.%N)
( while :; do
      echo "$(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f'),$(q "SELECT $TOTAL || ',' || (SELECT count(*) FROM aegis.events) || ',' || (SELECT count(*) FROM aegis.event_partitions)")"
      sleep 2
  done >>"$OUT" ) &
SAMPLER=$!
pgbench -n -f "$work/pub.sql" -c 4 -j 2 -R "$tps" -T $((WINDOW * 10)) postgres >"$work/steady.log" 2>&1
kill_pid "$SAMPLER"; SAMPLER=
python3 - "$OUT" "$WINDOW" <<'PY' | tee "$work/size.txt"
import csv, sys
rows = [(float(r["seconds"]), int(r["bytes"]), int(r["live_rows"])) for r in csv.DictReader(open(sys.argv[1]))]
w = float(sys.argv[2])
one = min((r for r in rows if r[0] >= w), key=lambda r: r[0])
late = [r for r in rows if r[0] >= 5 * w]
peak = max(late, key=lambda r: r[1])
print(f"size after one window ({one[0]:.0f} s): {one[1] / 1048576:.1f} MiB, {one[2]} rows")
print(f"largest size over the last 5 windows: {peak[1] / 1048576:.1f} MiB at {peak[0]:.0f} s ({peak[2]} rows)")
print(f"ratio: {peak[1] / one[1]:.2f} (goal < 1.5)")
PY
grep -E "^tps|latency average" "$work/steady.log" | sed 's/^/steady publisher: /'
"${PYTHON:-/usr/bin/python3}" bench/retention/plot.py "$OUT" "${OUT%.csv}.png" "$WINDOW" "$RATE"

fi

# ---- 2. throughput, retention running vs off ----
if [[ $PARTS == *2* ]]; then
run() { pgbench -n -f "$work/pub.sql" -c 8 -j 2 -T "$SECS" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
off=(); on=()
for r in $(seq 1 "$ROUNDS"); do
    q "SELECT aegis.set_retention('workspace', NULL)" >/dev/null
    off+=("$(run)")
    q "SELECT aegis.set_retention('workspace', '$WINDOW s')" >/dev/null
    on+=("$(run)")
    echo "round $r: off ${off[-1]} tps, on ${on[-1]} tps (x$PER_TX events)"
done
mo=$(median "${off[@]}"); mn=$(median "${on[@]}")
echo "publish throughput, median of $ROUNDS: off $mo tps, on $mn tps, ratio $(echo "scale=3; $mn / $mo" | bc) (goal >= 0.9)"
echo "removed in total: $(q "SELECT removed_total FROM aegis.retention_state") events ($(q "SELECT rows_dropped || ' with ' || partitions_dropped || ' whole partitions'  FROM aegis.retention_state")); table now $(( $(size) / 1048576 )) MiB in $(q "SELECT count(*) FROM aegis.event_partitions") partitions"

fi

# ---- 3. commit -> SSE latency, retention running vs off ----
[[ $PARTS == *3* ]] || exit 0
make -s -C bridge all >/dev/null
cc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$(pg_config --includedir)" -o "$work/sseload" \
    bench/sse/sseload.c -lpq -lpthread
BR_PORT=$(free_port)
bridge/aegis-bridge --listen "127.0.0.1:$BR_PORT" --no-drain --max-clients 2000 --max-clients-per-ip 2000 >"$work/bridge.log" 2>&1 &
BR=$!
for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$BR_PORT/healthz" >/dev/null && break; sleep 0.1; done
pgbench -n -f "$work/pub.sql" -c 2 -j 1 -R "$tps" -T 100000 postgres >/dev/null 2>&1 &
BG=$!
lat_off=(); lat_on=()
for r in $(seq 1 "$LAT_ROUNDS"); do
    for mode in off on; do
        if [ "$mode" = on ]; then
            q "SELECT aegis.set_retention('workspace', '$WINDOW s')" >/dev/null
        else
            q "SELECT aegis.set_retention('workspace', NULL)" >/dev/null
        fi
        out=$("$work/sseload" run --port "$BR_PORT" --sub "/workspaces/%s/stream" --names "r$r-$mode-" \
              --subs 100 --streams 10 --events "$SSE_EVENTS" --warmup 200 --rate "$SSE_RATE" \
              --pub bridge --publishers 4 --timeout 120 2>"$work/lat.err")
        p99=$(sed -n 's/.*start_p99=\([0-9.]*\).*/\1/p' <<<"$out")
        [ -n "$p99" ] || { echo "sseload failed:"; cat "$work/lat.err"; exit 1; }
        if [ "$mode" = on ]; then lat_on+=("$p99"); else lat_off+=("$p99"); fi
        echo "latency round $r, retention $mode: $(grep -o 'start_p50=[0-9.]* start_p99=[0-9.]*' <<<"$out") received=$(sed -n 's/.*received=\([0-9]*\).*/\1/p' <<<"$out")"
    done
done
kill_pid "$BG"; BG=
lo=$(median "${lat_off[@]}"); ln=$(median "${lat_on[@]}")
echo "commit -> SSE p99 (ms), median of $LAT_ROUNDS: off $lo, on $ln, ratio $(echo "scale=3; $ln / $lo" | bc) (goal <= 1.1)"
