#!/usr/bin/env bash
# 64-dos.sh: denial of service against aegis-bridge (issue 20, items 1-4),
# against a real PostgreSQL and a real Kafka broker, with the hostile clients
# of test/tools/hostile.py (loopback, bounded, killed by pid):
#   1 file-descriptor exhaustion: under `ulimit -n 256`, 1,000 connections;
#     CPU and log lines stay bounded, the PostgreSQL and Kafka sessions stay,
#     /healthz and new streams are served as soon as the clients leave;
#   2 replay memory: 20 clients that never read a stream of ~900 kB events;
#     peak RSS within clients x --client-buffer-bytes + a constant;
#   3 --max-clients-per-ip (AEGIS_MAX_CLIENTS_PER_IP), and a client that
#     takes no byte while data waits is dropped after a few heartbeats;
#   4 PostgreSQL: a blocked run request delays neither new streams nor
#     /metrics (a pool, AEGIS_PG_POOL_SIZE), a statement_timeout ends it
#     (AEGIS_STATEMENT_TIMEOUT_MS), and /metrics reads the store at most
#     about once a second however often it is asked.
# The new settings are given as environment variables, which an older bridge
# ignores, so the same checks show what it does. The plain build runs here
# (CPU and RSS are measured); the ASan build runs in 60 and 67.
set -u
source "$(dirname "$0")/../lib.sh"
source "$AEGIS_TOP/test/kafka/lib.sh"

BIN=${AEGIS_BRIDGE_PLAIN_BIN:-$AEGIS_TOP/bridge/aegis-bridge}
HOSTILE=(python3 "$AEGIS_TOP/test/tools/hostile.py")
CLIENT=(python3 "$AEGIS_TOP/test/sse/sse_client.py")
WORK=$(mktemp -d "$AEGIS_TEST_TMP/dos-XXXXXX")
BRIDGE_PID=
BG_PIDS=()
HZ=$(getconf CLK_TCK)

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill_pid "$p"; done
    kill_pid "$BRIDGE_PID"
    kafka_stop_all
    pg_stop_all
    rm -rf "$WORK/kafka/data"
    if [ "$TESTS_FAILED" -eq 0 ]; then rm -rf "$WORK"; else echo "# kept $WORK"; fi
}
trap cleanup EXIT

ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"     # the clients' side
if [ -z "${AEGIS_BRIDGE_PLAIN_BIN:-}" ]; then
    make -s -C "$AEGIS_TOP/bridge" all >/dev/null || { not_ok "bridge builds"; finish; exit 1; }
fi
pg_start dos || { not_ok "postgres starts"; finish; exit 1; }
psql -qX -c "CREATE EXTENSION aegis_events" || { not_ok "extension installs"; finish; exit 1; }
kafka_start "$WORK/kafka" || { not_ok "kafka broker starts"; finish; exit 1; }
KAFKA_PORT=${KAFKA_TEST_BOOTSTRAP##*:}

q() { psql -qAtX -c "$1"; }
PORT=
B=
LOG=
# start_bridge NAME FDLIMIT [flags...]: the bridge under `ulimit -n FDLIMIT`,
# logging to $WORK/NAME.log; extra environment from BRIDGE_ENV (array)
start_bridge() {
    local name=$1 fds=$2; shift 2
    PORT=$(free_port)
    B=http://127.0.0.1:$PORT
    LOG=$WORK/$name.log
    (
        ulimit -n "$fds"
        exec env "${BRIDGE_ENV[@]}" \
            DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
            "$BIN" --listen "127.0.0.1:$PORT" "$@"
    ) >>"$LOG" 2>&1 &
    BRIDGE_PID=$!
    wait_for 30 curl -sf "$B/healthz"
}
stop_bridge() { kill_pid "$BRIDGE_PID"; BRIDGE_PID=; }
BRIDGE_ENV=()
metric() { curl -s -m 5 "$B/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
lines() { wc -l <"$LOG"; }
# the PostgreSQL sessions of the bridge (every client backend but ours)
pg_sessions() {
    q "SELECT string_agg(pid::text || '@' || backend_start::text, ',' ORDER BY pid)
         FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
}
# the bridge's TCP connections to the broker, by local port
kafka_sessions() {
    ss -Htnp state established "( dport = :$KAFKA_PORT )" 2>/dev/null |
        awk -v pid="pid=$1," 'index($0, pid) {print $3}' | sort | tr '\n' ' '
}
http_code() { curl -s -o /dev/null -m "${2:-5}" -w '%{http_code}' "${@:3}" "$1"; }

# ---------------------------------------------------------------------------
# 1. file-descriptor exhaustion
# ---------------------------------------------------------------------------
check "fd: the bridge starts under ulimit -n 256 with Kafka on" \
    start_bridge fd 256 --kafka-bootstrap-servers "$KAFKA_TEST_BOOTSTRAP" --heartbeat-seconds 1
q "SELECT aegis.publish('dos-topic', '{\"n\": 0}')" >/dev/null
wait_for 30 bash -c "[ \"\$(psql -qAtX -c 'SELECT pending_events FROM aegis.drain_lag')\" = 0 ]" ||
    diag "the first event did not drain"
sessions_before=$(pg_sessions)
kafka_before=$(kafka_sessions "$BRIDGE_PID")
diag "bridge sessions: postgres $sessions_before; kafka local addresses: $kafka_before"
lines_before=$(lines)
"${HOSTILE[@]}" hold --port "$PORT" --count 1000 --seconds 60 --ready "$WORK/fd.ready" \
    --until "$WORK/fd.release" >"$WORK/fd.hold" 2>&1 &
HOLD_PID=$!
BG_PIDS+=("$HOLD_PID")
wait_for 60 test -f "$WORK/fd.ready"
diag "connections opened: $(cat "$WORK/fd.ready" 2>/dev/null)"
sleep 1
t0=$(cpu_ticks "$BRIDGE_PID"); s0=$(date +%s.%N)
sleep 5
t1=$(cpu_ticks "$BRIDGE_PID"); s1=$(date +%s.%N)
lines_full=$(( $(lines) - lines_before ))
cpu_pct=$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v a="$s0" -v b="$s1" 'BEGIN {printf "%.1f", 100 * t / hz / (b - a)}')
diag "while 1,000 connections wait: bridge CPU ${cpu_pct}% over 5 s, $lines_full log lines, $(du -k "$LOG" | cut -f1) kB of log"
check "fd: the bridge uses under 5% CPU while out of descriptors (${cpu_pct}%)" \
    awk -v p="$cpu_pct" 'BEGIN {exit !(p < 5)}'
check "fd: it logs a bounded number of lines while out of descriptors ($lines_full; at most 20)" \
    test "$lines_full" -le 20
touch "$WORK/fd.release"
wait "$HOLD_PID" 2>/dev/null
diag "hold: $(cat "$WORK/fd.hold")"
check "fd: /healthz answers once the clients have left" wait_for 20 curl -sf -m 2 "$B/healthz"
q "SELECT aegis.publish_agent_status('ws-fd', 'running', 'after the flood')" >/dev/null
r=$("${CLIENT[@]}" get "$B/workspaces/ws-fd/stream" --events 1 --timeout 10)
expect_eq "fd: a new stream gets its events once the clients have left" "200 running" \
    "$(jq -r '"\(.status) \(.events[0].data | fromjson | .status)"' <<<"$r" 2>/dev/null)"
expect_eq "fd: the bridge kept its PostgreSQL sessions" "$sessions_before" "$(pg_sessions)"
expect_eq "fd: the bridge kept its Kafka connections" "$kafka_before" "$(kafka_sessions "$BRIDGE_PID")"
id=$(q "SELECT aegis.publish('dos-topic', '{\"n\": 1}')")
check "fd: the drain still delivers to Kafka" \
    wait_for 30 bash -c "[ \"\$(psql -qAtX -c \"SELECT aegis.cursor_position('kafka-drain')\")\" -ge $id ]"
count_line=$(grep -E 'descriptor|accept' "$LOG" | tail -1)
check "fd: the condition is logged with a count" grep -qE 'count=[0-9]+' <<<"$count_line"
stop_bridge

# ---------------------------------------------------------------------------
# 2. replay memory: 20 clients that never read ~18 MB of stream each
# ---------------------------------------------------------------------------
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || not_ok "replay: 20 events of ~900 kB published"
SELECT aegis.publish_agent_status('ws-big', 'running', repeat(md5(i::text), 28000))
  FROM generate_series(1, 20) i;
SQL
diag "ws-big: $(q "SELECT count(*) || ' events, ' || pg_size_pretty(sum(octet_length(payload::text))) FROM aegis.events WHERE stream_id = 'ws-big'")"
BUF=262144
check "replay: the bridge starts (--client-buffer-bytes $BUF)" start_bridge replay 4096 --client-buffer-bytes $BUF
curl -s "$B/metrics" >/dev/null
base_kb=$(status_kb "$BRIDGE_PID" VmRSS)
"${HOSTILE[@]}" hold --port "$PORT" --count 20 --path /workspaces/ws-big/stream --rcvbuf 4096 \
    --seconds 120 --ready "$WORK/replay.ready" --until "$WORK/replay.release" >"$WORK/replay.hold" 2>&1 &
HOLD_PID=$!
BG_PIDS+=("$HOLD_PID")
wait_for 30 test -f "$WORK/replay.ready"
wait_for 30 metric_is aegis_bridge_sse_connections 20
# settle: until the replays stop reading (two equal readings 2 s apart)
prev=-1
for i in $(seq 1 30); do
    cur=$(metric aegis_bridge_sse_replayed_events_total)
    [ "$cur" = "$prev" ] && break
    prev=$cur
    sleep 2
done
hwm_kb=$(status_kb "$BRIDGE_PID" VmHWM)
rss_kb=$(status_kb "$BRIDGE_PID" VmRSS)
limit_kb=$(( 20 * BUF / 1024 + 65536 ))
diag "replay: baseline RSS ${base_kb} kB; with 20 non-reading clients RSS ${rss_kb} kB, peak ${hwm_kb} kB; replayed events $cur; bound $limit_kb kB over baseline"
check "replay: peak RSS within 20 x client buffer + 64 MB of the baseline ($(( (hwm_kb - base_kb) / 1024 )) MB over it)" \
    test $(( hwm_kb - base_kb )) -le "$limit_kb"
touch "$WORK/replay.release"
wait "$HOLD_PID" 2>/dev/null
check "replay: the clients' streams are all closed after they leave" \
    wait_for 20 metric_is aegis_bridge_sse_connections 0
stop_bridge

# ---------------------------------------------------------------------------
# 3. per-address limit, and clients that take nothing while data waits
# ---------------------------------------------------------------------------
check "limits: --help documents --max-clients-per-ip with default 64" \
    bash -c "'$BIN' --help | grep -A2 -- '--max-clients-per-ip' | grep -q 'default 64'"
BRIDGE_ENV=(AEGIS_MAX_CLIENTS_PER_IP=5)
check "limits: the bridge starts with AEGIS_MAX_CLIENTS_PER_IP=5" start_bridge perip 4096 --heartbeat-seconds 1
"${HOSTILE[@]}" hold --port "$PORT" --count 5 --path /workspaces/ws-ip/stream --seconds 60 \
    --ready "$WORK/ip.ready" --until "$WORK/ip.release" >/dev/null 2>&1 &
HOLD_PID=$!
BG_PIDS+=("$HOLD_PID")
wait_for 30 test -f "$WORK/ip.ready"
wait_for 10 metric_is aegis_bridge_sse_connections 5
expect_eq "limits: a 6th stream from 127.0.0.1 is refused with 429" 429 \
    "$(http_code "$B/workspaces/ws-ip/stream" 3)"
expect_eq "limits: a stream from another address (127.0.0.2) is served" 200 \
    "$(http_code "$B/workspaces/ws-ip/stream" 3 --interface 127.0.0.2)"
expect_eq "limits: the refusal has a one-line body" 1 \
    "$(curl -s -m 3 "$B/workspaces/ws-ip/stream" | wc -l)"
touch "$WORK/ip.release"
wait "$HOLD_PID" 2>/dev/null
check "limits: the address's streams free their slots when they close" \
    wait_for 10 metric_is aegis_bridge_sse_connections 0
expect_eq "limits: 127.0.0.1 is served again" 200 "$(http_code "$B/workspaces/ws-ip/stream" 3)"
stop_bridge
BRIDGE_ENV=()

# a client that never reads, with data waiting below half of a large buffer
# (the old rule dropped only at half full): dropped after a few heartbeats
check "idle: the bridge starts (heartbeat 1 s, 16 MiB client buffer)" \
    start_bridge idle 4096 --heartbeat-seconds 1 --client-buffer-bytes 16777216
"${HOSTILE[@]}" hold --port "$PORT" --count 1 --path /workspaces/ws-idle/stream --rcvbuf 4096 \
    --seconds 90 --ready "$WORK/idle.ready" --until "$WORK/idle.release" >"$WORK/idle.hold" 2>&1 &
HOLD_PID=$!
BG_PIDS+=("$HOLD_PID")
wait_for 30 test -f "$WORK/idle.ready"
wait_for 10 metric_is aegis_bridge_sse_connections 1
q "SELECT count(aegis.publish_agent_status('ws-idle', 'running', repeat('x', 150000))) FROM generate_series(1, 40)" >/dev/null
check "idle: a client that takes no byte while 6 MB wait is dropped" \
    wait_for 20 metric_is aegis_bridge_sse_connections 0
expect_eq "idle: counted as a drop" 1 "$(metric aegis_bridge_sse_drops_total)"
touch "$WORK/idle.release"
wait "$HOLD_PID" 2>/dev/null
stop_bridge

# ---------------------------------------------------------------------------
# 4. PostgreSQL: a blocked run request, statement_timeout, /metrics reads
# ---------------------------------------------------------------------------
q "SELECT aegis.publish_agent_status('ws-pool', 'running', 'replayed while run requests wait')" >/dev/null
q "SELECT aegis.configure_agent('default')" >/dev/null     # runs are accepted for configured agents
BRIDGE_ENV=(AEGIS_PG_POOL_SIZE=3 AEGIS_STATEMENT_TIMEOUT_MS=2000)
check "pool: the bridge starts with AEGIS_PG_POOL_SIZE=3 AEGIS_STATEMENT_TIMEOUT_MS=2000" \
    start_bridge pool 4096 --heartbeat-seconds 1
psql -qX >/dev/null 2>&1 <<'SQL' &
BEGIN;
LOCK TABLE aegis.run_requests IN ACCESS EXCLUSIVE MODE;
SELECT pg_sleep(40);
SQL
LOCK_PID=$!
BG_PIDS+=("$LOCK_PID")
wait_for 10 bash -c "[ \"\$(psql -qAtX -c \"SELECT count(*) FROM pg_locks WHERE relation = 'aegis.run_requests'::regclass AND granted AND mode = 'AccessExclusiveLock'\")\" = 1 ]"
for i in 1 2; do
    curl -s -o /dev/null -m 30 -w '%{http_code} %{time_total}\n' \
        "$B/conversations/conv-pool-$i/stream?message=hello" >"$WORK/run$i.out" 2>&1 &
    BG_PIDS+=("$!")
done
wait_for 10 bash -c "[ \"\$(psql -qAtX -c \"SELECT count(*) FROM pg_locks WHERE relation = 'aegis.run_requests'::regclass AND NOT granted\")\" -ge 2 ]" ||
    diag "the run requests did not reach the lock"
r=$("${CLIENT[@]}" get "$B/workspaces/ws-pool/stream" --events 1 --timeout 5)
expect_eq "pool: a new stream is replayed while two run requests wait on a lock" "200 1" \
    "$(jq -r '"\(.status) \(.events | length)"' <<<"$r" 2>/dev/null)"
expect_eq "pool: /metrics answers while two run requests wait on a lock" 200 "$(http_code "$B/metrics" 5)"
wait_for 20 bash -c "test -s '$WORK/run1.out' && test -s '$WORK/run2.out'"
still_locked=$(kill -0 "$LOCK_PID" 2>/dev/null && echo yes || echo no)
diag "run requests under the lock: $(cat "$WORK/run1.out" "$WORK/run2.out" | tr '\n' ';') lock still held: $still_locked"
check "pool: statement_timeout ends a blocked run request with 5xx while the lock is still held" \
    bash -c "grep -qE '^5[0-9][0-9] ' '$WORK/run1.out' && [ '$still_locked' = yes ]"
kill_pid "$LOCK_PID"
# /metrics: the store is read at most about once a second
q "ALTER SYSTEM SET log_statement = 'all'" && q "SELECT pg_reload_conf()" >/dev/null
sleep 1
srvlog=$(dirname "$(eval echo "\$PGDATA_dos")")/server.log
before=$(grep -cE 'drain_lag|drain_status' "$srvlog")
s0=$(date +%s.%N)
for i in $(seq 1 100); do curl -s -m 5 -o /dev/null "$B/metrics"; done
s1=$(date +%s.%N)
sleep 1
reads=$(( $(grep -cE 'drain_lag|drain_status' "$srvlog") - before ))
secs=$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%d", b - a + 0.999}')
q "ALTER SYSTEM RESET log_statement" && q "SELECT pg_reload_conf()" >/dev/null
diag "/metrics: 100 requests in ${secs} s read the drain status $reads times"
check "pool: 100 /metrics requests read the store at most once a second ($reads reads in ${secs} s)" \
    test "$reads" -le $(( secs + 2 ))
stop_bridge
BRIDGE_ENV=()

finish
