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
#   p99 commit -> SSE latency with and without retention is not measured here
#   (see docs/retention.md).
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
OUT=${OUT:-docs/retention-size.csv}
work=$(mktemp -d)
SAMPLER=
trap 'kill_pid "$SAMPLER"; pg_stop_all; rm -rf "$work"' EXIT

pg_start bench-retention "max_connections = 100" "aegis.retention_interval = '1s'" \
    "autovacuum_naptime = '2s'" "shared_buffers = '256MB'" >/dev/null
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION aegis_events" >/dev/null
payload='{"status": "running", "message": "Checking offset wells", "progress": 0.5, "item_index": 3, "agent": "rule37"}'
echo "SELECT count(aegis.publish_workspace_event('chk-' || (random() * 100)::int, 'agent_status', '$payload')) FROM generate_series(1, $PER_TX);" >"$work/pub.sql"
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
size() { q "SELECT pg_total_relation_size('aegis.events')"; }

# ---- 1. size over time at a steady rate ----
q "SELECT aegis.set_retention('workspace', '$WINDOW s')" >/dev/null
echo "seconds,bytes,live_rows" >"$OUT"
t0=$(date +%s.%N)
( while :; do
      echo "$(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f'),$(q "SELECT pg_total_relation_size('aegis.events') || ',' || (SELECT count(*) FROM aegis.events)")"
      sleep 2
  done >>"$OUT" ) &
SAMPLER=$!
tps=$(( RATE / PER_TX ))
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

# ---- 2. throughput, retention running vs off ----
run() { pgbench -n -f "$work/pub.sql" -c 8 -j 2 -T "$SECS" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
off=(); on=()
for r in $(seq 1 "$ROUNDS"); do
    q "SELECT aegis.set_retention('workspace', NULL)" >/dev/null
    off+=("$(run)")
    q "SELECT aegis.set_retention('workspace', '$WINDOW s')" >/dev/null
    on+=("$(run)")
    echo "round $r: off ${off[-1]} tps, on ${on[-1]} tps (x$PER_TX events)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mo=$(median "${off[@]}"); mn=$(median "${on[@]}")
echo "publish throughput, median of $ROUNDS: off $mo tps, on $mn tps, ratio $(echo "scale=3; $mn / $mo" | bc) (goal >= 0.9)"
echo "removed in total: $(q "SELECT removed_total FROM aegis.retention_state") events; table now $(( $(size) / 1048576 )) MiB"
