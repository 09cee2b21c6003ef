#!/bin/bash
# test/suites/53-retention-upgrade.sh: ALTER EXTENSION aegis_events UPDATE
# from 0.2.0 on a store of 1,000,000 events, with a publisher committing
# while the upgrade's transaction is open; then retention on the upgraded
# store.  The upgrade's duration is printed (a diagnostic, not asserted).
# Then the conversion of the upgraded store to a partitioned one
# (aegis.partition_events(), which the maintenance worker runs after an
# upgrade; called here directly, the worker being in template1) while pgbench
# publishes: its duration and the longest publish meanwhile are printed.
set -u
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
T="$AEGIS_TEST_TMP/retupgrade-$$"
mkdir -p "$T"
UP_PID= PB_PID=
cleanup() { kill_pid "$UP_PID"; kill_pid "$PB_PID"; pg_stop_all; [ "$TESTS_FAILED" -eq 0 ] && rm -rf "$T"; }
trap cleanup EXIT
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
N=${AEGIS_UPGRADE_EVENTS:-1000000}

pg_start retupgrade "aegis.database_name = 'template1'" >/dev/null || exit 1
q "CREATE EXTENSION aegis_events VERSION '0.2.0'" || exit 1
start=$(date +%s.%N)
q "SELECT count(CASE s % 3 WHEN 0 THEN aegis.publish_agent_status('up-w' || (s % 50), 'running')
                           WHEN 1 THEN aegis.publish_node_end('up-c' || (s % 50), 'n', 'ok')
                           ELSE aegis.publish('up-topic', jsonb_build_object('n', s)) END)
   FROM generate_series(1, $N) s" >/dev/null
q "SELECT aegis.request_run('up-run', 'hello')" >/dev/null
diag "published $N events on 0.2.0 in $(echo "$(date +%s.%N) - $start" | bc) s"
q "CHECKPOINT"
BEFORE=$(q "SELECT md5(string_agg(id || payload::text, ',' ORDER BY id)) FROM aegis.events")

# The upgrade in one transaction that stays open 20 s after the ALTER.
( psql -X -qAt -v ON_ERROR_STOP=1 <<'SQL' >"$T/upgrade.out" 2>&1
\timing on
BEGIN;
ALTER EXTENSION aegis_events UPDATE TO '0.3.0';
SELECT 'altered';
SELECT pg_sleep(20);
COMMIT;
SQL
) &
UP_PID=$!
altered() { grep -q '^altered' "$T/upgrade.out"; }
check "ALTER EXTENSION UPDATE finishes on $N events" wait_for 300 altered
diag "ALTER EXTENSION aegis_events UPDATE TO '0.3.0': $(grep '^Time' "$T/upgrade.out" | sed -n '2p')"
expect_eq "a publisher commits while the upgrade's transaction is still open (lock_timeout 5 s)" 1 \
    "$(psql -X -qAt -c "SET lock_timeout = '5s'" -c "SET statement_timeout = '10s'" \
        -c "SELECT count(aegis.publish_agent_status('up-during', 'running'))" 2>&1 | tail -1)"
expect_eq "... and a reader reads meanwhile" 1 \
    "$(psql -X -qAt -c "SET lock_timeout = '5s'" -c "SELECT count(*) FROM aegis.read_stream('workspace', 'up-during', 0, 10)" 2>&1 | tail -1)"
wait "$UP_PID"; UP_PID=
grep -q '^COMMIT' "$T/upgrade.out" || diag "$(cat "$T/upgrade.out")"
expect_eq "the upgrade committed" 0.3.0 "$(q "SELECT extversion FROM pg_extension WHERE extname = 'aegis_events'")"
expect_eq "every event is unchanged" "$BEFORE" \
    "$(q "SELECT md5(string_agg(id || payload::text, ',' ORDER BY id)) FROM aegis.events WHERE stream_id <> 'up-during'")"

# retention on the upgraded store: workspace events go, the others stay
q "SELECT aegis.set_retention('workspace', '0')" >/dev/null
start=$(date +%s.%N)
REMOVED=0
for i in $(seq 1 20); do
    r=$(q "SELECT aegis.enforce_retention()")
    REMOVED=$((REMOVED + r))
    [ "$r" = 0 ] && break
done
diag "enforce_retention removed $REMOVED workspace events of $N in $(echo "$(date +%s.%N) - $start" | bc) s ($i calls)"
expect_eq "retention removed every workspace event" \
    "0 $(( (N / 3) + 1 ))" "$(q "SELECT count(*) FROM aegis.events WHERE stream_kind = 'workspace'") $REMOVED"
expect_eq "conversation and topic events all stay" "$(( N - N / 3 ))" \
    "$(q "SELECT count(*) FROM aegis.events WHERE stream_kind IN ('conversation', 'topic') AND stream_id <> 'up-run'")"

# the conversion to a partitioned store while two pgbench clients publish
expect_eq "the upgraded store is still one table" r \
    "$(q "SELECT relkind FROM pg_class WHERE oid = 'aegis.events'::regclass")"
BEFORE=$(q "SELECT md5(string_agg(id || payload::text, ',' ORDER BY id)) FROM aegis.events")
echo "SELECT aegis.publish_agent_status('up-conv', 'running');" >"$T/publish.sql"
"$PG_BIN/pgbench" -n -c 2 -j 2 -T 8 -f "$T/publish.sql" --log --log-prefix="$T/pub" >"$T/pgbench.out" 2>&1 &
PB_PID=$!
sleep 3
CONV=$(psql -X -qAt -v ON_ERROR_STOP=1 -c '\timing on' -c "SELECT aegis.partition_events()" 2>&1)
wait "$PB_PID"; PB_STATUS=$?; PB_PID=
expect_eq "aegis.partition_events() converted the store" t "$(head -1 <<<"$CONV")"
diag "aegis.partition_events() on $N events: $(grep '^Time' <<<"$CONV")"
check "pgbench published throughout without an error" test "$PB_STATUS" -eq 0
PUBLISHED=$(cat "$T"/pub.* | wc -l)
diag "pgbench: $PUBLISHED publishes in 8 s, the longest $(cat "$T"/pub.* | awk '{print $3}' | sort -n | tail -1) us; $(grep -E '^latency average' "$T/pgbench.out")"
expect_eq "aegis.events is partitioned" p "$(q "SELECT relkind FROM pg_class WHERE oid = 'aegis.events'::regclass")"
expect_eq "every event before the conversion is unchanged" "$BEFORE" \
    "$(q "SELECT md5(string_agg(id || payload::text, ',' ORDER BY id)) FROM aegis.events WHERE stream_id <> 'up-conv'")"
expect_eq "every publish is stored" "$PUBLISHED" "$(q "SELECT count(*) FROM aegis.events WHERE stream_id = 'up-conv'")"
expect_eq "none beyond events_p0's bound" 0 \
    "$(q "SELECT count(*) FROM aegis.events_p0 WHERE id >= (SELECT hi FROM aegis.event_partitions WHERE partition = 'aegis.events_p0'::regclass)")"
check "partitions above events_p0 hold the later publishes" test \
    "$(q "SELECT count(*) FROM aegis.events WHERE tableoid <> 'aegis.events_p0'::regclass")" -gt 0
expect_eq "a reader reads the converted store" 10 \
    "$(q "SELECT count(*) FROM aegis.read_stream('workspace', 'up-conv', 0, 10)")"
finish
