#!/bin/bash
# bench/sse/wait_probe.sh: does aegis.wait_all ever sleep to its timeout
# while events commit (a missed wake-up)?  A throwaway PostgreSQL 15 with the
# extension (make install first); pgbench publishes RATE workspace events/s
# from 4 clients while one session long-polls aegis.wait_all(after, 1000,
# 1000) POLLS times (or for 35 s), one transaction per poll, and prints the
# polls' count, longest and p99 duration (ms), the events read, and the ten
# longest polls.  A missed wake-up shows as a poll of ~1,000 ms that
# returned rows.  Loopback only; bounded by timeout(1) (120 s).
set -u
if [ -z "${WAIT_PROBE_BOUNDED:-}" ]; then
    WAIT_PROBE_BOUNDED=1 exec timeout --signal=TERM --kill-after=10 120 bash "$0" "$@"
fi
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$TOP/test/lib.sh"
RATE=${RATE:-1000} POLLS=${POLLS:-20000}
W=$(mktemp -d "$AEGIS_TEST_TMP/wait-probe-XXXXXX")
PGB=
trap 'kill_pid "$PGB"; pg_stop_all; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
pg_start wait-probe >/dev/null || exit 1
psql -qX -c "CREATE EXTENSION aegis_events" || exit 1
cat >"$W/pub.sql" <<'SQL'
SELECT aegis.publish_workspace_event('ws-' || (random() * 100)::int, 'agent_status',
    jsonb_build_object('status', 'running', 'message', 'probe'));
SQL
pgbench -n -c 4 -j 2 -R "$RATE" -T 40 -f "$W/pub.sql" >"$W/pgbench.log" 2>&1 &
PGB=$!
sleep 1
psql -qXAt -v polls="$POLLS" <<'SQL'
CREATE TEMP TABLE polls (n int, ms float8, rows int);
SET probe.polls = :'polls';
DO $$
DECLARE
    after bigint := aegis.safe_position();
    started timestamptz := clock_timestamp();
    t0 timestamptz;
    n int;
    m bigint;
BEGIN
    FOR i IN 1..current_setting('probe.polls')::int LOOP
        t0 := clock_timestamp();
        SELECT count(*), max(id) INTO n, m FROM aegis.wait_all(after, 1000, 1000);
        INSERT INTO polls VALUES (i, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
        IF m IS NOT NULL THEN after := m; END IF;
        COMMIT;
        EXIT WHEN clock_timestamp() > started + interval '35 s';
    END LOOP;
END $$;
SELECT format('polls=%s max_ms=%s p99_ms=%s events=%s', count(*), round(max(ms)::numeric, 1),
              round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 2), sum(rows)) FROM polls;
SELECT format('  poll %s: %s ms, %s rows', n, round(ms::numeric, 1), rows)
  FROM polls ORDER BY ms DESC LIMIT 10;
SQL
