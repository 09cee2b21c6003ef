#!/usr/bin/env bash
# bench/publish/waits.sh: what the publishing backends wait on under
# concurrency.  Throwaway cluster (bench/publish/setup.sh), pgbench at
# BENCH_CLIENTS (8) for BENCH_SECONDS (10) each of: (a) the plain INSERT
# baseline, publish_workspace_event, publish; meanwhile one session samples
# pg_stat_activity every 5 ms (a bounded server-side loop) and counts the
# pgbench backends' state / wait_event_type:wait_event per sample.  Prints
# tps and the share of samples per wait (CPU = active with no wait event).
# Environment: BENCH_CLIENTS, BENCH_SECONDS, BENCH_EVENTS (events per
# transaction, 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
source bench/publish/setup.sh
clients=${BENCH_CLIENTS:-8}
secs=${BENCH_SECONDS:-10}
batch=${BENCH_EVENTS:-1}
work=$(mktemp -d)
trap 'pg_stop_all; rm -rf "$AEGIS_TEST_TMP/pg-bench-$$" "$work"' EXIT
bench_setup bench
from=""; [ "$batch" -gt 1 ] && from=" FROM generate_series(1, $batch)"
echo "INSERT INTO bench_plain SELECT $ws_row$from;" >"$work/plain.sql"
echo "SELECT aegis.publish_workspace_event('chk-1', 'agent_status', '$payload')$from;" >"$work/ws.sql"
echo "SELECT aegis.publish('bench', '$payload', 'k')$from;" >"$work/tp.sql"
psql -qX -c "CREATE UNLOGGED TABLE wait_samples (variant text, wait text)"
for v in plain ws tp; do
    n=$((secs * 1000 / 5))
    psql -qX -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN PERFORM pg_sleep(0.5);
        FOR i IN 1..$n LOOP
          PERFORM pg_stat_clear_snapshot();   -- else the whole loop sees one snapshot
          INSERT INTO wait_samples SELECT '$v', coalesce(wait_event_type || ':' || wait_event, 'CPU')
            FROM pg_stat_activity WHERE application_name = 'pgbench' AND state = 'active';
          PERFORM pg_sleep(0.005);
        END LOOP; END \$\$" &
    sampler=$!
    tps=$("$PG_BIN/pgbench" -n -M prepared -c "$clients" -j 2 -T "$((secs + 1))" -f "$work/$v.sql" 2>&1 |
        awk '/^tps = / {printf "%d", $3}')
    wait "$sampler"
    echo "$v: $tps tps at $clients clients, $batch event(s)/txn"
done
psql -qX -c "SELECT variant, wait, pct FROM (SELECT variant, wait,
               round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY variant), 1) AS pct
             FROM wait_samples GROUP BY variant, wait) s WHERE pct >= 0.5 ORDER BY variant, pct DESC"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
