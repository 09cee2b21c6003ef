#!/usr/bin/env bash
# 63-sse-retention.sh: SSE resume against retention.  A client resuming
# (Last-Event-ID or ?last_event_id=) below its stream's horizon gets
# `event: reset` with {"horizon": H, "reason": "retention"}, then the
# retained events, then live ones; a resume at or above the horizon is
# unchanged; a workspace and a conversation stream.
set -u
source "$(dirname "$0")/../lib.sh"

CLIENT=(python3 "$AEGIS_TOP/test/sse/sse_client.py")
BIN=${AEGIS_BRIDGE_BIN:-$AEGIS_TOP/bridge/aegis-bridge}
WORK=$(mktemp -d "$AEGIS_TEST_TMP/sseret-XXXXXX")
BRIDGE_PID=
BG=
cleanup() {
    kill_pid "$BG"
    kill_pid "$BRIDGE_PID"
    pg_stop_all
    if [ "$TESTS_FAILED" -eq 0 ]; then rm -rf "$WORK"; else echo "# kept $WORK"; fi
}
trap cleanup EXIT

if [ -z "${AEGIS_BRIDGE_BIN:-}" ]; then
    make -s -C "$AEGIS_TOP/bridge" all >/dev/null || { not_ok "bridge builds"; finish; exit 1; }
fi
pg_start sseret || { not_ok "postgres starts"; finish; exit 1; }
psql -qX -c "CREATE EXTENSION aegis_events" || { not_ok "extension installs"; finish; exit 1; }
PORT=$(free_port)
B=http://127.0.0.1:$PORT
"$BIN" --listen "127.0.0.1:$PORT" --heartbeat-seconds 1 --no-drain >>"$WORK/bridge.log" 2>&1 &
BRIDGE_PID=$!
check "bridge starts" wait_for 30 curl -sf "$B/healthz"
q() { psql -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
get() { "${CLIENT[@]}" get "$@"; }
kinds() { jq -r '[.events[] | .event + ":" + (.id // "-")] | join(",")' <<<"$1"; }

# ---- workspace: three old events expire, two stay ----
o1=$(q "SELECT aegis.publish_agent_status('ws-r', 'running', 'old 1')")
o2=$(q "SELECT aegis.publish_agent_status('ws-r', 'running', 'old 2')")
o3=$(q "SELECT aegis.publish_agent_status('ws-r', 'running', 'old 3')")
q "SELECT aegis.set_retention('workspace', '0')" >/dev/null
expect_eq "retention removes the three old events" 3 "$(q "SELECT aegis.enforce_retention()")"
q "SELECT aegis.set_retention('workspace', NULL)" >/dev/null
n1=$(q "SELECT aegis.publish_agent_status('ws-r', 'running', 'new 1')")
n2=$(q "SELECT aegis.publish_agent_status('ws-r', 'running', 'new 2')")
expect_eq "the stream's horizon is its last removed event" "$o3" "$(q "SELECT aegis.stream_horizon('workspace', 'ws-r')")"

r=$(get "$B/workspaces/ws-r/stream" -H "Last-Event-ID: $o1" --events 3 --timeout 5)
expect_eq "stale Last-Event-ID: reset, then the retained events" "reset:-,agent_status:$n1,agent_status:$n2" "$(kinds "$r")"
expect_eq "the reset names the horizon and the reason" "{\"horizon\":$o3,\"reason\":\"retention\"}" \
    "$(jq -c '.events[0].data | fromjson' <<<"$r")"
r=$(get "$B/workspaces/ws-r/stream?last_event_id=$o2" --events 3 --timeout 5)
expect_eq "stale ?last_event_id=: the same" "reset:-,agent_status:$n1,agent_status:$n2" "$(kinds "$r")"
r=$(get "$B/workspaces/ws-r/stream" -H "Last-Event-ID: $o3" --events 2 --timeout 5)
expect_eq "resume at the horizon: no reset, the events after it" "agent_status:$n1,agent_status:$n2" "$(kinds "$r")"
r=$(get "$B/workspaces/ws-r/stream" -H "Last-Event-ID: $n1" --events 1 --timeout 5)
expect_eq "resume above the horizon: unchanged" "agent_status:$n2" "$(kinds "$r")"
r=$(get "$B/workspaces/ws-r/stream" --events 2 --timeout 5)
expect_eq "no Last-Event-ID: no reset" "agent_status:$n1,agent_status:$n2" "$(kinds "$r")"
r=$(get "$B/workspaces/ws-never/stream" -H "Last-Event-ID: 5" --timeout 1.5)
expect_eq "a stream nothing was removed from: no reset" "200 0" "$(jq -r '"\(.status) \(.events | length)"' <<<"$r")"

# reset, retained events, then live ones on the same connection
get "$B/workspaces/ws-r/stream" -H "Last-Event-ID: $o1" --events 4 --timeout 10 >"$WORK/live.json" &
BG=$!
sleep 1
n3=$(q "SELECT aegis.publish_agent_status('ws-r', 'completed', 'live')")
wait "$BG"; BG=
expect_eq "after the reset and the replay, live events follow" \
    "reset:-,agent_status:$n1,agent_status:$n2,agent_status:$n3" "$(kinds "$(cat "$WORK/live.json")")"

# ---- conversation: an old run's events expire; the current run replays ----
q "SELECT aegis.configure_agent('default', queue_timeout => '1 hour')" >/dev/null
c1=$(q "SELECT aegis.publish_node_end('conv-r', 'n1', 'ok')")
c2=$(q "SELECT aegis.publish_node_end('conv-r', 'n2', 'ok')")
q "SELECT aegis.set_retention('conversation', '0')" >/dev/null
q "SELECT aegis.enforce_retention()" >/dev/null
q "SELECT aegis.set_retention('conversation', NULL)" >/dev/null
run=$(q "SELECT aegis.request_run('conv-r', 'again')")
c3=$(q "SELECT aegis.publish_node_end('conv-r', 'n3', 'ok')")
r=$(get "$B/conversations/conv-r/stream" -H "Last-Event-ID: $c1" --events 2 --timeout 5)
expect_eq "stale conversation resume: reset, then the current run's events" "reset:-,node_end:$c3" "$(kinds "$r")"
expect_eq "the conversation's reset names its horizon" "$c2" "$(jq -r '.events[0].data | fromjson | .horizon' <<<"$r")"
r=$(get "$B/conversations/conv-r/stream" -H "Last-Event-ID: $c2" --events 1 --timeout 5)
expect_eq "conversation resume at the horizon: unchanged" "node_end:$c3" "$(kinds "$r")"
diag "run request $run"

kill_pid "$BRIDGE_PID"; BRIDGE_PID=
check "no errors in the bridge log" bash -c "! grep -E 'level=error' '$WORK/bridge.log'"
finish
