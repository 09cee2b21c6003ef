#!/usr/bin/env bash
# bench/runs/run.sh: agent-run throughput against the bare SKIP LOCKED queue
# that pgmq and River are built on, one cluster, one run.  A run is
#   claim -> 3 node_end -> finish, five transactions (pgbench -M prepared,
#   one statement each), by W workers (pgbench clients) at once:
#   aegis:    aegis.claim_run, 3 x aegis.publish_node_end, aegis.finish_run
#             (which publishes done and ends the run in one transaction)
#   baseline: UPDATE jobs ... WHERE id = (SELECT id ... FOR UPDATE SKIP LOCKED
#             LIMIT 1) RETURNING id; 3 plain INSERTs of node_end-shaped rows
#             into a copy of aegis.events; INSERT of the done row + DELETE of
#             the job in one statement
# Both queues are filled before each measurement (not timed) with more jobs
# than the workers take, so no claim finds the queue empty.  Runs/s at 1, 4
# and 16 workers; each cell the median of BENCH_REPEAT (3) measurements of
# BENCH_RUNS (3000) runs, aegis and baseline alternating.  Then the steadier
# interleaved measure: one pgbench session whose workers pick aegis or the
# baseline per run (-f aegis.sql -f baseline.sql), so both see the same
# moments of a shared machine; the ratio of their average run latencies is
# the baseline's runs/s over aegis's.  The maintenance worker runs its clock
# every second during the measurement, as deployed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
runs=${BENCH_RUNS:-3000}
repeat=${BENCH_REPEAT:-3}
case $runs in ''|*[!0-9]*) echo "BENCH_RUNS must be a number" >&2; exit 2 ;; esac
case $repeat in [1-9]) ;; *) echo "BENCH_REPEAT must be 1-9" >&2; exit 2 ;; esac
work=$(mktemp -d)
trap 'pg_stop_all; [ -n "${BENCH_KEEP_LOG:-}" ] && cp "$work/pgbench.log" "$BENCH_KEEP_LOG"; rm -rf "$work"' EXIT

pg_start benchruns "max_connections = 100" >/dev/null
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION aegis_events;
SELECT aegis.configure_agent('bench', queue_timeout => '1 hour', lease => '1 hour');
CREATE TABLE bench_jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id text        NOT NULL,
    message         text        NOT NULL,
    worker          text,
    claimed_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bench_jobs_queue_idx ON bench_jobs (id) WHERE worker IS NULL;
CREATE TABLE bench_events (LIKE aegis.events INCLUDING ALL);
CREATE SEQUENCE bench_seq;
SQL

node='{"event": "node_end", "node": "initial_llm_call", "data": {"status": "running", "tokens_used": 100}}'
done_payload='{"event": "done", "data": {"execution_id": "exec", "status": "completed", "tokens_used": 300, "cost_usd": 0.01}}'
row() { echo "nextval('bench_seq'), 'conversation', :conversation_id, '$1', '$2'::jsonb, NULL, NULL, NULL, now()"; }
cat >"$work/aegis.sql" <<SQL
SELECT run_id, conversation_id FROM aegis.claim_run('bench', 'w' || :client_id) \gset
SELECT aegis.publish_node_end(:conversation_id, 'system_prompt_node', 'running', 100);
SELECT aegis.publish_node_end(:conversation_id, 'initial_llm_call', 'running', 100);
SELECT aegis.publish_node_end(:conversation_id, 'output_format', 'completed', 100);
SELECT aegis.finish_run(:run_id, 'w' || :client_id, 'exec', 'completed', 300, 0.01);
SQL
cat >"$work/baseline.sql" <<SQL
UPDATE bench_jobs SET worker = 'w' || :client_id, claimed_at = now()
 WHERE id = (SELECT id FROM bench_jobs WHERE worker IS NULL ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, conversation_id \gset
INSERT INTO bench_events SELECT $(row node_end "$node");
INSERT INTO bench_events SELECT $(row node_end "$node");
INSERT INTO bench_events SELECT $(row node_end "$node");
WITH d AS (DELETE FROM bench_jobs WHERE id = :id) INSERT INTO bench_events SELECT $(row done "$done_payload");
SQL

fill() { # kind count round
    local from
    if [ "$1" = aegis ]; then           # 1,000 per statement: each request takes an advisory lock
        for from in $(seq 1 1000 "$2"); do
            psql -qAtX -c "SELECT count(aegis.request_run('bc-$3-' || i, 'q', NULL, 'bench'))
                             FROM generate_series($from, least($from + 999, $2)) i" >/dev/null
        done
    else
        psql -qAtX -c "INSERT INTO bench_jobs (conversation_id, message) SELECT 'bc-$3-' || i, 'q' FROM generate_series(1, $2) i" >/dev/null
    fi
    psql -qAtX -c "VACUUM ANALYZE aegis.run_requests, bench_jobs" >/dev/null
}
# measure KIND WORKERS ROUND: runs per second
measure() {
    local per=$(( runs / $2 )) jobs=$(( $2 < 2 ? 1 : 2 ))
    fill "$1" $(( per * $2 + $2 )) "$1-$2-$3"
    "$PG_BIN/pgbench" -n -M prepared ${BENCH_PGBENCH_OPTS:-} -c "$2" -j "$jobs" -t "$per" -f "$work/$1.sql" 2>&1 | tee -a "$work/pgbench.log" \
        | awk '/^tps = / {printf "%d", $3} /aborted|error/ {print "pgbench: " $0 > "/dev/stderr"}'
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

echo "start: $(date -u '+%Y-%m-%d %H:%M UTC'); load: $(uptime | sed 's/.*load average: //')"
measure aegis 4 warmup >/dev/null
measure baseline 4 warmup >/dev/null

printf '\n%-8s %22s %22s %8s\n' workers "baseline runs/s" "aegis runs/s" "ratio"
for w in 1 4 16; do
    as=() bs=()
    for r in $(seq 1 "$repeat"); do
        if [ $((r % 2)) -eq 1 ]; then
            bs+=("$(measure baseline "$w" "$r")"); as+=("$(measure aegis "$w" "$r")")
        else
            as+=("$(measure aegis "$w" "$r")"); bs+=("$(measure baseline "$w" "$r")")
        fi
    done
    a=$(median "${as[@]}") b=$(median "${bs[@]}")
    printf '%-8s %22s %22s %8s\n' "$w" "$b" "$a" "$(awk -v x="$a" -v y="$b" 'BEGIN {printf "%.2f", (y > 0 ? x / y : 0)}')"
    echo "         rounds: baseline ${bs[*]}; aegis ${as[*]}"
done
# interleaved KIND... : "ratio" of one mixed session (baseline latency / aegis latency)
interleaved() {
    local w=$1 r=$2 per=$(( runs / $1 )) jobs=$(( $1 < 2 ? 1 : 2 ))
    fill aegis $(( per * w + w )) "mix-$w-$r"
    fill baseline $(( per * w + w )) "mix-$w-$r"
    "$PG_BIN/pgbench" -n -M prepared ${BENCH_PGBENCH_OPTS:-} -c "$w" -j "$jobs" -t "$per" \
        -f "$work/aegis.sql" -f "$work/baseline.sql" 2>&1 | tee -a "$work/pgbench.log" \
        | awk '/^SQL script/ {k = ($4 ~ /aegis[.]sql$/) ? "a" : "b"} /^ - latency average/ {lat[k] = $5}
               END {printf "%.2f", (lat["a"] > 0 ? lat["b"] / lat["a"] : 0)}'
}
printf '\ninterleaved (aegis and baseline runs mixed in one pgbench session):\n'
printf '%-8s %12s   %s\n' workers "ratio" "rounds"
for w in 1 4 16; do
    rs=()
    for r in $(seq 1 "$repeat"); do rs+=("$(interleaved "$w" "$r")"); done
    printf '%-8s %12s   %s\n' "$w" "$(printf '%s\n' "${rs[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')" "${rs[*]}"
done

check_done=$(psql -qAtX -c "SELECT count(*) FILTER (WHERE state = 'done') || ' done, ' || count(*) FILTER (WHERE state = 'running') || ' running' FROM aegis.runs")
echo
echo "runs: claim -> 3 node_end -> finish (5 transactions); median of $repeat x $runs runs per cell; $(nproc) cores;"
echo "one cluster, fsync=off, synchronous_commit=off (test/lib.sh); aegis runs afterwards: $check_done"
echo "end: $(date -u '+%Y-%m-%d %H:%M UTC'); load: $(uptime | sed 's/.*load average: //')"
