#!/usr/bin/env bash
# bench/publish/interleaved.sh: one cell of run.sh measured the steadier way.
# The plain INSERT (a) and the function run in ONE pgbench session that picks
# one of the two scripts per transaction (-f a -f fn), so both see the same
# machine, the same table sizes and the same moment; the ratio of their
# average latencies is (a)'s tps over the function's with most of this
# box's run-to-run noise (+-25% between separate 3 s runs) cancelled.
#   BENCH_EVENTS (100) events per transaction, BENCH_CLIENTS (1),
#   BENCH_SECONDS (6) per round, BENCH_REPEAT (3) rounds per function.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
source bench/publish/setup.sh
events=${BENCH_EVENTS:-100}
clients=${BENCH_CLIENTS:-1}
secs=${BENCH_SECONDS:-6}
repeat=${BENCH_REPEAT:-3}
work=$(mktemp -d)
trap 'pg_stop_all; rm -rf "$AEGIS_TEST_TMP/pg-interleaved-$$" "$work"' EXIT

bench_setup interleaved
from=""
[ "$events" -gt 1 ] && from=" FROM generate_series(1, $events)"
echo "INSERT INTO bench_plain SELECT $ws_row$from;" >"$work/ws-plain.sql"
echo "SELECT aegis.publish_workspace_event('chk-1', 'agent_status', '$payload')$from;" >"$work/ws-fn.sql"
echo "INSERT INTO bench_plain SELECT $tp_row$from;" >"$work/tp-plain.sql"
echo "SELECT aegis.publish('bench', '$payload', 'k')$from;" >"$work/tp-fn.sql"

printf '\n%-26s %-8s %-7s %12s %12s %8s\n' function clients events "(a) latency" "fn latency" "x a"
for fn in ws tp; do
    label=publish_workspace_event; [ "$fn" = tp ] && label=publish
    for r in $(seq 1 "$repeat"); do
        "$PG_BIN/pgbench" -n -M prepared -r -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" -T "$secs" \
            -f "$work/$fn-plain.sql" -f "$work/$fn-fn.sql" >"$work/out" 2>&1
        # per-script "latency average = X ms": (a) first, the function second
        awk -v label="$label" -v c="$clients" -v e="$events" '
            /^ - latency average = / {l[++n] = $5}
            END {printf "%-26s %-8s %-7s %9.3f ms %9.3f ms %8.2f\n", label, c, e, l[1], l[2], l[1] / l[2]}' "$work/out"
    done
done
echo
echo "one pgbench session per round choosing (a) or the function per transaction; x a = (a)'s latency / the function's"
