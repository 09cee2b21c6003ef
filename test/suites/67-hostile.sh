#!/usr/bin/env bash
# 67-hostile.sh: hostile HTTP clients against aegis-bridge (issue 19's
# "Hostile clients", issue 20 item 3's header timeout and buffer), with
# test/tools/hostile.py (loopback, bounded, killed by pid) and a real
# PostgreSQL:
#   slowloris: 500 connections sending headers a byte a second and 500
#     sending nothing are closed by the header timeout (AEGIS_HEADER_TIMEOUT_SECONDS,
#     short here; the default, 10 s, in a second round), while a normal client
#     gets its stream before they are gone; their header buffers stay small;
#   oversized inputs: a 1 MB URL, 10,000 headers and a 1 MB cookie are each
#     refused (lws 4.1.6 closes the connection without a status: no 414/431)
#     and memory returns to its baseline;
#   10,000 connections reset in the middle of a replay leak nothing (RSS of
#     the plain build, the streams' count, and LeakSanitizer on 2,000 more
#     with the ASan build).
set -u
source "$(dirname "$0")/../lib.sh"

PLAIN=${AEGIS_BRIDGE_PLAIN_BIN:-$AEGIS_TOP/bridge/aegis-bridge}
ASAN=${AEGIS_BRIDGE_BIN:-$AEGIS_TOP/bridge/aegis-bridge-asan}
HOSTILE=(python3 "$AEGIS_TOP/test/tools/hostile.py")
CLIENT=(python3 "$AEGIS_TOP/test/sse/sse_client.py")
WORK=$(mktemp -d "$AEGIS_TEST_TMP/hostile-XXXXXX")
BRIDGE_PID=
BG_PIDS=()

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill_pid "$p"; done
    kill_pid "$BRIDGE_PID"
    pg_stop_all
    if [ "$TESTS_FAILED" -eq 0 ]; then rm -rf "$WORK"; else echo "# kept $WORK"; fi
}
trap cleanup EXIT

ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ -z "${AEGIS_BRIDGE_PLAIN_BIN:-}${AEGIS_BRIDGE_BIN:-}" ]; then
    make -s -C "$AEGIS_TOP/bridge" all asan >/dev/null || { not_ok "bridge builds"; finish; exit 1; }
fi
pg_start hostile || { not_ok "postgres starts"; finish; exit 1; }
psql -qX -c "CREATE EXTENSION aegis_events" || { not_ok "extension installs"; finish; exit 1; }

q() { psql -qAtX -c "$1"; }
PORT=
B=
LOG=
BRIDGE_ENV=()
# start_bridge NAME BINARY [flags...]: logs to $WORK/NAME.log; environment from BRIDGE_ENV
start_bridge() {
    local name=$1 bin=$2; shift 2
    PORT=$(free_port)
    B=http://127.0.0.1:$PORT
    LOG=$WORK/$name.log
    env "${BRIDGE_ENV[@]}" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        DATABASE_URL="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
        "$bin" --listen "127.0.0.1:$PORT" --heartbeat-seconds 1 --no-drain "$@" >>"$LOG" 2>&1 &
    BRIDGE_PID=$!
    wait_for 30 curl -sf "$B/healthz"
}
stop_bridge() { kill_pid "$BRIDGE_PID"; BRIDGE_PID=; }
metric() { curl -s -m 5 "$B/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
jq_true() { jq -e "$@" >/dev/null 2>&1; }
rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
pg_backends() { q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"; }

q "SELECT aegis.publish_agent_status('ws-slow', 'running', 'served during the attack')" >/dev/null

# ---------------------------------------------------------------------------
# slowloris
# ---------------------------------------------------------------------------
# slowloris_round NAME SECONDS: runs the attack for SECONDS against the bridge
# started last; a normal client connects 1 s in; results in $WORK/NAME.*
slowloris_round() {
    local name=$1 secs=$2 base
    base=$(rss_kb "$BRIDGE_PID")
    "${HOSTILE[@]}" slowloris --port "$PORT" --drip 500 --silent 500 --seconds "$secs" \
        --ready "$WORK/$name.ready" >"$WORK/$name.out" 2>&1 &
    local pid=$!
    BG_PIDS+=("$pid")
    wait_for 60 test -f "$WORK/$name.ready"
    sleep 1
    "${CLIENT[@]}" get "$B/workspaces/ws-slow/stream" --events 1 --timeout 20 --stamp >"$WORK/$name.normal" 2>&1
    cat "$WORK/$name.ready.open" >"$WORK/$name.open_when_served" 2>/dev/null
    echo $(( $(rss_kb "$BRIDGE_PID") - base )) >"$WORK/$name.rss"
    wait "$pid" 2>/dev/null
    diag "$name: attack $(cat "$WORK/$name.out"); normal client $(jq -c '{status, events: (.events | length)}' "$WORK/$name.normal" 2>/dev/null), attackers still open when it was served: $(cat "$WORK/$name.open_when_served"); RSS +$(cat "$WORK/$name.rss") kB during the attack"
}

BRIDGE_ENV=(AEGIS_HEADER_TIMEOUT_SECONDS=3)
check "slowloris: the bridge starts with AEGIS_HEADER_TIMEOUT_SECONDS=3" start_bridge slow "$PLAIN"
slowloris_round slow 12
expect_eq "slowloris: a normal client gets its stream during the attack" "200 1" \
    "$(jq -r '"\(.status) \(.events | length)"' "$WORK/slow.normal" 2>/dev/null)"
check "slowloris: ... before the attackers are timed out ($(cat "$WORK/slow.open_when_served") of 1000 still open)" \
    test "$(cat "$WORK/slow.open_when_served" 2>/dev/null || echo 0)" -ge 900
expect_eq "slowloris: the 500 that send a byte a second are closed by the header timeout" 500 \
    "$(jq -r .drip_closed "$WORK/slow.out")"
expect_eq "slowloris: the 500 that send nothing are closed by the header timeout" 500 \
    "$(jq -r .silent_closed "$WORK/slow.out")"
check "slowloris: closed by the 3 s timeout: none before 2.5 s, all well before lws's 10 s (after $(jq -r '"\(.min_closed_after)-\(.max_closed_after)"' "$WORK/slow.out") s)" \
    jq_true '.min_closed_after >= 2.5 and .max_closed_after < 9' "$WORK/slow.out"
check "slowloris: 1,000 half-open connections take under 8 MB ($(cat "$WORK/slow.rss") kB)" \
    test "$(cat "$WORK/slow.rss")" -lt 8192
check "slowloris: the bridge serves /healthz after the attack" curl -sf -o /dev/null -m 5 "$B/healthz"
stop_bridge
BRIDGE_ENV=()

check "slowloris: the bridge starts with the default header timeout" start_bridge slow-default "$PLAIN"
check "slowloris: --help documents the header timeout, default 10 s" \
    bash -c "'$PLAIN' --help | grep -A1 -- '--header-timeout-seconds' | grep -q 'default 10'"
slowloris_round slow-default 16
expect_eq "slowloris: with the default (10 s), every attacker is closed within the 16 s run" "500 500" \
    "$(jq -r '"\(.drip_closed) \(.silent_closed)"' "$WORK/slow-default.out")"
check "slowloris: ... and not before 9 s" jq_true '.min_closed_after >= 9' "$WORK/slow-default.out"
stop_bridge

# ---------------------------------------------------------------------------
# oversized inputs
# ---------------------------------------------------------------------------
check "oversize: the bridge starts" start_bridge oversize "$PLAIN"
curl -s "$B/metrics" >/dev/null
"${HOSTILE[@]}" oversize --port "$PORT" --kind url >/dev/null 2>&1      # warm-up
base=$(rss_kb "$BRIDGE_PID")
for kind in url headers cookie; do
    for i in 1 2 3 4 5; do
        "${HOSTILE[@]}" oversize --port "$PORT" --kind "$kind" >"$WORK/oversize-$kind.out" 2>&1
    done
    diag "oversize $kind: $(cat "$WORK/oversize-$kind.out")"
done
# lws 4.1.6 closes a connection whose headers overflow its header buffer
# without a response and offers no callback to answer 414/431 first (see
# README, "Bounds"); what is checked: refused (never a 2xx), closed early,
# memory back to its baseline, the bridge unharmed
for kind in url headers cookie; do
    check "oversize: the oversized $kind request is refused and its connection closed" \
        jq_true '.status < 200 or .status >= 400' "$WORK/oversize-$kind.out"
done
sleep 1
after=$(rss_kb "$BRIDGE_PID")
diag "oversize: RSS $base kB before, $after kB after 15 oversized requests"
check "oversize: memory returns to its baseline (+$(( after - base )) kB, at most 1024)" \
    test $(( after - base )) -le 1024
check "oversize: the bridge still serves /healthz" curl -sf -o /dev/null -m 5 "$B/healthz"
check "oversize: nothing of the requests is logged raw" bash -c "! grep -q aaaaaaaaaaaaaaaa '$LOG'"
stop_bridge

# ---------------------------------------------------------------------------
# resets in the middle of a replay
# ---------------------------------------------------------------------------
q "SELECT count(aegis.publish_agent_status('ws-reset', 'running', repeat('r', 2000))) FROM generate_series(1, 300)" >/dev/null
check "resets: the bridge starts (plain build)" start_bridge resets "$PLAIN" --client-buffer-bytes 65536
backends=$(pg_backends)
"${HOSTILE[@]}" resets --port "$PORT" --path /workspaces/ws-reset/stream --count 1000 --read 4096 \
    >"$WORK/resets-warm.out" 2>&1
wait_for 20 metric_is aegis_bridge_sse_connections 0
warm=$(rss_kb "$BRIDGE_PID")
"${HOSTILE[@]}" resets --port "$PORT" --path /workspaces/ws-reset/stream --count 10000 --read 4096 \
    >"$WORK/resets.out" 2>&1
diag "resets: $(cat "$WORK/resets.out")"
expect_eq "resets: 10,000 connections reset mid-replay" 10000 "$(jq -r .resets "$WORK/resets.out")"
check "resets: every stream is closed afterwards" wait_for 30 metric_is aegis_bridge_sse_connections 0
end=$(rss_kb "$BRIDGE_PID")
diag "resets: RSS $warm kB after 1,000 warm-up resets, $end kB after 10,000 more"
check "resets: RSS grew under 5% over 10,000 resets (+$(( end - warm )) kB)" \
    test $(( (end - warm) * 20 )) -le "$warm"
expect_eq "resets: the PostgreSQL sessions are the same" "$backends" "$(pg_backends)"
r=$("${CLIENT[@]}" get "$B/workspaces/ws-reset/stream" --events 300 --timeout 20)
expect_eq "resets: a full replay afterwards has all 300 events" 300 "$(jq -r '.events | length' <<<"$r" 2>/dev/null)"
stop_bridge

check "resets: the bridge starts (ASan build)" start_bridge resets-asan "$ASAN" --client-buffer-bytes 65536
"${HOSTILE[@]}" resets --port "$PORT" --path /workspaces/ws-reset/stream --count 2000 --read 4096 \
    >"$WORK/resets-asan.out" 2>&1
wait_for 30 metric_is aegis_bridge_sse_connections 0
stop_bridge
check "resets: no leak or error from ASan/UBSan after 2,000 resets" \
    bash -c "! grep -qE 'LeakSanitizer|AddressSanitizer|runtime error' '$WORK/resets-asan.log'"

finish
