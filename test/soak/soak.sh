#!/bin/bash
# test/soak/soak.sh: the soak test (`make soak`, SOAK_MINUTES=30 by default;
# suite 90-soak runs it for 2 minutes).  Everything runs together against real
# parts, loopback only, for SOAK_MINUTES:
#   - a throwaway PostgreSQL (test/lib.sh pg_start) with the extension and
#     track_commit_timestamp on;
#   - publishers: pgbench at a steady SOAK_RATE transactions/s (-R, -T: it
#     stops by itself), each transaction one workspace event on one of
#     SOAK_STREAMS streams and one event on Kafka topic "soak", plus a row in
#     soak.published (the ground truth, written in the same transaction);
#   - one bridge (the plain build, bridge/aegis-bridge: ASan is too slow to
#     soak with) serving SSE, draining to a real Kafka broker
#     (test/kafka/broker.sh) and consuming topic "soak" with a SQL handler
#     (--consumer) that inserts into soak.consumed (primary key: a message
#     applied twice becomes a dead letter);
#   - SOAK_CLIENTS SSE client slots (soak_clients.py) connecting, resuming
#     with Last-Event-ID and disconnecting continuously;
#   - retention, when the installed extension has aegis.set_retention: a
#     SOAK_KEEP_SECONDS policy on every stream kind, enforced every 10 s;
#   - a sampler every 10 s: the bridge's RSS and fds (/proc), PostgreSQL
#     backends, table sizes, drain lag (aegis.drain_status()), consumer
#     progress, SSE connections.
# At the end (publishers stopped) every client catches up, the drain and the
# consumer finish, and soak_check.py checks: every client life got every event
# of its stream in order with no gap and no duplicate across reconnects, every
# topic event is in Kafka (distinct aegis-event-id headers, read with kcat),
# the consumer applied each once, the bridge's RSS grew < 5% after warm-up;
# it draws soak.png and prints one verdict line.  Output in SOAK_OUT
# (default test/out/soak).  Every process started here is bounded and killed
# by pid.
set -u
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
source "$AEGIS_TOP/test/kafka/lib.sh"

SOAK_MINUTES=${SOAK_MINUTES:-30}
SOAK_RATE=${SOAK_RATE:-40}              # publishing transactions per second
SOAK_STREAMS=${SOAK_STREAMS:-40}
SOAK_CLIENTS=${SOAK_CLIENTS:-60}
SOAK_KEEP_SECONDS=${SOAK_KEEP_SECONDS:-60}
SOAK_OUT=${SOAK_OUT:-$AEGIS_TOP/test/out/soak}
BRIDGE=${AEGIS_BRIDGE_PLAIN:-$AEGIS_TOP/bridge/aegis-bridge}
CHECK_PY=${SOAK_CHECK_PYTHON:-/usr/bin/python3}   # Debian's, with python3-matplotlib
HERE=$AEGIS_TOP/test/soak

case $SOAK_MINUTES in
    '' | *[!0-9]* | 0) echo "soak: SOAK_MINUTES must be a positive whole number, got '$SOAK_MINUTES'" >&2; exit 2 ;;
esac
LOAD_S=$((SOAK_MINUTES * 60))
# warm-up: a quarter of the run, at least 60 s, at most 5 min and half the run
WARMUP_S=$((LOAD_S / 4)); [ "$WARMUP_S" -lt 60 ] && WARMUP_S=60; [ "$WARMUP_S" -gt 300 ] && WARMUP_S=300; [ "$WARMUP_S" -gt $((LOAD_S / 2)) ] && WARMUP_S=$((LOAD_S / 2))

rm -rf "$SOAK_OUT"; mkdir -p "$SOAK_OUT"
T=$SOAK_OUT
BG_PIDS=()
BR_PID=

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill_pid "$p"; done
    kill_pid "$BR_PID"
    kafka_stop_all
    pg_stop_all
    rm -rf "$T/kafka/data"
}
trap cleanup EXIT

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# ---- set-up ----

[ -x "$BRIDGE" ] || make -s -C "$AEGIS_TOP/bridge" all >"$T/build.log" 2>&1 \
    || { cat "$T/build.log"; not_ok "soak: the bridge builds"; finish; exit 1; }
"$CHECK_PY" -c 'import matplotlib' 2>/dev/null \
    || { not_ok "soak: $CHECK_PY has matplotlib (scripts/install-deps.sh installs python3-matplotlib)"; finish; exit 1; }
ulimit -n 4096 2>/dev/null || true
diag "soak: $SOAK_MINUTES min, $SOAK_RATE tx/s on $SOAK_STREAMS streams, $SOAK_CLIENTS client slots; load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; output $T"

pg_start soak "track_commit_timestamp = on" >/dev/null || { not_ok "soak: PostgreSQL starts"; finish; exit 1; }
q "CREATE EXTENSION aegis_events" || { not_ok "soak: extension installs"; finish; exit 1; }
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL || { not_ok "soak: soak schema"; finish; exit 1; }
CREATE SCHEMA soak;
CREATE SEQUENCE soak.seq;
-- the ground truth: one row per publishing transaction, in that transaction
CREATE TABLE soak.published (
    n        bigint PRIMARY KEY,
    stream   int    NOT NULL,
    ws_id    bigint NOT NULL,
    topic_id bigint NOT NULL
);
-- the consumer's effects: n twice would fail (and become a dead letter)
CREATE TABLE soak.consumed (
    n        bigint PRIMARY KEY,
    part     int    NOT NULL,
    off      bigint NOT NULL
);
CREATE FUNCTION soak.pub(s int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
    n  bigint := nextval('soak.seq');
    ws bigint;
    tp bigint;
BEGIN
    ws := aegis.publish_workspace_event('soak-' || s, 'agent_status',
              jsonb_build_object('status', 'running', 'item_index', n, 'agent', 'soak',
                                 'message', 'soak event ' || n));
    tp := aegis.publish('soak', jsonb_build_object('n', n, 'stream', s, 'pad', repeat('x', 200)),
                        'soak-' || s, jsonb_build_object('src', 'soak'));
    INSERT INTO soak.published VALUES (n, s, ws, tp);
END;
\$\$;
CREATE FUNCTION soak.consume(event jsonb, meta jsonb) RETURNS void LANGUAGE sql AS \$\$
    INSERT INTO soak.consumed
    VALUES ((event->>'n')::bigint, (meta->>'partition')::int, (meta->>'offset')::bigint)
\$\$;
SQL

# retention when the extension has it (helper "retention" adds it)
KEEP=0
RET_NOTE="aegis.set_retention is not in the installed extension"
if [ "$(q "SELECT to_regprocedure('aegis.set_retention(text,interval)') IS NOT NULL")" = t ]; then
    if q "SELECT aegis.set_retention('*', '$SOAK_KEEP_SECONDS seconds')" >/dev/null 2>"$T/retention.err"; then
        KEEP=$SOAK_KEEP_SECONDS; RET_NOTE=""
    else
        not_ok "soak: aegis.set_retention('*', '$SOAK_KEEP_SECONDS seconds'): $(head -1 "$T/retention.err")"
        RET_NOTE="set_retention failed"
    fi
fi
ENFORCE=$(q "SELECT to_regprocedure('aegis.enforce_retention()') IS NOT NULL")
diag "soak: retention ${RET_NOTE:-on, keep $KEEP s}"

kafka_start "$T/kafka" >/dev/null || { not_ok "soak: Kafka broker starts"; finish; exit 1; }

PORT=$(free_port)
KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP \
DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
    "$BRIDGE" --listen "127.0.0.1:$PORT" --heartbeat-seconds 5 \
    --consumer 'group=soak topics=soak handler=soak.consume batch=100 poll_timeout=1.0' \
    >"$T/bridge.out" 2>"$T/bridge.log" &
BR_PID=$!
healthy() { curl -sf "http://127.0.0.1:$PORT/healthz" | grep -q '"kafka":"up"'; }
check "soak: the bridge is up with Kafka" wait_for 60 healthy || { finish; exit 1; }
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }

# ---- the sampler: one JSON line every 10 s ----

sample() {
    local rss fds m
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$BR_PID/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$BR_PID/fd" 2>/dev/null | wc -l)
    m=$(metric aegis_bridge_sse_connections); m=${m%.*}
    q "SELECT json_build_object(
           't', extract(epoch FROM clock_timestamp()),
           'rss_kb', ${rss:-0}, 'fds', $fds, 'sse_clients', ${m:-0},
           'backends', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
           'events_bytes', pg_total_relation_size('aegis.events'),
           'other_bytes', pg_total_relation_size('soak.published') + pg_total_relation_size('soak.consumed')
                          + pg_total_relation_size('aegis.consumer_offsets'),
           'events_live', (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'aegis.events'::regclass),
           'published', (SELECT last_value FROM soak.seq WHERE is_called)::bigint,
           'consumed', (SELECT count(*) FROM soak.consumed),
           'pending', d.pending_events,
           'lag_s', coalesce(extract(epoch FROM d.oldest_pending_age), 0),
           'cursor', d.cursor_position)
       FROM aegis.drain_status() d"
}
sampler() {
    local next=$(($(date +%s) + 10))
    while alive "$BR_PID"; do
        sleep $((next - $(date +%s) > 0 ? next - $(date +%s) : 0))
        next=$((next + 10))
        sample >>"$T/samples.jsonl" 2>>"$T/sampler.err"
        if [ "$ENFORCE" = t ] && [ "$KEEP" -gt 0 ]; then
            q "SELECT aegis.enforce_retention()" >>"$T/retention.log" 2>&1
        fi
    done
}

# ---- load ----

START=$(date +%s.%N)
sampler &
SAMPLER=$!; BG_PIDS+=("$SAMPLER")

cat >"$T/pub.sql" <<SQL
\set s random(1, $SOAK_STREAMS)
SELECT soak.pub(:s);
SQL
"$PG_BIN/pgbench" -n -c 4 -j 2 -R "$SOAK_RATE" -T "$LOAD_S" -P 60 -f "$T/pub.sql" \
    >"$T/pgbench.log" 2>&1 &
PUB=$!; BG_PIDS+=("$PUB")

python3 "$HERE/soak_clients.py" "http://127.0.0.1:$PORT" --streams "$SOAK_STREAMS" \
    --clients "$SOAK_CLIENTS" --stop "$T/final.json" --out "$T/clients.jsonl" \
    --deadline $((LOAD_S + 180)) --seed "$SOAK_MINUTES" 2>"$T/clients.err" &
CLIENTS=$!; BG_PIDS+=("$CLIENTS")

wait "$PUB"
PUB_RC=$?
LOAD_END=$(date +%s.%N)
expect_eq "soak: pgbench ran for ${SOAK_MINUTES} min and exited 0" 0 "$PUB_RC"
grep -E '^(number of transactions actually processed|number of failed|latency average|tps)' "$T/pgbench.log" \
    | sed 's/^/# pgbench: /'
check "soak: the bridge is still running after the load" alive "$BR_PID"

# ---- the end: clients catch up, drain and consumer finish ----

q "SELECT coalesce(json_object_agg(stream, last), '{}') FROM
       (SELECT stream, max(ws_id) AS last FROM soak.published GROUP BY stream) s" >"$T/final.json.tmp"
mv "$T/final.json.tmp" "$T/final.json"
wait "$CLIENTS"
expect_eq "soak: the client tool exited 0" 0 "$?"
drained() { [ "$(q "SELECT pending_events FROM aegis.drain_status()")" = 0 ]; }
consumed_all() { [ "$(q "SELECT (SELECT count(*) FROM soak.consumed) = (SELECT count(*) FROM soak.published)")" = t ]; }
check "soak: the drain delivered everything after the load" wait_for 180 drained
check "soak: the consumer applied everything after the load" wait_for 180 consumed_all
sample >>"$T/samples.jsonl" 2>>"$T/sampler.err"
kill_pid "$SAMPLER"
expect_eq "soak: the bridge dropped no SSE client as too slow" 0 "$(metric aegis_bridge_sse_drops_total | cut -d. -f1)"
curl -s "http://127.0.0.1:$PORT/metrics" >"$T/metrics.txt"

# ---- outputs for the check ----

q "COPY (SELECT n, stream, ws_id, topic_id,
                extract(epoch FROM pg_xact_commit_timestamp(xmin))
           FROM soak.published ORDER BY n) TO STDOUT WITH (FORMAT csv)" >"$T/published.csv"
q "SELECT count(*) || ' ' || count(DISTINCT n) || ' ' ||
          (SELECT count(*) FROM aegis.dead_letters) FROM soak.consumed" >"$T/consumed.txt"
timeout 300 kcat -C -b "$KAFKA_TEST_BOOTSTRAP" -t soak -J -e -o beginning -q >"$T/kafka.jsonl" 2>"$T/kcat.err"
REMOVED=$( [ "$KEEP" -gt 0 ] && q "SELECT removed_total FROM aegis.retention_state" 2>/dev/null || echo 0)
if [ "$KEEP" -gt 0 ] && [ "$LOAD_S" -gt $((KEEP + 30)) ]; then
    check "soak: retention removed events older than $KEEP s (${REMOVED:-0} rows)" test "${REMOVED:-0}" -gt 0
fi
jq -n --argjson start "$START" --argjson load_end "$LOAD_END" --argjson warmup "$WARMUP_S" \
    --argjson keep "$KEEP" --arg note "$RET_NOTE" --argjson removed "${REMOVED:-0}" \
    --argjson clients "$SOAK_CLIENTS" --argjson streams "$SOAK_STREAMS" --argjson rate "$SOAK_RATE" \
    --arg bridge "$(basename "$BRIDGE") (plain build)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{start: $start, load_end: $load_end, warmup_s: $warmup, retention_keep_s: $keep,
      retention_note: $note, retention_removed: $removed, clients: $clients, streams: $streams,
      rate: $rate, bridge: $bridge, loadavg_end: $load}' >"$T/run.json"

# ---- the bridge stops cleanly ----

kill -TERM "$BR_PID"
for _ in $(seq 1 300); do alive "$BR_PID" || break; sleep 0.1; done
if alive "$BR_PID"; then kill -KILL "$BR_PID"; wait "$BR_PID" 2>/dev/null; BR_RC=124; else wait "$BR_PID"; BR_RC=$?; fi
BR_PID=
expect_eq "soak: the bridge exits 0 on SIGTERM after the soak" 0 "$BR_RC"
expect_eq "soak: the bridge logged no error" 0 "$(grep -c 'level=error' "$T/bridge.log")"

# ---- the check, the chart, the verdict ----

"$CHECK_PY" "$HERE/soak_check.py" "$T" >"$T/check.out" 2>"$T/check.err"
cat "$T/check.out"
[ -s "$T/check.err" ] && sed 's/^/# /' "$T/check.err"
TESTS_PASSED=$((TESTS_PASSED + $(grep -c '^ok - ' "$T/check.out")))
TESTS_FAILED=$((TESTS_FAILED + $(grep -c '^not ok - ' "$T/check.out")))
grep -q '^# VERDICT: ' "$T/check.out" || not_ok "soak: soak_check.py printed a verdict ($(tail -1 "$T/check.err" 2>/dev/null))"
finish
