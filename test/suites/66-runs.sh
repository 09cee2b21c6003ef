#!/usr/bin/env bash
# 66-runs.sh: agent runs end to end: a real PostgreSQL with the extension
# and its maintenance worker (naptime 100 ms), aegis-bridge (ASan/UBSan),
# curl-like SSE clients (test/sse/sse_client.py) and the reference worker
# (examples/worker/worker.py, Debian's python3-psycopg).  No worker: the
# stream gets the clock's error after queue_timeout and ends; the worker:
# node_end ... done; a worker SIGKILLed mid-run: another takes the run after
# the lease, each event once, done; --fail-after: error; SIGTERM: the run
# goes back to the queue; wait_run is woken by the requesting commit.
set -u
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../readme_grants.sh"

CLIENT=(python3 "$AEGIS_TOP/test/sse/sse_client.py")
BIN=${AEGIS_BRIDGE_BIN:-$AEGIS_TOP/bridge/aegis-bridge-asan}
PY=/usr/bin/python3                     # Debian's, which has python3-psycopg
WORKER=$AEGIS_TOP/examples/worker/worker.py
WORK=$(mktemp -d "$AEGIS_TEST_TMP/runs-XXXXXX")
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

if [ -z "${AEGIS_BRIDGE_BIN:-}" ]; then
    make -s -C "$AEGIS_TOP/bridge" asan >/dev/null || { not_ok "bridge builds (ASan)"; finish; exit 1; }
fi
$PY -c 'import psycopg' || { not_ok "python3-psycopg is installed"; finish; exit 1; }
pg_start runs "aegis.maintenance_naptime = 100" || { not_ok "postgres starts"; finish; exit 1; }
q() { psql -qAtX -c "$1"; }
q "CREATE EXTENSION aegis_events" || { not_ok "extension installs"; finish; exit 1; }
q "SELECT aegis.configure_agent('nobody', queue_timeout => '2 s'),
          aegis.configure_agent('parked', queue_timeout => '1 hour'),
          aegis.configure_agent('rule_37', queue_timeout => '60 s', lease => '2 s', max_attempts => 3)" >/dev/null

PORT=$(free_port)
B=http://127.0.0.1:$PORT
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    "$BIN" --listen "127.0.0.1:$PORT" --heartbeat-seconds 1 --no-drain >>"$WORK/bridge.log" 2>&1 &
BRIDGE_PID=$!
check "bridge starts" wait_for 30 curl -sf "$B/healthz"

DSN="host=$PGHOST port=$PGPORT user=postgres dbname=postgres"
# the README's grants for an agent worker: the first worker below runs as that role
out=$(readme_grants agent-worker | psql -qX -v ON_ERROR_STOP=1 2>&1)
check "the README's agent-worker grants apply ($out)" test -z "$out"
# start_worker NAME [worker options...]: the reference worker in the background
start_worker() {
    local name=$1; shift
    $PY "$WORKER" --dsn "$DSN" --worker "$name" "$@" >>"$WORK/$name.log" 2>&1 &
    WORKER_PID=$!
    BG_PIDS+=("$WORKER_PID")
}
# conv_events CONV: the conversation's stored events as "type:node" words
conv_events() {
    q "SELECT string_agg(event_type || coalesce(':' || (payload->>'node'), ''), ' ' ORDER BY id)
         FROM aegis.events WHERE stream_kind = 'conversation' AND stream_id = '$1'"
}
# stream_words FILE: the events a client received, as "type:node" words
stream_words() {
    jq -r '[.events[] | .event + (.data | fromjson | if .node then ":" + .node else "" end)] | join(" ")' "$1"
}
# unique_ids FILE: true when no event id repeats
unique_ids() { [ "$(jq '[.events[].id] | length == (unique | length)' "$1")" = true ]; }
PIPELINE="node_end:system_prompt_node node_end:memory_node node_end:initial_llm_call node_end:tool_node node_end:initial_llm_call node_end:skill_select_node node_end:skill_inject_node node_end:approval_node node_end:synthesis_llm_call node_end:output_format"
url() { echo "$B/conversations/$1/stream?message=$2&agent_type=$3"; }
# (for wait_for, which runs its command again until it succeeds)
run_state_is() { [ "$(q "SELECT state FROM aegis.runs WHERE conversation_id = '$1'")" = "$2" ]; }
node_ends_at_least() {
    [ "$(q "SELECT count(*) FROM aegis.events WHERE stream_kind = 'conversation' AND stream_id = '$1' AND event_type = 'node_end'")" -ge "$2" ]
}
waiting_in_wait_run() {
    [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%aegis.wait_run(''parked''%' AND state = 'active' AND pid <> pg_backend_pid()")" = 1 ]
}

# ---- the reference worker's bad input ----
out=$($PY "$WORKER" --fail-after -1 2>&1); rc=$?
expect_eq "worker --fail-after -1: exit 2, the flag named" "2 1" "$rc $(grep -c -- '--fail-after must be >= 0' <<<"$out")"
out=$($PY "$WORKER" --wait-ms 70000 2>&1); rc=$?
expect_eq "worker --wait-ms 70000: exit 2, the range named" "2 1" "$rc $(grep -c -- '--wait-ms 0 to 60000' <<<"$out")"
out=$($PY "$WORKER" --dsn "host=127.0.0.1 port=$(free_port) user=postgres connect_timeout=5" 2>&1); rc=$?
expect_eq "worker without a database: exit 1, one line saying so" "1 1" "$rc $(grep -c 'database connection lost' <<<"$out")"

# ---- the maintenance worker ----
expect_eq "the maintenance worker runs, connected to database postgres" "1 postgres" \
    "$(q "SELECT count(*) || ' ' || min(datname) FROM pg_stat_activity WHERE backend_type = 'aegis_events maintenance'")"

# ---- wait_run sleeps until the requesting commit wakes it ----
psql -qAtX -c "SELECT conversation_id FROM aegis.wait_run('parked', 'w-wait', 30000)" >"$WORK/wait.out" 2>&1 &
wp=$!
check "wait_run sleeps while nothing is queued" wait_for 10 waiting_in_wait_run
q "SELECT aegis.request_run('c-wake', 'wake up', NULL, 'parked')" >/dev/null
wait "$wp"
expect_eq "wait_run returns the run requested while it slept" "c-wake" "$(cat "$WORK/wait.out")"

# ---- a repeated GET with the same message while the run is open: one run ----
for i in 1 2 3; do "${CLIENT[@]}" get "$(url c-repeat 'same%20question' parked)" --timeout 0.5 >/dev/null; done
expect_eq "the same GET three times while the run is open records one run" "1 queued" \
    "$(q "SELECT count(*) || ' ' || min(state) FROM aegis.runs WHERE conversation_id = 'c-repeat'")"

# ---- refused run requests: 400 (agent type not configured), 409 (a run is open) ----
# code_body URL: "CODE BODY" of one GET (the refusals end at once)
code_body() { local r; r=$(curl -s -m 10 -w '\n%{http_code}' "$1"); echo "$(tail -1 <<<"$r") $(head -n -1 <<<"$r" | tr -d '\n')"; }
expect_eq "an agent type without configure_agent: 400 with a one-line body" \
    "400 bad request: agent_type is not configured for runs" "$(code_body "$(url c-unconf hi unconfigured)")"
expect_eq "no agent type (agent type 'default', not configured): 400" \
    "400" "$(code_body "$B/conversations/c-unconf/stream?message=hi" | cut -d' ' -f1)"
expect_eq "the refused requests recorded no run" 0 "$(q "SELECT count(*) FROM aegis.runs WHERE conversation_id = 'c-unconf'")"
"${CLIENT[@]}" get "$(url c-busy first parked)" --timeout 0.5 >/dev/null
expect_eq "a different message while the conversation's run is open: 409 with a one-line body" \
    "409 conflict: this conversation already has an open run (the same message follows it)" \
    "$(code_body "$(url c-busy second parked)")"
r=$("${CLIENT[@]}" get "$(url c-busy first parked)" --timeout 0.5)
expect_eq "the same message again: 200, the open run's stream" \
    "200 $(q "SELECT run_id FROM aegis.runs WHERE conversation_id = 'c-busy'")" \
    "$(jq -r '"\(.status) \(.id_only[0])"' <<<"$r")"
expect_eq "one run recorded for c-busy" "1 first" \
    "$(q "SELECT count(*) || ' ' || min(message) FROM aegis.runs WHERE conversation_id = 'c-busy'")"
check "the bridge logged the refusals without the client's values" \
    bash -c "grep -q 'run request refused.*status=409 sqlstate=23P01' '$WORK/bridge.log' && ! grep -q 'unconfigured' '$WORK/bridge.log'"

# ---- no worker: the clock's error after queue_timeout, and the stream ends ----
get_none() { "${CLIENT[@]}" get "$(url "$1" hello nobody)" --timeout 30 >"$WORK/$1.json"; }
get_none c-none
expect_eq "no worker: the stream gets one error naming the agent type, then the server ends it" \
    "200 error:no worker available for agent type nobody true" \
    "$(jq -r '"\(.status) " + ([.events[] | .event + ":" + (.data | fromjson | .data.error)] | join(" ")) + " \(.closed)"' "$WORK/c-none.json")"
expect_eq "the run failed" "failed no worker available for agent type nobody" \
    "$(q "SELECT state || ' ' || error FROM aegis.runs WHERE conversation_id = 'c-none'")"
# more rounds of the clock (a second run times out too): still one error
get_none c-none-2
expect_eq "a later run timed out as well" "error" "$(stream_words "$WORK/c-none-2.json")"
expect_eq "the clock published the first run's error once" "run_request error" \
    "$(q "SELECT string_agg(event_type, ' ' ORDER BY id) FROM aegis.events
           WHERE (stream_kind = 'conversation' AND stream_id = 'c-none')
              OR id = (SELECT run_id FROM aegis.runs WHERE conversation_id = 'c-none')")"
last=$(jq -r '.events[-1].id' "$WORK/c-none.json")
expect_eq "the EventSource reconnect after the error gets 204" 204 \
    "$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "Last-Event-ID: $last" "$(url c-none hello nobody)")"
# a failed run is final: the same message again is a new run
"${CLIENT[@]}" get "$(url c-none hello nobody)" --timeout 30 >"$WORK/c-none-again.json"
expect_eq "the same message after the failure starts a new run (which fails again)" "2 error true" \
    "$(q "SELECT count(*) FROM aegis.runs WHERE conversation_id = 'c-none'") $(jq -r '"\(.events[-1].event) \(.closed)"' "$WORK/c-none-again.json")"

# ---- the reference worker: node_end ... done, the stream ends ----
DSN_OWNER=$DSN
DSN="host=$PGHOST port=$PGPORT user=agent_worker dbname=postgres"
start_worker w-ok --step-seconds 0.05
W_OK=$WORKER_PID
DSN=$DSN_OWNER
"${CLIENT[@]}" get "$(url c-ok 'Does%2012H%20need%20a%20Rule%2037%20exception%3F' rule_37)" --timeout 60 >"$WORK/c-ok.json"
expect_eq "worker: the stream shows the pipeline's node_end events, then done" "$PIPELINE done" \
    "$(stream_words "$WORK/c-ok.json")"
expect_eq "worker: the server ends the stream after done" true "$(jq -r .closed "$WORK/c-ok.json")"
check "worker: each event once" unique_ids "$WORK/c-ok.json"
expect_eq "worker: done carries the execution summary" "completed 5630 0.045 spacing-calculation,offset-well-analysis" \
    "$(jq -r '.events[-1].data | fromjson | .data | "\(.status) \(.tokens_used) \(.cost_usd) \(.skills_injected | join(","))"' "$WORK/c-ok.json")"
expect_eq "worker (as agent_worker, the README's grants only): the run is done, by w-ok, first attempt" "done w-ok 1" \
    "$(q "SELECT state || ' ' || worker || ' ' || attempt FROM aegis.runs WHERE conversation_id = 'c-ok'")"

# ---- SIGTERM: the worker gives its run back and exits 0 ----
kill_pid "$W_OK"
start_worker w-term --step-seconds 1
W_TERM=$WORKER_PID
"${CLIENT[@]}" get "$(url c-term 'question' rule_37)" --timeout 60 >"$WORK/c-term.json" &
term_client=$!
BG_PIDS+=("$term_client")
check "SIGTERM: the worker took the run" wait_for 20 run_state_is c-term running
kill -TERM "$W_TERM"
wait "$W_TERM"
expect_eq "SIGTERM: the worker exits 0" 0 "$?"
expect_eq "SIGTERM: the run is back in the queue, the attempt not counted" "queued 0" \
    "$(q "SELECT state || ' ' || attempt FROM aegis.runs WHERE conversation_id = 'c-term'")"
start_worker w-after-term --step-seconds 0.05
wait "$term_client"
expect_eq "SIGTERM: the next worker answers the run; the stream ends in done, each step once" "$PIPELINE done true" \
    "$(stream_words "$WORK/c-term.json") $(jq -r .closed "$WORK/c-term.json")"
kill_pid "$WORKER_PID"

# ---- a worker SIGKILLed mid-run: another takes the run after the lease ----
start_worker w-killed --step-seconds 0.3
W_KILLED=$WORKER_PID
"${CLIENT[@]}" get "$(url c-kill 'question' rule_37)" --timeout 60 >"$WORK/c-kill.json" &
kill_client=$!
BG_PIDS+=("$kill_client")
check "the first worker publishes steps" \
    wait_for 30 node_ends_at_least c-kill 3
kill -KILL "$W_KILLED"
wait "$W_KILLED" 2>/dev/null
before=$(q "SELECT count(*) FROM aegis.events WHERE stream_id = 'c-kill' AND event_type = 'node_end'")
start_worker w-rescue --step-seconds 0.05
wait "$kill_client"
expect_eq "SIGKILL: the stream shows every step once, then done, and ends" "$PIPELINE done true" \
    "$(stream_words "$WORK/c-kill.json") $(jq -r .closed "$WORK/c-kill.json")"
check "SIGKILL: each event once" unique_ids "$WORK/c-kill.json"
expect_eq "SIGKILL: the store holds the same, once" "$PIPELINE done" "$(conv_events c-kill)"
expect_eq "SIGKILL: w-rescue finished it on the second attempt" "done w-rescue 2" \
    "$(q "SELECT state || ' ' || worker || ' ' || attempt FROM aegis.runs WHERE conversation_id = 'c-kill'")"
check "SIGKILL: the killed worker had published some steps, not all ($before)" test "$before" -ge 3 -a "$before" -lt 10
kill_pid "$WORKER_PID"

# ---- --fail-after: the seed's error ends the stream ----
start_worker w-fail --step-seconds 0.05 --fail-after 2
"${CLIENT[@]}" get "$(url c-fail 'question' rule_37)" --timeout 60 >"$WORK/c-fail.json"
expect_eq "--fail-after 2: two node_end, then the error, and the stream ends" \
    "node_end:system_prompt_node node_end:memory_node error true" \
    "$(stream_words "$WORK/c-fail.json") $(jq -r .closed "$WORK/c-fail.json")"
expect_eq "--fail-after: the error is the seed's budget error" "Budget exceeded: 150000 tokens" \
    "$(jq -r '.events[-1].data | fromjson | .data.error' "$WORK/c-fail.json")"
expect_eq "--fail-after: the run failed" "failed w-fail" \
    "$(q "SELECT state || ' ' || worker FROM aegis.runs WHERE conversation_id = 'c-fail'")"
kill_pid "$WORKER_PID"

# ---- the maintenance worker takes a new naptime on reload and keeps running ----
maint_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'aegis_events maintenance'"; }
pid_before=$(maint_pid)
q "ALTER SYSTEM SET aegis.maintenance_naptime = '50ms'" && q "SELECT pg_reload_conf()" >/dev/null
get_none c-after-reload
expect_eq "after a reload (SIGHUP) the same maintenance worker still ends runs" "$pid_before error" \
    "$(maint_pid) $(stream_words "$WORK/c-after-reload.json")"
check "the maintenance worker logged no error and never exited" \
    bash -c "! grep -E '\[$pid_before\] (ERROR|FATAL)|\"aegis_events maintenance\".*exited' '$(dirname "$PGDATA_runs")/server.log'"

check "the bridge logged no sanitizer report" bash -c "! grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' '$WORK/bridge.log'"
finish
