#!/usr/bin/env bash
# 60-sse-http.sh: aegis-bridge's SSE and HTTP surface against a real
# PostgreSQL with the extension, the bridge built with ASan/UBSan, and raw
# HTTP clients (curl, test/sse/sse_client.py): headers, framing, heartbeats,
# live fan-out and isolation, resume under concurrent publishing, run
# requests, finished conversations replayed then 204, CORS, bad requests,
# 1,000 subscribers, a stalled reader, /healthz and /metrics, PostgreSQL
# restart, clean shutdown.
set -u
source "$(dirname "$0")/../lib.sh"

CLIENT=(python3 "$AEGIS_TOP/test/sse/sse_client.py")
BIN=${AEGIS_BRIDGE_BIN:-$AEGIS_TOP/bridge/aegis-bridge-asan}
WORK=$(mktemp -d "$AEGIS_TEST_TMP/sse-XXXXXX")
LOG=$WORK/bridge.log
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

ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ -z "${AEGIS_BRIDGE_BIN:-}" ]; then     # incremental: rebuilds only what changed
    make -s -C "$AEGIS_TOP/bridge" all asan >/dev/null || { not_ok "bridge builds (plain and ASan)"; finish; exit 1; }
fi
pg_start sse || { not_ok "postgres starts"; finish; exit 1; }
psql -qX -c "CREATE EXTENSION aegis_events" || { not_ok "extension installs"; finish; exit 1; }
# Run requests are taken only for configured agent types (0.3.0); no worker
# runs here, and an hour's queue_timeout keeps the maintenance worker from
# failing these runs while the suite looks at them.
psql -qX -c "SELECT aegis.configure_agent('rule_37', queue_timeout => '1 hour'), aegis.configure_agent('default', queue_timeout => '1 hour')" >/dev/null \
    || { not_ok "agents configured"; finish; exit 1; }

PORT=$(free_port)
B=http://127.0.0.1:$PORT
start_bridge() {
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$BIN" --listen "127.0.0.1:$PORT" --heartbeat-seconds 1 --retry-ms 1500 \
        --cors-origin http://allowed.test --client-buffer-bytes 65536 --no-drain \
        >>"$LOG" 2>&1 &
    BRIDGE_PID=$!
    wait_for 30 curl -sf "$B/healthz"
}
q() { psql -qAtX -c "$1"; }
metric() { curl -s "$B/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
# metric_above NAME VALUE: true once the metric is above VALUE
metric_above() { [ "$(metric "$1" | cut -d. -f1)" -gt "$2" ] 2>/dev/null; }
get() { "${CLIENT[@]}" get "$@"; }

check "bridge starts and serves /healthz" start_bridge

# ---- /healthz ----
h=$(curl -s -w '\n%{http_code}' "$B/healthz")
expect_eq "healthz is 200 while PostgreSQL is connected" 200 "$(tail -1 <<<"$h")"
expect_eq "healthz body shows postgres and kafka state" "connected off" \
    "$(head -1 <<<"$h" | jq -r '.postgres + " " + .kafka')"

# ---- headers and framing ----
q "SELECT aegis.publish_checklist_item_update('ws-a', 2, 'Offset Well Identification', 'complete', 'Found 4 offset wells within 1,200 ft', 'agent')" >/dev/null
q "SELECT aegis.publish_agent_status('ws-b', 'running', 'other stream')" >/dev/null
q "SELECT aegis.publish_validation_result('ws-a', 10, 'Service list completeness', false, 'warning', '2 offset operators missing addresses')" >/dev/null
r=$(get "$B/workspaces/ws-a/stream" --events 2 --timeout 5)
expect_eq "stream status 200" 200 "$(jq -r .status <<<"$r")"
expect_eq "Content-Type: text/event-stream" "text/event-stream" "$(jq -r '.headers["content-type"]' <<<"$r")"
expect_eq "Cache-Control: no-cache" "no-cache" "$(jq -r '.headers["cache-control"]' <<<"$r")"
expect_eq "X-Accel-Buffering: no" "no" "$(jq -r '.headers["x-accel-buffering"]' <<<"$r")"
expect_eq "no CORS header without an allowed Origin" "null" "$(jq -r '.headers["access-control-allow-origin"]' <<<"$r")"
expect_eq "retry: sent once at the start" 1500 "$(jq -r .retry <<<"$r")"
expect_eq "first connect replays the workspace stream in store order" \
    "$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_id = 'ws-a'")" \
    "$(jq -r '[.events[].id] | join(",")' <<<"$r")"
expect_eq "event: is the workspace event type" "checklist_item_update validation_result" \
    "$(jq -r '[.events[].event] | join(" ")' <<<"$r")"
expect_eq "data: is the seed's payload with event_type" "checklist_item_update 2 Offset Well Identification" \
    "$(jq -r '.events[0].data | fromjson | "\(.event_type) \(.item_index) \(.item_name)"' <<<"$r")"
raw=$(curl -s -N -m 2 "$B/workspaces/ws-a/stream" || true)
check "wire format: retry line, then id/event/data lines, one line of JSON each" \
    grep -qzP '^retry: 1500\n\nid: [0-9]+\nevent: checklist_item_update\ndata: \{[^\n]*\}\n\n' <<<"$raw"

# ---- live fan-out, isolation, heartbeats ----
"${CLIENT[@]}" get "$B/workspaces/ws-live/stream" --events 3 --timeout 15 >"$WORK/live.json" &
lp=$!
"${CLIENT[@]}" get "$B/workspaces/ws-live/stream" --events 3 --timeout 15 >"$WORK/live2.json" &
lp2=$!
"${CLIENT[@]}" get "$B/workspaces/ws-quiet/stream" --timeout 3.5 >"$WORK/quiet.json" &
qp=$!
wait_for 10 sh -c "curl -s $B/metrics | grep -q '^aegis_bridge_sse_connections 3$'"
for i in 1 2 3; do
    q "SELECT aegis.publish_agent_status('ws-live', 'running', 'step $i', 0.$i)" >/dev/null
    q "SELECT aegis.publish_agent_status('ws-other', 'running', 'not for ws-live')" >/dev/null
done
wait "$lp" "$lp2" "$qp"
expect_eq "live: a subscriber gets every event of its stream in store order" \
    "$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_id = 'ws-live'")" \
    "$(jq -r '[.events[].id] | join(",")' "$WORK/live.json")"
expect_eq "live: a second subscriber of the stream gets the same events" \
    "$(jq -c '[.events[].id]' "$WORK/live.json")" "$(jq -c '[.events[].id]' "$WORK/live2.json")"
expect_eq "live: subscribers of other streams get nothing of it" 0 "$(jq '.events | length' "$WORK/quiet.json")"
check "heartbeat comments arrive on an idle stream" test "$(jq .comments "$WORK/quiet.json")" -ge 1

# ---- resume ----
ids_ws_a=$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_id = 'ws-a'")
first=${ids_ws_a%%,*}
r=$(get "$B/workspaces/ws-a/stream" -H "Last-Event-ID: $first" --events 1 --timeout 5)
expect_eq "Last-Event-ID replays only later events" "${ids_ws_a#*,}" "$(jq -r '[.events[].id] | join(",")' <<<"$r")"
r=$(get "$B/workspaces/ws-a/stream?last_event_id=$first" --events 1 --timeout 5)
expect_eq "?last_event_id= works like Last-Event-ID" "${ids_ws_a#*,}" "$(jq -r '[.events[].id] | join(",")' <<<"$r")"
cat >"$WORK/pub.sql" <<'SQL'
SELECT aegis.publish_agent_status('ws-resume', 'running', 'tick', random());
SELECT aegis.publish_agent_status('ws-noise', 'running', 'noise', random());
SQL
pgbench -n -c 4 -j 2 -t 100 -f "$WORK/pub.sql" >"$WORK/pgbench.log" 2>&1 &
pb=$!
BG_PIDS+=("$pb")
"${CLIENT[@]}" resume "$B/workspaces/ws-resume/stream" --expect 400 --chunk 37 --timeout 90 >"$WORK/resume.json"
wait "$pb"
check "publisher finished (400 events from 4 concurrent sessions)" grep -q "number of transactions actually processed: 400/400" "$WORK/pgbench.log"
expect_eq "resume under concurrent publishing: no gap, no duplicate, store order" \
    "$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_id = 'ws-resume'")" \
    "$(jq -r '.ids | map(tostring) | join(",")' "$WORK/resume.json")"
expect_eq "resume test received all 400 events" 400 "$(jq '.ids | length' "$WORK/resume.json")"
check "resume test reconnected many times" test "$(jq .connects "$WORK/resume.json")" -ge 10

# ---- live events that arrive during a long replay: held, overflow, re-read ----
# The live reader runs on its own connection, so events committed while a
# subscriber replays are held for it (bounded by --client-buffer-bytes, 64 kB
# here) and queued after the replay.  A slow client (tiny receive buffer, no
# reads for 0.6 s) keeps a 3,000-event replay (~4.5 MB, more than the kernel's
# socket buffers take) paused while 600 events (~0.9 MB) commit in one
# transaction: the held events overflow, are dropped, and a replay round sent
# after the drop reads them from the store.
q "SELECT count(aegis.publish_agent_status('ws-hold', 'running', 'history ' || i || ' of a long replay ' || repeat('x', 1500), 0.5)) FROM generate_series(1, 3000) i" >/dev/null
drops0=$(metric aegis_bridge_sse_held_drops_total)
replays0=$(metric aegis_bridge_sse_replays_total)
get "$B/workspaces/ws-hold/stream" --rcvbuf 4096 --pause 0.6 --events 3600 --timeout 60 >"$WORK/hold.json" &
hold_pid=$!
BG_PIDS+=("$hold_pid")
check "the slow subscriber's replay started" wait_for 10 metric_above aegis_bridge_sse_replays_total "${replays0%%.*}"
q "SELECT count(aegis.publish_agent_status('ws-hold', 'running', 'live ' || i || ' while the subscriber replays ' || repeat('y', 1500), 0.5)) FROM generate_series(1, 600) i" >/dev/null
wait "$hold_pid"
expect_eq "live events during a long replay: all 3,600, once each, in store order" \
    "$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_id = 'ws-hold'")" \
    "$(jq -r '[.events[].id] | join(",")' "$WORK/hold.json")"
check "held live events overflowed and were re-read from the store" \
    test "$(metric aegis_bridge_sse_held_drops_total | cut -d. -f1)" -gt "${drops0%%.*}"

# ---- conversations: run request once, id line, end after done, 204 ----
CONV="$B/conversations/conv-1/stream?message=Hello%20there&agent_id=rule37-agent&agent_type=rule_37"
r=$(get "$CONV" --timeout 1.5)
run_id=$(jq -r '.id_only[0]' <<<"$r")
expect_eq "run request recorded once" 1 "$(q "SELECT count(*) FROM aegis.run_requests WHERE conversation_id = 'conv-1'")"
expect_eq "first message is an id-only line with the run request's event id" \
    "$(q "SELECT event_id FROM aegis.run_requests WHERE conversation_id = 'conv-1'")" "$run_id"
expect_eq "run request event is in the store for agent workers" "run_request Hello there" \
    "$(q "SELECT event_type || ' ' || (payload->>'message') FROM aegis.events WHERE id = $run_id")"
r=$(get "$CONV" -H "Last-Event-ID: $run_id" --timeout 1)
expect_eq "reconnect with Last-Event-ID: still one run request" 1 "$(q "SELECT count(*) FROM aegis.run_requests")"
r=$(get "$CONV" --timeout 1)
expect_eq "same URL again while the run is open: same run, no new request" "$run_id 1" \
    "$(jq -r '.id_only[0]' <<<"$r") $(q "SELECT count(*) FROM aegis.run_requests")"
conns_before=$(metric aegis_bridge_sse_connections_total)
"${CLIENT[@]}" get "$CONV" -H "Last-Event-ID: $run_id" --timeout 15 >"$WORK/conv.json" &
cp=$!
wait_for 10 metric_above aegis_bridge_sse_connections_total "$conns_before"
q "SELECT aegis.publish_node_end('conv-1', 'initial_llm_call', 'running', 1234, '{\"role\": \"assistant\", \"content\": \"I''ll calculate the spacing...\"}')" >/dev/null
q "SELECT aegis.publish_node_end('conv-2', 'other_conversation', 'running')" >/dev/null
done_id=$(q "SELECT aegis.publish_done('conv-1', 'exec-abc-123', 'completed', 5678, 0.045, ARRAY['spacing-calculation'])")
wait "$cp"
expect_eq "conversation stream: node_end then done, nothing of other conversations" "node_end done" \
    "$(jq -r '[.events[].event] | join(" ")' "$WORK/conv.json")"
expect_eq "conversation data is the seed's {event, node, data} object" "node_end initial_llm_call assistant" \
    "$(jq -r '.events[0].data | fromjson | "\(.event) \(.node) \(.data.message.role)"' "$WORK/conv.json")"
expect_eq "server ends the response after done" true "$(jq -r .closed "$WORK/conv.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "Last-Event-ID: $done_id" "$CONV")
expect_eq "reconnect to a finished conversation gets 204" 204 "$code"
expect_eq "the 204 reconnect recorded no new run" 1 "$(q "SELECT count(*) FROM aegis.run_requests")"

# ---- a conversation opened after its run ended: the latest run, once, then 204 ----
# late_open NAME CONV AFTER TERMINAL: opens CONV without message and without
# Last-Event-ID (a dashboard opened after the run); the answer must be the
# store's events of CONV after AFTER (its latest run request, 0 if none), each
# once, in order, ending with TERMINAL, the response closed by the server; the
# EventSource's reconnect with the terminal event's id must get 204.
late_open() {
    local name=$1 conv=$2 after=$3 terminal=$4 r want runs last
    runs=$(q "SELECT count(*) FROM aegis.run_requests WHERE conversation_id = '$conv'")
    r=$(get "$B/conversations/$conv/stream" --timeout 10)
    want=$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events
              WHERE stream_kind = 'conversation' AND stream_id = '$conv' AND id > $after")
    expect_eq "$name: 200 with every event of the latest run once, in store order" "200 $want" \
        "$(jq -r '"\(.status) " + ([.events[].id] | join(","))' <<<"$r")"
    expect_eq "$name: the run ends with $terminal and the server closes the response" "$terminal true" \
        "$(jq -r '"\(.events[-1].event) \(.closed)"' <<<"$r")"
    if [ "$after" -gt 0 ]; then
        expect_eq "$name: first message is the id-only line of the latest run request" "$after" \
            "$(jq -r '.id_only | join(",")' <<<"$r")"
    else
        expect_eq "$name: no run request, no id-only line" "" "$(jq -r '.id_only | join(",")' <<<"$r")"
    fi
    last=$(jq -r '.events[-1].id' <<<"$r")
    expect_eq "$name: the reconnect with the $terminal event's id gets 204 (header and ?last_event_id=)" "204 204" \
        "$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "Last-Event-ID: $last" "$B/conversations/$conv/stream") $(
           curl -s -o /dev/null -w '%{http_code}' -m 5 "$B/conversations/$conv/stream?last_event_id=$last")"
    expect_eq "$name: opening it recorded no run request" "$runs" \
        "$(q "SELECT count(*) FROM aegis.run_requests WHERE conversation_id = '$conv'")"
}
late_open "finished conversation opened without message" conv-1 "$run_id" done
q "SELECT aegis.publish_node_end('conv-late', 'system_prompt_node', 'running', 412, '{\"role\": \"system\", \"content\": \"You are the Rule 37 agent.\"}')
   ; SELECT aegis.publish_node_end('conv-late', 'initial_llm_call', 'running', 1234, '{\"role\": \"assistant\", \"content\": \"I''ll calculate the spacing...\"}')
   ; SELECT aegis.publish_node_end('conv-other', 'not_for_conv_late', 'running')
   ; SELECT aegis.publish_done('conv-late', 'exec-late', 'completed', 5678, 0.045, ARRAY['spacing-calculation'])" >/dev/null
late_open "full run without a run request, opened after done" conv-late 0 done
r1=$(q "SELECT aegis.request_run('conv-late-err', 'first question', 'rule37-agent', 'rule_37')")
q "SELECT aegis.publish_node_end('conv-late-err', 'initial_llm_call', 'running', 10)
   ; SELECT aegis.publish_done('conv-late-err', 'exec-first', 'completed')" >/dev/null
r2=$(q "SELECT aegis.request_run('conv-late-err', 'second question', 'rule37-agent', 'rule_37')")
q "SELECT aegis.publish_node_end('conv-late-err', 'initial_llm_call', 'running', 20)
   ; SELECT aegis.publish_error('conv-late-err', 'Budget exceeded: 150000 tokens')" >/dev/null
check "two runs recorded for the error case" test "$r2" -gt "$r1"
late_open "second run ended in error, opened after it" conv-late-err "$r2" error
r=$(get "$B/conversations/conv-late-err/stream" -H "Last-Event-ID: $r2" --timeout 10)
expect_eq "Last-Event-ID = the latest run request: that run again, closed after error" "node_end error true" \
    "$(jq -r '([.events[].event] | join(" ")) + " \(.closed)"' <<<"$r")"
# two runs published without run requests: one run per connection, then 204
q "SELECT aegis.publish_node_end('conv-2runs', 'a', 'running')
   ; SELECT aegis.publish_done('conv-2runs', 'exec-1', 'completed')
   ; SELECT aegis.publish_node_end('conv-2runs', 'b', 'running')
   ; SELECT aegis.publish_error('conv-2runs', 'second run failed')" >/dev/null
r=$(get "$B/conversations/conv-2runs/stream" --timeout 10)
d1=$(jq -r '.events[-1].id' <<<"$r")
r2=$(get "$B/conversations/conv-2runs/stream" -H "Last-Event-ID: $d1" --timeout 10)
expect_eq "runs without run requests: the first connect ends after the first done, the reconnect reads the next run" \
    "node_end:a done true | node_end:b error true" \
    "$(jq -r '([.events[] | .event + (if .event == "node_end" then ":" + (.data | fromjson | .node) else "" end)] | join(" ")) + " \(.closed)"' <<<"$r") | $(
       jq -r '([.events[] | .event + (if .event == "node_end" then ":" + (.data | fromjson | .node) else "" end)] | join(" ")) + " \(.closed)"' <<<"$r2")"
expect_eq "runs without run requests: the reconnect after the last run's error gets 204" 204 \
    "$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "Last-Event-ID: $(jq -r '.events[-1].id' <<<"$r2")" "$B/conversations/conv-2runs/stream")"
# a conversation with no events at all: the stream stays open for its first run
r=$(get "$B/conversations/conv-empty/stream" --timeout 2)
expect_eq "conversation with no events: 200, nothing sent, stream kept open" "200 0 false" \
    "$(jq -r '"\(.status) \(.events | length) \(.closed)"' <<<"$r")"
conns_before=$(metric aegis_bridge_sse_connections_total)
"${CLIENT[@]}" get "$B/conversations/conv-empty/stream" --timeout 15 >"$WORK/conv-empty.json" &
cp=$!
wait_for 10 metric_above aegis_bridge_sse_connections_total "$conns_before"
q "SELECT aegis.publish_node_end('conv-empty', 'initial_llm_call', 'running')
   ; SELECT aegis.publish_done('conv-empty', 'exec-empty', 'completed')" >/dev/null
wait "$cp"
expect_eq "conversation with no events: its first run arrives live, closed after done" "node_end done true" \
    "$(jq -r '([.events[].event] | join(" ")) + " \(.closed)"' "$WORK/conv-empty.json")"

q "SELECT aegis.publish_error('conv-3', 'Budget exceeded: 150000 tokens')" >/dev/null
r=$(get "$B/conversations/conv-3/stream?last_event_id=0" --timeout 5)
expect_eq "error ends a conversation stream too" "error true" \
    "$(jq -r '"\(.events[0].event) \(.closed)"' <<<"$r")"
sqlish="x'); DROP TABLE aegis.events; --"
r=$(get "$B/conversations/conv-4/stream?message=x%27%29%3B%20DROP%20TABLE%20aegis.events%3B%20--" --timeout 1)
expect_eq "message with SQL in it is stored verbatim as a bound parameter" "$sqlish" \
    "$(q "SELECT message FROM aegis.run_requests WHERE conversation_id = 'conv-4'")"

# ---- CORS ----
hdr() { curl -s -D - -o /dev/null -m 2 "$@" | tr -d '\r' | tr 'A-Z' 'a-z'; }
check "CORS: an allowed Origin is echoed" \
    grep -q '^access-control-allow-origin: http://allowed.test$' <<<"$(hdr -H 'Origin: http://allowed.test' "$B/workspaces/ws-a/stream")"
check "CORS: another Origin gets no Access-Control-Allow-Origin" \
    bash -c '! grep -q "^access-control-allow-origin" <<<"$1"' _ "$(hdr -H 'Origin: http://evil.test' "$B/workspaces/ws-a/stream")"
pf=$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS -H 'Origin: http://allowed.test' -H 'Access-Control-Request-Method: GET' "$B/workspaces/ws-a/stream")
expect_eq "CORS preflight from an allowed Origin: 204" 204 "$pf"

# ---- bad requests ----
bad() {   # NAME EXPECTED_CODE CURL_ARGS...
    local name=$1 want=$2; shift 2
    local out code body
    out=$(curl -s -m 5 -w '\n%{http_code}' "$@")
    code=$(tail -1 <<<"$out"); body=$(head -n -1 <<<"$out")
    if [ "$code" = "$want" ] && [ -n "$body" ] && [ "${#body}" -lt 200 ]; then ok "$name"
    else not_ok "$name (got $code '$body')"; fi
}
events_before=$(q "SELECT count(*) FROM aegis.events")
bad "unknown path: 404" 404 "$B/nowhere"
bad "unknown nested path: 404" 404 "$B/workspaces/ws-a/streams"
bad "POST: 405" 405 -X POST -d x=1 "$B/workspaces/ws-a/stream"
bad "PUT: 405" 405 -X PUT -d x=1 "$B/conversations/c/stream"
bad "DELETE: 405" 405 -X DELETE "$B/healthz"
bad "id with a space: 400" 400 "$B/workspaces/bad%20id/stream"
bad "id with a quote: 400" 400 "$B/workspaces/x%27%3Bdrop%20table%20aegis.events/stream"
bad "empty id: 400" 400 "$B/workspaces//stream"
bad "id of 129 characters: 400" 400 "$B/workspaces/$(printf 'a%.0s' $(seq 129))/stream"
bad "id with a slash: 400" 400 "$B/conversations/a/b/stream"
bad "Last-Event-ID not a number: 400" 400 -H 'Last-Event-ID: abc' "$B/workspaces/ws-a/stream"
bad "Last-Event-ID negative: 400" 400 -H 'Last-Event-ID: -1' "$B/workspaces/ws-a/stream"
bad "Last-Event-ID of 20 digits: 400" 400 -H 'Last-Event-ID: 12345678901234567890' "$B/workspaces/ws-a/stream"
bad "?last_event_id= not a number: 400" 400 "$B/workspaces/ws-a/stream?last_event_id=1e3"
bad "query argument given twice: 400" 400 "$B/conversations/c/stream?message=a&message=b"
bad "message not UTF-8: 400" 400 "$B/conversations/c/stream?message=%ff%fe"
bad "empty message: 400" 400 "$B/conversations/c/stream?message="
bad "message over 8192 bytes: 400" 400 "$B/conversations/c/stream?message=$(head -c 9000 /dev/zero | tr '\0' a)"
bad "agent_type with bad characters: 400" 400 "$B/conversations/c/stream?message=hi&agent_type=a%20b"
bad "agent_id without message: 400" 400 "$B/conversations/c/stream?agent_id=a"
bad "message on a workspace stream: 400" 400 "$B/workspaces/ws-a/stream?message=hi"
expect_eq "bad requests published nothing" "$events_before" "$(q "SELECT count(*) FROM aegis.events")"
expect_eq "the events table survived the injection attempts" 1 "$(q "SELECT count(*) FROM pg_tables WHERE schemaname = 'aegis' AND tablename = 'events'")"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)" "$B/healthz" || true)
check "oversized request header is refused, bridge keeps serving" \
    bash -c '[ "$1" != 200 ] && curl -sf "$2/healthz" >/dev/null' _ "$code" "$B"

# ---- 1,000 concurrent subscribers ----
rm -f "$WORK/many.ready"
"${CLIENT[@]}" many "$B/workspaces/many-{}/stream" --streams 10 --clients 1000 --events 20 \
    --ready "$WORK/many.ready" --timeout 120 >"$WORK/many.json" &
mp=$!
BG_PIDS+=("$mp")
if wait_for 60 test -f "$WORK/many.ready"; then
    ok "1,000 concurrent subscribers connected"
    check "metrics count at least 1,000 open streams" test "$(metric aegis_bridge_sse_connections)" -ge 1000
else
    not_ok "1,000 concurrent subscribers connected"
fi
cat >"$WORK/many.sql" <<'SQL'
\set s random(0, 9)
SELECT aegis.publish_agent_status('many-' || :s, 'running', 'fan-out', random());
SQL
# 20 events per stream: publish per stream so each gets exactly 20
for s in $(seq 0 9); do
    for i in $(seq 1 20); do echo "SELECT aegis.publish_agent_status('many-$s', 'running', 'fan-out $i');"; done
done | psql -qAtX >/dev/null
wait "$mp"
expect_eq "1,000 subscribers each received every event of their stream, in order" 1000 \
    "$(jq .complete "$WORK/many.json")"
ok_streams=0
for s in $(seq 0 9); do
    [ "$(jq -c ".streams[\"$s\"]" "$WORK/many.json")" = \
      "$(q "SELECT json_agg(id ORDER BY id) FROM aegis.events WHERE stream_id = 'many-$s'" | tr -d ' ')" ] &&
        ok_streams=$((ok_streams+1))
done
expect_eq "each of the 10 streams delivered exactly its store events" 10 "$ok_streams"

# ---- a stalled reader is dropped, others continue ----
drops_before=$(curl -s "$B/metrics" | awk '$1 == "aegis_bridge_sse_drops_total" {print $2}')
rm -f "$WORK/stall.ready" "$WORK/stall.ready.go"
"${CLIENT[@]}" stall "$B/workspaces/ws-flood/stream" --ready "$WORK/stall.ready" --hold 120 >"$WORK/stall.json" &
sp=$!
BG_PIDS+=("$sp")
wait_for 10 test -f "$WORK/stall.ready"
"${CLIENT[@]}" get "$B/workspaces/ws-flood/stream" --events 3000 --timeout 120 >"$WORK/flood.json" &
fp=$!
BG_PIDS+=("$fp")
cat >"$WORK/flood.sql" <<'SQL'
SELECT aegis.publish_agent_status('ws-flood', 'running', repeat('x', 2000), random());
SQL
pgbench -n -c 2 -j 2 -t 1500 -f "$WORK/flood.sql" >"$WORK/flood-pgbench.log" 2>&1
wait_for 60 sh -c "curl -s $B/metrics | awk '\$1 == \"aegis_bridge_sse_drops_total\" && \$2 > $drops_before {f=1} END {exit !f}'"
touch "$WORK/stall.ready.go"
wait "$sp" "$fp"
check "stalled reader: the bridge dropped it past its buffer bound" \
    test "$(curl -s "$B/metrics" | awk '$1 == "aegis_bridge_sse_drops_total" {print $2}')" -gt "$drops_before"
expect_eq "stalled reader: its connection was closed by the server" true "$(jq -r .closed "$WORK/stall.json")"
expect_eq "a reading client of the same stream got all 3,000 events meanwhile, in store order" \
    "$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.events WHERE stream_id = 'ws-flood'")" \
    "$(jq -r '[.events[].id] | join(",")' "$WORK/flood.json")"
check "bridge still serves after the flood" curl -sf -o /dev/null "$B/healthz"

# ---- clients that go away ----
# libwebsockets 4.1 does not read an SSE connection, so the bridge must notice
# closed clients itself: 200 clients close, their streams are released
# within seconds (no CLOSE-WAIT left), and the bridge does not spin while
# the idle streams are open, while they close, or after.
conn_before=$(metric aegis_bridge_sse_connections | cut -d. -f1)
gone=()
for i in $(seq 1 200); do curl -sN -o /dev/null "$B/workspaces/gone-$((i % 7))/stream" & gone+=($!); done
BG_PIDS+=("${gone[@]}")
wait_for 30 sh -c "[ \"\$(curl -s $B/metrics | awk '\$1 == \"aegis_bridge_sse_connections\" {print int(\$2)}')\" -ge $((conn_before + 200)) ]"
ticks() { awk '{print $14 + $15}' "/proc/$BRIDGE_PID/stat"; }
t0=$(ticks); sleep 2; t1=$(ticks)
check "idle streams: the bridge does not spin with 200 open ($((t1 - t0)) CPU ticks in 2 s)" \
    test $((t1 - t0)) -lt 50
t0=$(ticks)
kill "${gone[@]}" 2>/dev/null; wait "${gone[@]}" 2>/dev/null
released() { [ "$(metric aegis_bridge_sse_connections | cut -d. -f1)" -le "$conn_before" ]; }
check "closed clients: their 200 streams are released" wait_for 10 released
t1=$(ticks)
check "closed clients: the bridge does not spin while they close ($((t1 - t0)) CPU ticks)" \
    test $((t1 - t0)) -lt 50
expect_eq "closed clients: no connection left in CLOSE-WAIT" 0 \
    "$(ss -tan state close-wait "( sport = :$PORT )" | tail -n +2 | wc -l)"
t0=$(ticks); sleep 2; t1=$(ticks)
check "closed clients: the idle bridge does not spin ($((t1 - t0)) CPU ticks in 2 s)" test $((t1 - t0)) -lt 50

# ---- /metrics ----
m=$(curl -s "$B/metrics")
for name in aegis_bridge_sse_connections aegis_bridge_sse_events_sent_total aegis_bridge_sse_replays_total \
            aegis_bridge_sse_drops_total aegis_bridge_drain_pending_events aegis_bridge_drain_lag_seconds; do
    check "metrics: $name present" grep -qE "^$name [0-9.e+-]+$" <<<"$m"
done
check "metrics: every sample has HELP and TYPE lines" \
    test "$(grep -c '^# TYPE' <<<"$m")" -eq "$(grep -vc '^#' <<<"$m")"

# ---- PostgreSQL restart: live subscribers continue, no gap ----
sent_before=$(metric aegis_bridge_sse_events_sent_total)
"${CLIENT[@]}" get "$B/workspaces/ws-restart/stream" --events 2 --timeout 40 >"$WORK/restart.json" &
rp=$!
q "SELECT aegis.publish_agent_status('ws-restart', 'running', 'before restart')" >/dev/null
check "restart: the subscriber got the first event (it is live)" \
    wait_for 20 metric_above aegis_bridge_sse_events_sent_total "$sent_before"
pg_restart_dir "$PGDATA_sse"
code=000
wait_for 30 curl -sf "$B/healthz" && code=200
expect_eq "healthz is 200 again after PostgreSQL restarts" 200 "$code"
q "SELECT aegis.publish_agent_status('ws-restart', 'running', 'after restart')" >/dev/null
wait "$rp"
expect_eq "a live stream survives a PostgreSQL restart without a gap" "before restart,after restart" \
    "$(jq -r '[.events[].data | fromjson | .message] | join(",")' "$WORK/restart.json")"

# ---- PostgreSQL down: 503, then back ----
pg_stop_dir "$PGDATA_sse"
code=000
wait_for 15 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $B/healthz)\" = 503 ]" && code=503
expect_eq "healthz is 503 while PostgreSQL is down" 503 "$code"
expect_eq "a new stream gets 503 while PostgreSQL is down" 503 \
    "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$B/workspaces/ws-a/stream")"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_sse" -l "$PGDATA_sse/../server.log" -w -t 60 start >/dev/null
check "healthz is 200 once PostgreSQL is back" wait_for 30 curl -sf "$B/healthz"

# ---- dashboard files, configuration errors ----
mkdir -p "$WORK/web/js"
echo '<!doctype html><title>dash</title>' >"$WORK/web/index.html"
echo 'console.log(1)' >"$WORK/web/js/app.js"
echo 'secret' >"$WORK/secret.txt"
PORT2=$(free_port)
ASAN_OPTIONS=detect_leaks=1 "$BIN" --listen "127.0.0.1:$PORT2" --static-dir "$WORK/web" --no-drain \
    --max-clients 1 >>"$LOG" 2>&1 &
BRIDGE2=$!
BG_PIDS+=("$BRIDGE2")
wait_for 30 curl -sf "http://127.0.0.1:$PORT2/healthz"
expect_eq "--static-dir: GET / serves index.html" "<!doctype html><title>dash</title>" \
    "$(curl -s "http://127.0.0.1:$PORT2/")"
expect_eq "--static-dir: /static/ files with their content type" "text/javascript; charset=utf-8" \
    "$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$PORT2/static/js/app.js")"
expect_eq "--static-dir: no way out of the directory" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "http://127.0.0.1:$PORT2/static/../secret.txt")"
expect_eq "--static-dir: missing file 404" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT2/static/nope.js")"
expect_eq "without --static-dir, / is 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$B/")"
"${CLIENT[@]}" get "http://127.0.0.1:$PORT2/workspaces/ws-a/stream" --timeout 4 >"$WORK/max1.json" &
m1=$!
wait_for 5 sh -c "curl -s http://127.0.0.1:$PORT2/metrics | grep -q '^aegis_bridge_sse_connections 1$'"
expect_eq "--max-clients 1: a second stream gets 503" 503 \
    "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$PORT2/workspaces/ws-b/stream")"
wait "$m1"
expect_eq "--max-clients 1: the first stream was served" 200 "$(jq .status "$WORK/max1.json")"
kill -TERM "$BRIDGE2"; rc2=0; wait "$BRIDGE2" || rc2=$?
expect_eq "second bridge exits 0 on SIGTERM" 0 "$rc2"
err=$("$BIN" --heartbeat-seconds abc 2>&1 >/dev/null); rc=$?
expect_eq "bad option value: exit status 2" 2 "$rc"
check "bad option value: message names the option and the value" \
    grep -qF -- "'abc' for --heartbeat-seconds" <<<"$err"
err=$(AEGIS_LISTEN=nowhere "$BIN" 2>&1 >/dev/null); rc=$?
expect_eq "bad environment value: exit status 2 naming the variable" "2 yes" \
    "$rc $(grep -q "'nowhere' for AEGIS_LISTEN" <<<"$err" && echo yes)"
check "--help documents the options and exits 0" \
    bash -c '"$1" --help | grep -q -- "--client-buffer-bytes"' _ "$BIN"

# ---- no arguments: libpq's PG* environment, 127.0.0.1:8001 ----
# In a fresh network namespace (port 8001 is surely free there); PostgreSQL
# is reached through its Unix socket directory.
cat >"$WORK/noargs.sh" <<'NS'
ip link set lo up
"$1" >"$2" 2>&1 &
pid=$!
for i in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:8001/healthz && break; sleep 0.1; done
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8001/healthz)
listen=$(ss -ltnH "sport = :8001" | awk '{print $4}')
kill -TERM "$pid"; wait "$pid"; rc=$?
echo "$code $listen $rc"
NS
out=$(PGHOST=$(dirname "$PGDATA_sse") unshare -n bash "$WORK/noargs.sh" "$BIN" "$WORK/noargs.log" 2>&1)
expect_eq "no arguments: serves on 127.0.0.1:8001 with the PG* environment, exits 0" "200 127.0.0.1:8001 0" "$out"
cat "$WORK/noargs.log" >>"$LOG"

# ---- the plain build under valgrind ----
PLAIN=${AEGIS_BRIDGE_PLAIN_BIN:-$AEGIS_TOP/bridge/aegis-bridge}
[ -x "$PLAIN" ] || make -s -C "$AEGIS_TOP/bridge" all >/dev/null
if command -v valgrind >/dev/null; then
    PORT3=$(free_port)
    B3=http://127.0.0.1:$PORT3
    valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        "$PLAIN" --listen "127.0.0.1:$PORT3" --heartbeat-seconds 1 --no-drain >"$WORK/valgrind.log" 2>&1 &
    VG=$!
    BG_PIDS+=("$VG")
    wait_for 60 curl -sf "$B3/healthz"
    r=$("${CLIENT[@]}" get "$B3/workspaces/ws-a/stream" --events 2 --timeout 20)
    "${CLIENT[@]}" get "$B3/workspaces/ws-vg/stream" --events 1 --timeout 20 >"$WORK/vg-live.json" &
    vl=$!
    sleep 1
    q "SELECT aegis.publish_agent_status('ws-vg', 'running', 'valgrind')" >/dev/null
    wait "$vl"
    "${CLIENT[@]}" get "$B3/conversations/conv-vg/stream?message=hi" --timeout 20 >"$WORK/vg-conv.json" &
    vc=$!
    # done must follow the run request (valgrind is slow to record it)
    run_recorded() { [ "$(q "SELECT count(*) FROM aegis.run_requests WHERE conversation_id = '$1'")" = 1 ]; }
    wait_for 30 run_recorded conv-vg
    q "SELECT aegis.publish_done('conv-vg', 'exec-vg', 'completed')" >/dev/null
    wait "$vc"
    curl -s -o /dev/null "$B3/nowhere"; curl -s -o /dev/null "$B3/workspaces/a%20b/stream"
    curl -s -o /dev/null "$B3/metrics"
    expect_eq "valgrind: replay, live and a conversation served" "2 1 done" \
        "$(jq '.events | length' <<<"$r") $(jq '.events | length' "$WORK/vg-live.json") $(jq -r '.events[-1].event' "$WORK/vg-conv.json")"
    kill -TERM "$VG"; rc3=0; wait "$VG" || rc3=$?
    expect_eq "valgrind: no errors, no leaks, exit 0 on SIGTERM" "0 yes" \
        "$rc3 $(grep -q 'ERROR SUMMARY: 0 errors' "$WORK/valgrind.log" && echo yes)"
else
    not_ok "valgrind is installed (apt-get install valgrind)"
fi

# ---- shutdown, sanitizers ----
kill -TERM "$BRIDGE_PID"
rc=0; wait "$BRIDGE_PID" || rc=$?
BRIDGE_PID=
expect_eq "SIGTERM: the bridge exits 0" 0 "$rc"
check "AddressSanitizer/UBSan reported nothing" \
    bash -c '! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$1"' _ "$LOG"
if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$LOG"; then
    grep -A30 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$LOG" | head -60 | sed 's/^/# /'
fi
finish
