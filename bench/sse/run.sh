#!/bin/bash
# bench/sse/run.sh: aegis-bridge SSE fan-out throughput and end-to-end
# latency.  Starts a throwaway PostgreSQL with the extension and the plain
# bridge on 127.0.0.1, stops both by pid at the end.
#
# Fan-out: CLIENTS raw SSE clients (test/sse/sse_client.py, asyncio) over
#   STREAMS workspace streams; once all are connected, one psql session
#   publishes EVENTS events per stream (one transaction each); time from the
#   first publish until every client has every event of its stream.
#   deliveries/s = CLIENTS * EVENTS / seconds.  The Python clients share the
#   machine (2 cores) with PostgreSQL and the bridge: a lower bound.
# Latency: one subscriber; pgbench publishes at LAT_RATE/s for LAT_SECONDS;
#   latency = client receive time - the event's created_at (inside the
#   publishing transaction, so it includes commit, the extension's NOTIFY
#   worker, the bridge's read and the write).
# Environment: CLIENTS (1000), STREAMS (10), EVENTS (100), LAT_RATE (200), LAT_SECONDS (10)
set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$TOP/test/lib.sh"
CLIENTS=${CLIENTS:-1000}
STREAMS=${STREAMS:-10}
EVENTS=${EVENTS:-100}
LAT_RATE=${LAT_RATE:-200}
LAT_SECONDS=${LAT_SECONDS:-10}
W=$(mktemp -d "$AEGIS_TEST_TMP/bench-sse-XXXXXX")
BRIDGE=${AEGIS_BRIDGE:-$TOP/bridge/aegis-bridge}
CLIENT=(python3 "$TOP/test/sse/sse_client.py")
BR_PID=
cleanup() { kill_pid "$BR_PID"; pg_stop_all; rm -rf "$W"; }
trap cleanup EXIT
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

make -s -C "$TOP/bridge" all >/dev/null
pg_start bench-sse >/dev/null
psql -qX -c "CREATE EXTENSION aegis_events"
PORT=$(free_port)
B=http://127.0.0.1:$PORT
"$BRIDGE" --listen "127.0.0.1:$PORT" --no-drain --log-level warn 2>"$W/bridge.log" &
BR_PID=$!
wait_for 30 curl -sf "$B/healthz" || { echo "bridge did not start"; cat "$W/bridge.log"; exit 1; }

"${CLIENT[@]}" many "$B/workspaces/bench-{}/stream" --streams "$STREAMS" --clients "$CLIENTS" \
    --events "$EVENTS" --ready "$W/ready" --timeout 300 >"$W/many.json" &
MANY=$!
wait_for 120 test -f "$W/ready" || { echo "clients did not connect"; exit 1; }
start=$(date +%s.%N)
for s in $(seq 0 $((STREAMS - 1))); do
    for i in $(seq 1 "$EVENTS"); do
        echo "SELECT aegis.publish_agent_status('bench-$s', 'running', 'event $i of a fan-out benchmark', 0.5);"
    done
done | psql -qAtX >/dev/null
pub_end=$(date +%s.%N)
wait "$MANY"
end=$(date +%s.%N)
complete=$(jq .complete "$W/many.json")
python3 - "$start" "$pub_end" "$end" "$CLIENTS" "$EVENTS" "$STREAMS" "$complete" <<'PY'
import sys
start, pub_end, end = map(float, sys.argv[1:4])
clients, events, streams, complete = map(int, sys.argv[4:8])
secs = end - start
print(f"fan-out: {clients} clients, {streams} streams, {events * streams} events published in "
      f"{pub_end - start:.2f} s; all {complete}/{clients} clients complete after {secs:.2f} s; "
      f"{clients * events / secs:,.0f} deliveries/s")
PY

cat >"$W/lat.sql" <<'SQL'
SELECT aegis.publish_agent_status('bench-lat', 'running', 'latency probe');
SQL
total=$((LAT_RATE * LAT_SECONDS / 2 * 2))
"${CLIENT[@]}" get "$B/workspaces/bench-lat/stream" --events "$total" --timeout $((LAT_SECONDS + 30)) --stamp >"$W/lat.json" &
LAT=$!
sleep 1
pgbench -n -c 2 -j 2 -R "$LAT_RATE" -t $((total / 2)) -f "$W/lat.sql" >"$W/pgbench.log" 2>&1
wait "$LAT"
psql -qAtX -c "SELECT id, extract(epoch FROM created_at) FROM aegis.events WHERE stream_id = 'bench-lat'" >"$W/created.txt"
python3 - "$W/lat.json" "$W/created.txt" "$LAT_SECONDS" <<'PY'
import json, sys
evs = json.load(open(sys.argv[1]))["events"]
created = dict(line.split("|") for line in open(sys.argv[2]).read().split())
lat = sorted((e["t"] - float(created[e["id"]])) * 1000 for e in evs if e["id"] in created)
if not lat:
    print("latency: no events received"); sys.exit(1)
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"latency: {len(lat)} events at ~{len(lat) / float(sys.argv[3]):.0f}/s: p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, "
      f"p99 {q(0.99):.1f} ms, max {lat[-1]:.1f} ms")
PY
