#!/usr/bin/env bash
# 10-extension: the extension's pg_regress suites and isolation specs
# (make installcheck) against a throwaway cluster; one ok/not ok per test.
source "$(dirname "$0")/../lib.sh"
trap pg_stop_all EXIT
cd "$AEGIS_TOP"

pg_start ext
rm -rf results output_iso regression.diffs regression.out
make -s -o bridge installcheck >"$AEGIS_TEST_TMP/installcheck.$$.log" 2>&1
status=$?
# pg_regress prints "test name ... ok" / "... FAILED" per test
while read -r line; do
    name=$(echo "$line" | awk '{print $2}')
    case "$line" in
        *" ok "*|*" ok") ok "pg_regress $name" ;;
        *FAILED*) not_ok "pg_regress $name" ;;
    esac
done < <(grep -E '^(test|     ) ' "$AEGIS_TEST_TMP/installcheck.$$.log" | grep -E '\.\.\. ')
grep -qE 'All [0-9]+ tests passed' "$AEGIS_TEST_TMP/installcheck.$$.log" || {
    diag "installcheck exit status $status"
    cat regression.diffs output_iso/regression.diffs 2>/dev/null | head -80 | sed 's/^/# /'
}
check "installcheck exit status 0" test "$status" -eq 0
log="$AEGIS_TEST_TMP/pg-ext-$$/server.log"
check "no reference leaks or assertion failures in the server log" \
    bash -c "! grep -E 'leak|TRAP|PANIC|server process .* was terminated' '$log'"

# Stream readers use the stream index whatever the statistics say: with a
# few big streams analyzed, a generic plan of "stream_id = $5 AND id > $1
# ORDER BY id" walks the primary key through every event (seen: 3 ms per
# replay of a new stream in bench-sse).
psql -qX -c "CREATE DATABASE plans" && export PGDATABASE=plans
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION aegis_events;
SELECT count(aegis.publish_agent_status('big-' || s, 'running')) FROM generate_series(1, 3) s, generate_series(1, 3100);
ANALYZE aegis.events;
SQL
# aegis.events is partitioned: the scans of an index are summed over its
# partitions' indexes.
idx_scans() { psql -XAt -c "SELECT pg_stat_force_next_flush()" -c "SELECT string_agg(i || '=' || n, ' ' ORDER BY i) FROM (SELECT i, sum(s.idx_scan) AS n FROM unnest(ARRAY['events_pkey', 'events_stream_idx']) i, pg_partition_tree(('aegis.' || i)::regclass) t JOIN pg_stat_user_indexes s ON s.indexrelid = t.relid GROUP BY i) x" | tail -1; }
before=$(idx_scans)
out=$(psql -XAt -c "SELECT count(*) FROM aegis.read_stream('workspace', 'new-stream', 0, 200)" \
    -c "SELECT aegis.stream_position('workspace', 'new-stream')" \
    -c "SELECT count(*) FROM aegis.read_stream('workspace', 'big-2', 3000, 200)" \
    -c "SELECT aegis.stream_position('workspace', 'big-2') - aegis.stream_position('workspace', 'big-1')")
after=$(idx_scans)
expect_eq "stream readers answer right beside big analyzed streams" "0 0 200 3100" "$(echo $out)"
pk() { sed -E 's/.*events_pkey=([0-9]+).*/\1/' <<<"$1"; }
st() { sed -E 's/.*events_stream_idx=([0-9]+).*/\1/' <<<"$1"; }
expect_eq "stream readers never scan the primary key ($before -> $after)" "$(pk "$before")" "$(pk "$after")"
check "stream readers scan the stream index ($before -> $after)" test "$(st "$after")" -ge $(( $(st "$before") + 5 ))
unset PGDATABASE

# Without shared_preload_libraries, CREATE EXTENSION fails with a clear hint.
pg_start nopreload "shared_preload_libraries = ''"
msg=$(psql -X -v ON_ERROR_STOP=1 -c "CREATE EXTENSION aegis_events" 2>&1)
check "CREATE EXTENSION without preload fails" test $? -ne 0
check "the error names shared_preload_libraries" grep -q "must be loaded via shared_preload_libraries" <<<"$msg"
check "the hint says what to set" grep -q "Add aegis_events to shared_preload_libraries" <<<"$msg"

# DROP EXTENSION while the maintenance worker makes and drops partitions
# every 10 ms: the worker locks the extension first, as DROP does, so the
# two never deadlock (without that lock: 2 deadlocks in 40 cycles).
pg_start dropext "aegis.maintenance_naptime = 10" "aegis.partition_width = 50" \
    "aegis.retention_interval = 1" >/dev/null
failed=0
for i in $(seq 1 30); do
    psql -XAtq -v ON_ERROR_STOP=1 -c "CREATE EXTENSION aegis_events" \
        -c "SELECT aegis.set_retention('workspace', '0')" \
        -c "SELECT count(aegis.publish_agent_status('w', 'running')) FROM generate_series(1, 300)" \
        -c "SELECT pg_sleep(random() * 0.05)" \
        -c "DROP EXTENSION aegis_events CASCADE" >/dev/null 2>&1 || {
        failed=$((failed + 1)); psql -XAtq -c "DROP EXTENSION IF EXISTS aegis_events CASCADE" >/dev/null 2>&1; }
done
expect_eq "30 cycles of CREATE EXTENSION, publishing, DROP EXTENSION beside the worker" 0 "$failed"
log="$AEGIS_TEST_TMP/pg-dropext-$$/server.log"
expect_eq "no deadlock and no worker error in the server log" 0 "$(grep -c 'ERROR' "$log")"
finish
