#!/usr/bin/env bash
# 74-browser-runs: the dashboard's message box in headless Debian chromium
# (test/browser/ask.test.js): a typed question becomes a run that the
# reference worker (examples/worker) answers; the page shows the question,
# every node_end once and the done summary.  PostgreSQL with the extension,
# agent type rule_37 configured, aegis-bridge's ASan build serving web/.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$AEGIS_TOP/test/browser/setup.sh"

browser_suite_start 74-browser-runs || { finish; exit; }
/usr/bin/python3 -c 'import psycopg' || { not_ok "python3-psycopg is installed"; finish; exit; }

pg_start browser-runs || { not_ok "PostgreSQL started"; finish; exit; }
check "CREATE EXTENSION aegis_events and agent type rule_37" psql -X -q -v ON_ERROR_STOP=1 \
    -c "CREATE EXTENSION aegis_events" -c "SELECT aegis.configure_agent('rule_37')"

/usr/bin/python3 "$AEGIS_TOP/examples/worker/worker.py" --agent-type rule_37 --step-seconds 0.2 \
    --dsn "host=$PGHOST port=$PGPORT user=postgres dbname=postgres" >"$OUT/worker.log" 2>&1 &
PIDS+=($!)
PORT=$(free_port)
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 "$BRIDGE" --listen "127.0.0.1:$PORT" --static-dir "$AEGIS_TOP/web" \
    --no-drain >"$OUT/bridge.log" 2>&1 &
PIDS+=($!)
check "the bridge serves the dashboard" wait_for 30 curl -sf "http://127.0.0.1:$PORT/"

AEGIS_BASE="http://127.0.0.1:$PORT" AEGIS_OUT="$OUT" run_node_tap "message box scenario" ask.test.js
check "the bridge's log has no sanitizer report (ASan/LSan/UBSan)" sanitizer_clean "$OUT/bridge.log"
diag "screenshot: $OUT/ask.png"
finish
