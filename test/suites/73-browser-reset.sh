#!/usr/bin/env bash
# 73-browser-reset: the dashboard in headless chromium gets a retention
# `reset` when it resumes below its stream's horizon and rebuilds the
# workspace view from the retained events (test/browser/retention-reset.test.js).
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$AEGIS_TOP/test/browser/setup.sh"

browser_suite_start 73-browser-reset || { finish; exit; }
pg_start browser-reset || { not_ok "PostgreSQL started"; finish; exit; }
check "CREATE EXTENSION aegis_events" psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION aegis_events"
mkdir -p "$OUT/static"
cp -r "$AEGIS_TOP/web/." "$OUT/static/"
AEGIS_BRIDGE_BIN=$BRIDGE AEGIS_PAGES_DIR="$OUT/static" AEGIS_OUT="$OUT" AEGIS_BRIDGE_PORT=$(free_port) \
    run_node_tap "browser retention reset" retention-reset.test.js
check "the bridge's log has no sanitizer report (ASan/LSan/UBSan)" sanitizer_clean "$OUT/bridge.log"
finish
