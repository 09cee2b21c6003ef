#!/usr/bin/env bash
# 80-demo-dashboard: issue 6's demo and dashboard tests.
#  1. bad input to `make demo` and to the publisher: a clear error, exit 2.
#  2. `make demo DEMO_ARGS="--once ..."` replays once and ends by itself; while it
#     runs, curl -N reads the workspace and both conversation streams and
#     headless chromium loads the dashboard (test/browser/dashboard.test.js).
#     Every published event must reach the store and an SSE client, exactly once.
#  3. the demo in a real terminal: Ctrl-C mid-replay stops everything it started.
#  4. `make demo KAFKA=1`: a real Kafka broker (test/kafka/) gets the replay's
#     Kafka events and the demo shows them arriving; the broker is stopped after.
# Output (logs, SSE captures, screenshot): test/out/80-demo-dashboard/.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$AEGIS_TOP/test/browser/setup.sh"

OUT="$AEGIS_TOP/test/out/80-demo-dashboard"
rm -rf "$OUT"; mkdir -p "$OUT"
RUN_DIR="$AEGIS_TEST_TMP/demo-run-$$"
CURL_PIDS=() DEMO_PID=

cleanup() {
    local pid
    for pid in "${CURL_PIDS[@]}"; do kill_pid "$pid"; done
    [ -n "$DEMO_PID" ] && kill_pid "$DEMO_PID"
    # a demo killed before its own cleanup may leave its cluster: stop it by its data dir
    for d in "$RUN_DIR"/pg/data "$RUN_DIR"-tty/pg/data "$RUN_DIR"-kafka/pg/data; do
        [ -f "$d/postmaster.pid" ] && pg_stop_dir "$d"
    done
    [ -f "$RUN_DIR-kafka/kafka/broker.pid" ] && "$AEGIS_TOP/test/kafka/broker.sh" stop "$RUN_DIR-kafka/kafka"
    rm -rf "$RUN_DIR" "$RUN_DIR-tty" "$RUN_DIR-kafka"
}
trap cleanup EXIT

# demo_make ARGS...: `make demo` with DEMO_ARGS (the top Makefile's demo target)
demo_make() {
    make -s -C "$AEGIS_TOP" demo DEMO_ARGS="$*"
}

# ---- 1. bad input ----

expect_usage_error() {
    local name=$1 want=$2; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = 2 ] && grep -qF -- "$want" <<<"$out"; then ok "$name"
    else not_ok "$name (exit $rc, output: $(tail -1 <<<"$out"))"; fi
}
expect_usage_error "demo: --port 70000 is refused" "bad port '70000'" bash "$AEGIS_TOP/scripts/demo.sh" --port 70000
expect_usage_error "demo: --pace abc is refused" "bad pace 'abc'" bash "$AEGIS_TOP/scripts/demo.sh" --pace abc
expect_usage_error "demo: an unknown flag is refused" "unknown argument '--fast'" bash "$AEGIS_TOP/scripts/demo.sh" --fast
expect_usage_error "demo: --wait-for-browser -1 is refused" "bad wait-for-browser '-1'" bash "$AEGIS_TOP/scripts/demo.sh" --wait-for-browser -1
expect_usage_error "demo: KAFKA=yes is refused" "bad KAFKA 'yes'" env KAFKA=yes bash "$AEGIS_TOP/scripts/demo.sh"
expect_usage_error "publisher: an id with a slash is refused" "bad id 'a/b'" "$AEGIS_TOP/demo/publish.sh" --checklist a/b
expect_usage_error "publisher: a missing value is refused" "--pace needs a value" "$AEGIS_TOP/demo/publish.sh" --pace

# a port in use: refused before anything starts
BUSY_PORT=$(free_port)
python3 -m http.server "$BUSY_PORT" --bind 127.0.0.1 >/dev/null 2>&1 &
BUSY_PID=$!
if wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$BUSY_PORT"; then
    expect_usage_error "demo: a port in use is refused" "port $BUSY_PORT on 127.0.0.1 is taken" \
        env DEMO_RUN_DIR="$RUN_DIR-busy" bash "$AEGIS_TOP/scripts/demo.sh" --no-build --port "$BUSY_PORT"
    check "demo: nothing was started for the refused port" test ! -e "$RUN_DIR-busy"
else
    not_ok "a test server listens on 127.0.0.1:$BUSY_PORT"
fi
kill_pid "$BUSY_PID"

if ! [ -x "$(bridge_bin)" ] && ! make -s -C "$AEGIS_TOP" bridge >/dev/null 2>&1; then
    not_ok "aegis-bridge builds"; finish; exit
fi
if ! browser_setup; then
    not_ok "playwright-core and chromium are installed"; finish; exit
fi

# ---- 2. one replay, watched by curl and by chromium ----

# the whole `make demo` path (dependency check, make all bridge && make install install-bridge, ...);
# AEGIS_DEMO_NO_BUILD=1 skips the build step when the tree was just built
PORT=$(free_port)
BUILD_FLAG=
[ "${AEGIS_DEMO_NO_BUILD:-0}" = 1 ] && BUILD_FLAG=--no-build
DEMO_RUN_DIR=$RUN_DIR demo_make --once $BUILD_FLAG --port "$PORT" --pace 0.25 --wait-for-browser 120 --start-delay 1 --linger 120 \
    >"$OUT/demo.log" 2>&1 &
DEMO_PID=$!

if ! wait_for 300 grep -q "dashboard:" "$OUT/demo.log"; then
    not_ok "make demo printed the dashboard URL"; tail -30 "$OUT/demo.log"; finish; exit
fi
ok "make demo printed the dashboard URL"
URL=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/demo.log" | grep -o 'http://127.0.0.1:[0-9]*/?[^ ]*' | head -1)
BASE="http://127.0.0.1:$PORT"
check "the dashboard URL is on 127.0.0.1:$PORT" test "${URL#"$BASE/"}" != "$URL"
check "make demo printed a curl -N line" grep -q "curl -N $BASE/workspaces/chk-demo/stream" "$OUT/demo.log"

for s in workspaces/chk-demo conversations/conv-demo-1 conversations/conv-demo-2; do
    curl -sN --max-time 120 "$BASE/$s/stream" >"$OUT/$(basename "$s").sse" 2>"$OUT/$(basename "$s").err" &
    CURL_PIDS+=($!)
done

AEGIS_DASHBOARD_URL=$URL AEGIS_OUT=$OUT run_node_tap "dashboard in chromium" dashboard.test.js
check "the replay waited for the first SSE client" grep -q "a browser connected" "$OUT/demo.log"

# the browser is done: end the demo's --linger wait (SIGUSR1 to the pid it wrote)
if wait_for 120 grep -q "serving 120 s more" "$OUT/demo.log"; then
    kill -USR1 "$(cat "$RUN_DIR/demo.pid")"
else
    not_ok "make demo --once finished its replay"
fi

rc=
for _ in $(seq 1 1200); do
    [ -d "/proc/$DEMO_PID" ] || break
    [ "$(awk '{print $3}' "/proc/$DEMO_PID/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
done
if wait "$DEMO_PID"; then rc=0; else rc=$?; fi
DEMO_PID=
expect_eq "make demo --once ends by itself with status 0" 0 "$rc"
expect_eq "the bridge said once that Kafka is off (KAFKA_BOOTSTRAP_SERVERS is not set)" 1 \
    "$(grep -c '^bridge | .*KAFKA_BOOTSTRAP_SERVERS is not set' "$OUT/demo.log")"
check "conversation 1's stream ended after done (curl exited 0)" wait "${CURL_PIDS[1]}"
check "conversation 2's stream ended after error (curl exited 0)" wait "${CURL_PIDS[2]}"
kill_pid "${CURL_PIDS[0]}"
CURL_PIDS=()

# published ids (from the publisher's lines) against the ids the SSE clients got
sed 's/\x1b\[[0-9;]*m//g' "$OUT/demo.log" >"$OUT/demo.txt"
published() { grep '^publish |' "$OUT/demo.txt" | grep -E "$1" | grep -o 'id=[0-9]*' | cut -d= -f2 | sort -n; }
sse_ids()   { grep '^id: ' "$OUT/$1.sse" | cut -d' ' -f2 | sort -n; }
published ' (checklist_item_update|artifact_generated|data_table_update|form_field_update|validation_result|spatial_update|agent_status|assessment_complete)' >"$OUT/ws.published"
published ' (node_end|done|error) ' >"$OUT/conv.published"
sse_ids chk-demo >"$OUT/ws.received"
sort -n <(sse_ids conv-demo-1) <(sse_ids conv-demo-2) >"$OUT/conv.received"
n_ws=$(wc -l <"$OUT/ws.published"); n_conv=$(wc -l <"$OUT/conv.published")
n_all=$(grep -c '^publish |' "$OUT/demo.txt")
store=$(grep -o 'replay finished: [0-9]* events in the store' "$OUT/demo.txt" | grep -o '[0-9]*')
expect_eq "every published event is in the store" "$n_all" "$store"
check "the replay published workspace and conversation events ($n_ws + $n_conv)" test "$n_ws" -ge 60 -a "$n_conv" -ge 15
check "every workspace event reached the SSE client exactly once" cmp -s "$OUT/ws.published" "$OUT/ws.received"
check "every conversation event reached an SSE client exactly once" cmp -s "$OUT/conv.published" "$OUT/conv.received"
for t in checklist_item_update artifact_generated data_table_update form_field_update validation_result \
         spatial_update agent_status assessment_complete; do
    check "the workspace stream carried $t" grep -qx "event: $t" "$OUT/chk-demo.sse"
done
check "conversation 1 ends with done" test "$(grep '^event: ' "$OUT/conv-demo-1.sse" | tail -1)" = "event: done"
check "conversation 2 ends with the Budget exceeded error" \
    grep -q '"error": *"Budget exceeded: 150000 tokens"' "$OUT/conv-demo-2.sse"
check "the seed's four examples are on the wire" \
    bash -c "grep -q 'Found 4 offset wells within 1,200 ft' '$OUT/chk-demo.sse' &&
             grep -q 'Smith #3' '$OUT/chk-demo.sse' &&
             grep -q 'Permian Basin Energy LLC' '$OUT/chk-demo.sse' &&
             grep -q '2 offset operators missing addresses' '$OUT/chk-demo.sse'"
check "the demo stopped its bridge (port $PORT closed)" \
    bash -c "! curl -s -o /dev/null --max-time 2 '$BASE/'"
check "the demo stopped its PostgreSQL" test ! -e "$RUN_DIR/pg/data/postmaster.pid"

# ---- 3. Ctrl-C in a real terminal, mid-replay ----

PORT2=$(free_port)
if DEMO_RUN_DIR=$RUN_DIR-tty python3 "$AEGIS_TOP/test/demo/ctrl-c.py" "$OUT/ctrl-c.log" "replaying" 180 -- \
        make -s -C "$AEGIS_TOP" demo DEMO_ARGS="--no-build --port $PORT2 --wait-for-browser 0 --start-delay 0" 2>"$OUT/ctrl-c.err"; then
    ok "Ctrl-C mid-replay: the demo exits and no process of its session is left"
else
    not_ok "Ctrl-C mid-replay: the demo exits and no process of its session is left ($(tail -3 "$OUT/ctrl-c.err" | tr '\n' ' '))"
fi
check "Ctrl-C: the replay was interrupted (no assessment_complete published)" \
    bash -c "! grep -q 'assessment_complete' '$OUT/ctrl-c.log'"
check "Ctrl-C: the demo said it stopped" grep -q "demo: stopped" <(sed 's/\x1b\[[0-9;]*m//g' "$OUT/ctrl-c.log")
check "Ctrl-C: its PostgreSQL is stopped" test ! -e "$RUN_DIR-tty/pg/data/postmaster.pid"
check "Ctrl-C: its bridge is gone (port $PORT2 closed)" \
    bash -c "! curl -s -o /dev/null --max-time 2 'http://127.0.0.1:$PORT2/'"

# ---- 4. make demo KAFKA=1 ----

PORT3=$(free_port)
if DEMO_RUN_DIR=$RUN_DIR-kafka timeout 600 make -s -C "$AEGIS_TOP" demo KAFKA=1 \
        DEMO_ARGS="--once --no-build --port $PORT3 --pace 0 --start-delay 0" >"$OUT/kafka.log" 2>&1; then
    ok "make demo KAFKA=1 --once ends with status 0"
else
    not_ok "make demo KAFKA=1 --once ends with status 0 ($(tail -3 "$OUT/kafka.log" | tr '\n' ' '))"
fi
check "KAFKA=1: the bridge ran with Kafka on" grep -q 'kafka=on' "$OUT/kafka.log"
check "KAFKA=1: wells_scraped arrived in Kafka, key and headers kept" \
    grep -q '^kafka | partition [0-9] offset [0-9]* key wells_scraped headers .*source=ingestion.*"event_type": "wells_scraped"' "$OUT/kafka.log"
check "KAFKA=1: permits_scraped arrived in Kafka" \
    grep -q '^kafka | partition [0-9] offset [0-9]* key permits_scraped .*"event_type": "permits_scraped"' "$OUT/kafka.log"
check "KAFKA=1: the broker was stopped (no broker.pid left)" test ! -e "$RUN_DIR-kafka/kafka/broker.pid"
check "KAFKA=1: its PostgreSQL is stopped" test ! -e "$RUN_DIR-kafka/pg/data/postmaster.pid"

diag "logs, SSE captures and dashboard.png: $OUT"
finish
