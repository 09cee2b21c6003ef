#!/usr/bin/env bash
# bench/publish/run.sh: publish throughput against two baselines, one cluster,
# one run.  pgbench, one statement (one round trip) per transaction:
#   (a)  INSERT into a table like aegis.events (same columns, same indexes) of
#        a row of the shape the function stores
#   (b)  the same INSERT plus pg_notify, in one statement
#   the function: aegis.publish_workspace_event (validated) or aegis.publish
# at 1, 8 and 32 clients, 1 and 100 events per transaction.  Prints tps and
# the ratio to (a).  Each cell is the median of BENCH_REPEAT (3) runs of
# BENCH_SECONDS (3) each, the three variants of a cell interleaved.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
source bench/publish/setup.sh
secs=${BENCH_SECONDS:-3}
repeat=${BENCH_REPEAT:-3}
work=$(mktemp -d)
# The cluster grows by gigabytes in one run: remove it and the scripts at exit.
trap 'pg_stop_all; rm -rf "$AEGIS_TEST_TMP/pg-bench-$$" "$work"' EXIT

bench_setup bench

script() { # name batch sql-for-one-event-or-row-values kind
    local name=$1 batch=$2 body=$3 kind=$4 from=""
    [ "$batch" -gt 1 ] && from=" FROM generate_series(1, $batch)"
    case $kind in
        plain)  echo "INSERT INTO bench_plain SELECT $body$from;" ;;
        notify) echo "WITH i AS (INSERT INTO bench_plain SELECT $body$from RETURNING id) SELECT pg_notify('bench', max(id)::text) FROM i;" ;;
        call)   echo "SELECT $body$from;" ;;
    esac >"$work/$name-$batch.sql"
}
for b in 1 100; do
    script ws-plain "$b" "$ws_row" plain
    script ws-notify "$b" "$ws_row" notify
    script ws-fn "$b" "aegis.publish_workspace_event('chk-1', 'agent_status', '$payload')" call
    script tp-plain "$b" "$tp_row" plain
    script tp-notify "$b" "$tp_row" notify
    script tp-fn "$b" "aegis.publish('bench', '$payload', 'k')" call
done

tps() { # script clients
    local jobs=$(( $2 < 2 ? 1 : 2 ))
    "$PG_BIN/pgbench" -n -M prepared -c "$2" -j "$jobs" -T "$secs" -f "$1" 2>&1 \
        | awk '/^tps = / {printf "%d", $3}'
}

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# warm-up
tps "$work/ws-fn-1.sql" 8 >/dev/null
tps "$work/ws-plain-1.sql" 8 >/dev/null

printf '\n%-26s %-8s %-7s %11s %19s %19s\n' function clients events "(a) INSERT" "(b) INSERT+NOTIFY" "function"
printf '%-26s %-8s %-7s %11s %19s %19s\n' "" "" "/txn" "tps" "tps (x a)" "tps (x a)"
for fn in ws tp; do
    label=publish_workspace_event; [ "$fn" = tp ] && label=publish
    for batch in 1 100; do
        for c in 1 8 32; do
            as=() bs=() fs=()
            for r in $(seq 1 "$repeat"); do
                as+=("$(tps "$work/$fn-plain-$batch.sql" "$c")")
                bs+=("$(tps "$work/$fn-notify-$batch.sql" "$c")")
                fs+=("$(tps "$work/$fn-fn-$batch.sql" "$c")")
            done
            a=$(median "${as[@]}") b=$(median "${bs[@]}") f=$(median "${fs[@]}")
            ratio() { awk -v x="$1" -v y="$a" 'BEGIN {printf "%.2f", (y > 0 ? x / y : 0)}'; }
            printf '%-26s %-8s %-7s %11s %19s %19s\n' "$label" "$c" "$batch" "$a" \
                "$b ($(ratio "$b"))" "$f ($(ratio "$f"))"
        done
    done
done
echo
echo "one cluster, fsync=off, synchronous_commit=off (test/lib.sh); median of $repeat x ${secs}s per cell; $(nproc) cores"
rm -rf "$work"
