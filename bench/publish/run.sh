#!/usr/bin/env bash
# bench/publish/run.sh: publish throughput against two baselines, one cluster,
# one run.  pgbench, one statement (one round trip) per transaction:
#   (a) plain  INSERT into a table like aegis.events (same columns, indexes)
#   (b) notify the same INSERT plus pg_notify, in one statement
#   publish    aegis.publish(topic, value)
#   workspace  aegis.publish_workspace_event (validated)
# at 1, 8 and 32 clients, 1 and 100 events per transaction.  Prints tps and
# the ratio to (a).  BENCH_SECONDS (default 5) per cell.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
trap pg_stop_all EXIT
secs=${BENCH_SECONDS:-5}
work=$(mktemp -d)

pg_start bench "max_connections = 100"
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION aegis_events;
CREATE TABLE bench_plain (LIKE aegis.events INCLUDING ALL);
CREATE SEQUENCE bench_seq;
SQL

payload='{"status": "running", "message": "Checking offset wells", "progress": 0.5, "item_index": 3, "agent": "rule37"}'
values="nextval('bench_seq'), 'workspace', 'chk-1', 'agent_status', '$payload'::jsonb, NULL, NULL, NULL, now()"
cat >"$work/plain-1.sql" <<SQL
INSERT INTO bench_plain VALUES ($values);
SQL
cat >"$work/notify-1.sql" <<SQL
WITH i AS (INSERT INTO bench_plain VALUES ($values) RETURNING id) SELECT pg_notify('bench', id::text) FROM i;
SQL
cat >"$work/publish-1.sql" <<SQL
SELECT aegis.publish('bench', '$payload');
SQL
cat >"$work/workspace-1.sql" <<SQL
SELECT aegis.publish_workspace_event('chk-1', 'agent_status', '$payload');
SQL
cat >"$work/plain-100.sql" <<SQL
INSERT INTO bench_plain SELECT $values FROM generate_series(1, 100);
SQL
cat >"$work/notify-100.sql" <<SQL
WITH i AS (INSERT INTO bench_plain SELECT $values FROM generate_series(1, 100) RETURNING id) SELECT pg_notify('bench', max(id)::text) FROM i;
SQL
cat >"$work/publish-100.sql" <<SQL
SELECT aegis.publish('bench', '$payload') FROM generate_series(1, 100);
SQL
cat >"$work/workspace-100.sql" <<SQL
SELECT aegis.publish_workspace_event('chk-1', 'agent_status', '$payload') FROM generate_series(1, 100);
SQL

tps() { # script clients
    local jobs=$(( $2 < 2 ? 1 : 2 ))
    "$PG_BIN/pgbench" -n -M prepared -c "$2" -j "$jobs" -T "$secs" -f "$1" 2>&1 \
        | awk '/^tps = / {printf "%d", $3}'
}

# warm-up (caches, JIT off by default for these tiny statements)
tps "$work/publish-1.sql" 8 >/dev/null
tps "$work/plain-1.sql" 8 >/dev/null

printf '\n%-8s %-7s %12s %20s %20s %20s\n' clients events "(a) plain" "(b) +notify" "publish" "publish_workspace"
printf '%-8s %-7s %12s %20s %20s %20s\n' "" "/txn" "tps" "tps (x a)" "tps (x a)" "tps (x a)"
for batch in 1 100; do
    for c in 1 8 32; do
        a=$(tps "$work/plain-$batch.sql" "$c")
        b=$(tps "$work/notify-$batch.sql" "$c")
        p=$(tps "$work/publish-$batch.sql" "$c")
        w=$(tps "$work/workspace-$batch.sql" "$c")
        ratio() { awk -v x="$1" -v y="$a" 'BEGIN {printf "%.2f", (y > 0 ? x / y : 0)}'; }
        printf '%-8s %-7s %12s %20s %20s %20s\n' "$c" "$batch" "$a" \
            "$b ($(ratio "$b"))" "$p ($(ratio "$p"))" "$w ($(ratio "$w"))"
    done
done
echo
echo "one cluster, fsync=off, synchronous_commit=off (test/lib.sh), ${secs}s per cell, $(nproc) cores"
rm -rf "$work"
