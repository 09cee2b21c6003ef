#!/bin/bash
# bench/sse/hops.sh: where one event's time goes on the SSE path, per hop,
# under a chosen load (default: SSE cell b, 1,000 subscribers over 100
# streams, 1,000 events/s).  Starts a throwaway PostgreSQL 15 with the
# extension and the bridge on 127.0.0.1 (stopped by pid at the end), runs
# sseload (fixed schedule, 4 publishing sessions, --dump: per event its
# COMMIT-sent time and first / median / last receipt, CLOCK_MONOTONIC), and
# records meanwhile with perf (-k mono, the same clock) the system calls of
# the bridge and of the PostgreSQL backend serving its aegis.wait_all long
# poll: the backend's epoll_wait returns (woken) and sendto (answer), the
# bridge's recvfrom (result read) and sendto (fan-out writes, next poll).
# bench/sse/hops.py lines them up per event:
#   commit sent -> wait_all backend woken -> answer sent -> bridge read ->
#   first client send -> ... -> subscriber read (first / median / last)
# and prints the median of each hop over all events and over the slowest 1%.
# perf's tracepoints add a little to every traced call (both sides); the
# run's own p50/p99 without perf are printed for comparison (ROUNDS_PLAIN).
# Environment: SUBS (1000), STREAMS (100), RATE (1000), EVENTS (10000),
#   PUBLISHERS (4), IDLE (0: more connections held open on the same streams), ROUNDS_PLAIN (1), AEGIS_BRIDGE, AEGIS_BRIDGE_ALT (A/B of two
#   builds in one run, see below), OUT (bench/sse/out), KEEP (copy the raw files there).
set -u
if [ -z "${BENCH_HOPS_BOUNDED:-}" ]; then
    BENCH_HOPS_BOUNDED=1 exec timeout --signal=TERM --kill-after=30 600 bash "$0" "$@"
fi
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$TOP/test/lib.sh"
SUBS=${SUBS:-1000} STREAMS=${STREAMS:-100} RATE=${RATE:-1000} EVENTS=${EVENTS:-10000}
PUBLISHERS=${PUBLISHERS:-4} ROUNDS_PLAIN=${ROUNDS_PLAIN:-1}
OUT=${OUT:-$TOP/bench/sse/out}
BRIDGE=${AEGIS_BRIDGE:-$TOP/bridge/aegis-bridge}
mkdir -p "$OUT"
W=$(mktemp -d "$AEGIS_TEST_TMP/bench-hops-XXXXXX")
BR_PIDS= CL_PID= PERF_PID=
cleanup() {
    [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
    local p; kill_pid "$CL_PID"; for p in $BR_PIDS; do kill_pid "$p"; done; pg_stop_all; [ -n "${KEEP:-}" ] && cp -r "$W" "$KEEP"; rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)"
command -v perf >/dev/null || bash "$TOP/scripts/install-deps.sh" linux-perf || exit 1
make -s -C "$TOP" bridge >/dev/null || exit 1
cc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$(pg_config --includedir)" -o "$W/sseload" \
    "$TOP/bench/sse/sseload.c" -lpq -lpthread || exit 1
pg_start bench-hops >/dev/null || exit 1
psql -qX -c "CREATE EXTENSION aegis_events" || exit 1
# variant A = AEGIS_BRIDGE; with AEGIS_BRIDGE_ALT a second bridge (variant B)
# runs beside it (idle when not measured): plain rounds alternate A/B and
# which goes first, each variant gets a traced round, and the summary gives
# the median p50/p99 per variant and B/A.
declare -A PORT BRPID BEPID
VARIANTS="A"; [ -n "${AEGIS_BRIDGE_ALT:-}" ] && VARIANTS="A B"
start_bridge() { # VARIANT BINARY
    local port; port=$(free_port)
    "$2" --listen "127.0.0.1:$port" --no-drain --max-clients 19900 --max-clients-per-ip 19900 \
        --log-level warn 2>>"$W/bridge-$1.log" &
    BRPID[$1]=$!; PORT[$1]=$port; BR_PIDS="$BR_PIDS $!"
    wait_for 30 curl -sf "http://127.0.0.1:$port/healthz" || { echo "bench-hops: bridge $1 did not start"; exit 1; }
    sleep 1
    # the backend serving this bridge's live reader (the newest wait_all session)
    BEPID[$1]=$(psql -XAt -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%wait_all%'
        AND pid <> pg_backend_pid() AND pid NOT IN (0${BE_SEEN:-}) ORDER BY backend_start DESC LIMIT 1")
    [ -n "${BEPID[$1]}" ] || { echo "bench-hops: bridge $1's live reader backend was not found"; exit 1; }
    BE_SEEN="$BE_SEEN,${BEPID[$1]}"
    echo "# bridge $1 = $2: pid ${BRPID[$1]}, wait_all backend ${BEPID[$1]}; load $(cut -d' ' -f1-3 /proc/loadavg)"
}
BR_PIDS= BE_SEEN=
start_bridge A "$BRIDGE"
[ -n "${AEGIS_BRIDGE_ALT:-}" ] && start_bridge B "$AEGIS_BRIDGE_ALT"

# IDLE > 0: that many more SSE connections (sseload idle, at most 9,000 per
# process) on the same streams, opened on every variant before the rounds:
# each event then goes to (SUBS + IDLE) / STREAMS sockets
IDLE=${IDLE:-0} IDLE_PIDS=
if [ "$IDLE" -gt 0 ]; then
    for v in $VARIANTS; do
        left=$IDLE j=0
        while [ "$left" -gt 0 ]; do
            n=$((left < 9000 ? left : 9000)); left=$((left - n)); j=$((j + 1))
            "$W/sseload" idle --port "${PORT[$v]}" --sub "/workspaces/%s/stream" --names "idle$v-" \
                --conns "$n" --streams "$STREAMS" --timeout 590 >"$W/idle$v$j.out" 2>"$W/idle$v$j.err" &
            IDLE_PIDS="$IDLE_PIDS $!"; BR_PIDS="$BR_PIDS $!"
            wait_for 300 grep -q '^ready' "$W/idle$v$j.out" || { echo "bench-hops: idle connections did not open"; exit 1; }
        done
        echo "# $IDLE idle connections open on bridge $v; load $(cut -d' ' -f1-3 /proc/loadavg)"
    done
fi

run_load() { # VARIANT NAME [extra sseload args]
    local v=$1 name=$2; shift 2
    "$W/sseload" run --port "${PORT[$v]}" --sub "/workspaces/%s/stream" --names "$( [ "$IDLE" -gt 0 ] && echo "idle$v" || echo "$name")-" --subs "$SUBS" \
        --streams "$STREAMS" --events "$EVENTS" --warmup 200 --rate "$RATE" --pub bridge \
        --publishers "$PUBLISHERS" --timeout 300 "$@" >"$W/$name.out" 2>"$W/$name.err" &
    CL_PID=$!; wait "$CL_PID"; CL_PID=
    case $name in plain*) echo "$v $(cat "$W/$name.out")" >>"$W/plain.txt" ;; esac
    echo "# $v $name: $(cat "$W/$name.out") $(head -c 300 "$W/$name.err")"
}
for r in $(seq 1 "$ROUNDS_PLAIN"); do
    order=$VARIANTS; [ $((r % 2)) -eq 0 ] && order=$(echo "$VARIANTS" | rev)
    for v in $order; do run_load "$v" "plain$v$r"; done
done
: >"$OUT/hops-$SUBS-$STREAMS-$RATE.txt"
for v in $VARIANTS; do
    perf record -q -k mono -o "$W/perf.data" -p "${BRPID[$v]},${BEPID[$v]}" \
        -e syscalls:sys_enter_sendto -e syscalls:sys_enter_recvfrom -e syscalls:sys_exit_recvfrom \
        -e syscalls:sys_exit_epoll_wait 2>"$W/perf.err" &
    PERF_PID=$!
    sleep 1
    run_load "$v" "traced$v" --dump "$W/events.txt"
    kill -INT "$PERF_PID"; wait "$PERF_PID"; PERF_PID=
    perf script -i "$W/perf.data" --ns -F tid,time,event,trace 2>/dev/null >"$W/trace.txt"
    { echo "## variant $v ($([ "$v" = A ] && echo "$BRIDGE" || echo "$AEGIS_BRIDGE_ALT")), traced round (perf on)"
      python3 "$TOP/bench/sse/hops.py" "$W/events.txt" "$W/trace.txt" "${BRPID[$v]}" "${BEPID[$v]}" auto
      echo; } | tee -a "$OUT/hops-$SUBS-$STREAMS-$RATE.txt"
done
if [ -s "$W/plain.txt" ]; then
    python3 - "$W/plain.txt" <<'PY' | tee -a "$OUT/hops-$SUBS-$STREAMS-$RATE.txt"
import re, statistics, sys
per = {}
for line in open(sys.argv[1]):
    v, rest = line.split(" ", 1)
    kv = dict(re.findall(r"(\w+)=([-\d.]+)", rest))
    if "start_p50" in kv:
        per.setdefault(v, []).append((float(kv["start_p50"]), float(kv["start_p99"]), kv["received"] == kv["expected"]))
print("plain rounds (no perf), commit sent -> subscriber read, ms:")
for v, rs in sorted(per.items()):
    print(f"  {v}: p50 {statistics.median(r[0] for r in rs):.3f} {[r[0] for r in rs]}  p99 {statistics.median(r[1] for r in rs):.3f} {[r[1] for r in rs]}  all delivered: {all(r[2] for r in rs)}")
if "A" in per and "B" in per:
    a, b = per["A"], per["B"]
    print(f"  B/A: p50 {statistics.median(r[0] for r in b) / statistics.median(r[0] for r in a):.2f}x, "
          f"p99 {statistics.median(r[1] for r in b) / statistics.median(r[1] for r in a):.2f}x")
PY
fi
echo "# load at end $(cut -d' ' -f1-3 /proc/loadavg)"
