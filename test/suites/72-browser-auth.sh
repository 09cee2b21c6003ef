#!/usr/bin/env bash
# 72-browser-auth: authorization in a real browser (headless Debian chromium,
# playwright-core) against aegis-bridge's ASan/UBSan build with
# --auth-jwt-key: the dashboard's token URL becomes a SameSite=Strict cookie
# and events arrive, runs go by POST, a token for another workspace shows
# "not authorized", a javascript: artifact URL is no link, and a page on
# another origin that embeds ?message= and posts a form records no run.
# The node side is test/browser/auth.test.js.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
source "$AEGIS_TOP/test/browser/setup.sh"

browser_suite_start 72-browser-auth || { finish; exit; }
pg_start browser-auth || { not_ok "PostgreSQL started"; finish; exit; }
check "CREATE EXTENSION aegis_events" psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION aegis_events"
# runs are taken for configured agent types only (0.3.0, when aegis.configure_agent exists)
psql -qX -c "DO \$\$ BEGIN IF to_regproc('aegis.configure_agent') IS NOT NULL THEN
    PERFORM aegis.configure_agent('rule_37', queue_timeout => '1 hour'); END IF; END \$\$" \
    || { not_ok "agent type rule_37 configured"; finish; exit 1; }

mkdir -p "$OUT/static"
cp -r "$AEGIS_TOP/web/." "$OUT/static/"
head -c 48 /dev/urandom | base64 | tr -d '\n' >"$OUT/jwt.secret"
TOKEN=$("$BRIDGE" token --key "$OUT/jwt.secret" --sub user-1 --subscribe workspace:chk-auth \
    --subscribe 'conversation:conv-*' --run rule_37 --ttl 1h)
OTHER=$("$BRIDGE" token --key "$OUT/jwt.secret" --sub user-2 --subscribe workspace:chk-other --ttl 1h)
check "aegis-bridge token mints the page tokens" test -n "$TOKEN" -a -n "$OTHER"

AEGIS_BRIDGE_BIN=$BRIDGE AEGIS_PAGES_DIR="$OUT/static" AEGIS_OUT="$OUT" \
AEGIS_BRIDGE_PORT=$(free_port) AEGIS_ATTACKER_PORT=$(free_port) AEGIS_JWT_KEY_FILE="$OUT/jwt.secret" \
AEGIS_TOKEN=$TOKEN AEGIS_TOKEN_OTHER=$OTHER \
    run_node_tap "browser auth scenario" auth.test.js
check "the bridge's log has no sanitizer report (ASan/LSan/UBSan)" sanitizer_clean "$OUT/bridge.log"
diag "screenshots and log: $OUT"
finish
