#!/usr/bin/env bash
# 12-property: the extension's property test through a real server.
# PROPERTY_COUNT (default 100000) generated payloads (test/property/
# payloads.py, seed PROPERTY_SEED, default 1) go through
# aegis.validate_workspace_event / validate_conversation_event and the
# publish functions (publish_workspace_event, publish_conversation_event,
# publish).  Each is either accepted and read back identical -- equal as
# jsonb and byte for byte to what PostgreSQL's own jsonb construction builds
# (payload || {"event_type": ...}: the differential test of
# payload_add_string) -- or refused with SQLSTATE class 22 or 23 and a
# message; validation and publish agree; the server log shows no crash.
source "$(dirname "$0")/../lib.sh"
trap pg_stop_all EXIT
cd "$AEGIS_TOP"
count=${PROPERTY_COUNT:-100000}
seed=${PROPERTY_SEED:-1}

pg_start prop
log="$AEGIS_TEST_TMP/pg-prop-$$/server.log"
psql -qX -c "CREATE DATABASE prop" && export PGDATABASE=prop
psql -qX -v ON_ERROR_STOP=1 -f test/property/setup.sql >/dev/null || { not_ok "setup"; finish; }
python3 test/property/payloads.py "$count" "$seed" \
    | psql -qX -v ON_ERROR_STOP=1 -c "COPY prop FROM STDIN" || { not_ok "load the payloads"; finish; }
expect_eq "$count payloads generated (seed $seed)" "$count" "$(psql -XAt -c 'SELECT count(*) FROM prop')"

start=$(date +%s)
chunk=10000
for ((lo = 0; lo < count; lo += chunk)); do
    psql -qX -v ON_ERROR_STOP=1 -c "SELECT run_props($lo, $((lo + chunk)))" >/dev/null \
        || { not_ok "run payloads $lo.. (the driver failed)"; finish; }
done
diag "ran $count payloads in $(( $(date +%s) - start )) s"
psql -qX -c "CREATE INDEX ON outcome (i, step)" -c "ANALYZE outcome" -c "ANALYZE prop" -c "ANALYZE readback"
q() { psql -XAt -c "$1"; }

# The numbers
q "SELECT kind, step, CASE WHEN state = 'ok' THEN 'ok' ELSE left(state, 2) || 'xxx' END AS result, count(*)
     FROM outcome JOIN prop USING (i) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3" | sed 's/^/# /'
q "SELECT state, count(*) FROM outcome WHERE state <> 'ok' GROUP BY 1 ORDER BY 2 DESC" | sed 's/^/#   /'

expect_eq "every refusal is of class 22 or 23" "" \
    "$(q "SELECT i || ' ' || step || ' ' || state || ': ' || left(msg, 200) FROM outcome
           WHERE state <> 'ok' AND left(state, 2) NOT IN ('22', '23') LIMIT 5")"
expect_eq "every refusal has a message" 0 \
    "$(q "SELECT count(*) FROM outcome WHERE state <> 'ok' AND coalesce(msg, '') = ''")"
expect_eq "every parsed payload was validated or published" 0 \
    "$(q "SELECT count(*) FROM outcome o JOIN prop p USING (i) WHERE o.step = 'parse' AND o.state = 'ok'
           AND p.kind <> 'conversation' AND NOT EXISTS (SELECT FROM outcome x WHERE x.i = o.i AND x.step = 'publish')")"
# validation and publish agree (publish adds only the size limit, 22001)
expect_eq "validate and publish give the same answer" "" \
    "$(q "SELECT v.i || ' validate ' || v.state || ' publish ' || p.state || ': ' || left(coalesce(p.msg, v.msg), 200)
           FROM outcome v JOIN outcome p ON p.i = v.i AND p.step = 'publish'
          WHERE v.step = 'validate' AND v.state <> p.state AND p.state <> '22001' LIMIT 5")"
accepted=$(q "SELECT count(*) FROM outcome WHERE step = 'publish' AND state = 'ok'")
refused=$(q "SELECT count(*) FROM outcome WHERE state <> 'ok'")
diag "accepted $accepted publishes; refused $refused steps"
check "a fair share of payloads is accepted ($accepted) and of steps refused ($refused)" \
    test "$accepted" -ge $((count / 5)) -a "$refused" -ge $((count / 5))
expect_eq "every accepted payload was read back" "$accepted" "$(q "SELECT count(*) FROM readback")"
expect_eq "every accepted payload reads back equal (as jsonb)" "" \
    "$(q "SELECT i FROM readback WHERE a IS DISTINCT FROM b LIMIT 5")"
expect_eq "every accepted payload reads back as the same text" "" \
    "$(q "SELECT i FROM readback WHERE a::text IS DISTINCT FROM b::text LIMIT 5")"
# byte for byte: the stored jsonb (payload_add_string, pushJsonbValue) and
# PostgreSQL's own (jsonb_concat, jsonb_build_object), read off the pages
bytes=$(q "SELECT count(*) FILTER (WHERE t_attrs[2] = t_attrs[3]) || ' ' || count(*)
             FROM generate_series(0, pg_relation_size('readback') / 8192 - 1) blk,
                  heap_page_item_attrs(get_raw_page('readback', blk::int), 'readback'::regclass, true)
            WHERE t_attrs IS NOT NULL")
expect_eq "every accepted payload is byte for byte what PostgreSQL builds" "$accepted $accepted" "$bytes"
q "SELECT 'longest accepted payload: ' || max(pg_column_size(a)) || ' bytes; refusals for stack depth (54001): ' ||
          (SELECT count(*) FROM outcome WHERE state = '54001') FROM readback" | sed 's/^/# /'

check "the server is up" psql -XAtc "SELECT 1" -o /dev/null
check "no crash, assertion failure or PANIC in the server log" \
    bash -c "! grep -E 'TRAP|PANIC|terminated by signal|server process .* was terminated|leak' '$log'"
finish
