#!/usr/bin/env bash
# 70-browser-sse: issue 4's real-browser test. Debian's chromium (headless,
# playwright-core) opens EventSource on a workspace and a conversation, the
# seed's example events are published through SQL, the bridge is killed and
# restarted mid-stream; the page must end with every event exactly once, in
# order, and the conversation stream must end after done without reconnecting.
# The bridge runs as its ASan/UBSan build. The dashboard watches the same streams in a second tab and must show the
# connection state through the restart. The node side is
# test/browser/sse-restart.test.js.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$AEGIS_TOP/test/browser/setup.sh"

browser_suite_start 70-browser-sse || { finish; exit; }

pg_start browser-sse || { not_ok "PostgreSQL started"; finish; exit; }
check "CREATE EXTENSION aegis_events" psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION aegis_events"

# the bridge serves the dashboard (web/) and the probe page side by side
mkdir -p "$OUT/static"
cp -r "$AEGIS_TOP/web/." "$AEGIS_TOP/test/browser/pages/sse-probe.html" \
    "$AEGIS_TOP/test/browser/pages/sse-probe.js" "$OUT/static/"

AEGIS_BRIDGE_BIN=$BRIDGE AEGIS_PAGES_DIR="$OUT/static" AEGIS_OUT="$OUT" \
AEGIS_BRIDGE_PORT=$(free_port) \
    run_node_tap "browser SSE scenario" sse-restart.test.js
check "the bridge's log has no sanitizer report (ASan/LSan/UBSan)" sanitizer_clean "$OUT/bridge.log"

diag "screenshot and events: $OUT"
finish
