# shellcheck shell=bash
# test/browser/setup.sh: helpers for the suites that drive a real browser
# (sourced after test/lib.sh, not run). Owns: installing playwright-core from
# the committed package-lock.json (npm ci, no browser download), finding
# Debian's chromium and the bridge binary, and running a node test whose
# "ok - " / "not ok - " lines count in the suite's tally.

BROWSER_DIR="$AEGIS_TOP/test/browser"

# browser_setup: playwright-core installed, chromium present; 0 or 1 with a reason
browser_setup() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "node/npm missing (apt-get install nodejs npm)" >&2; return 1
    fi
    if [ ! -x /usr/bin/chromium ]; then
        echo "/usr/bin/chromium missing (apt-get install chromium)" >&2; return 1
    fi
    if [ ! -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ] \
        || [ "$BROWSER_DIR/package-lock.json" -nt "$BROWSER_DIR/node_modules/.package-lock.json" ]; then
        ( cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error ) >&2 \
            || { echo "npm ci failed in test/browser" >&2; return 1; }
    fi
}

# bridge_bin: the bridge the browser tests run (AEGIS_BRIDGE_BIN overrides)
bridge_bin() {
    echo "${AEGIS_BRIDGE_BIN:-$AEGIS_TOP/bridge/aegis-bridge}"
}

# bridge_asan_bin: the ASan/UBSan build (made with `make -C bridge asan`), or
# AEGIS_BRIDGE_BIN when that is set; empty if it cannot be built
bridge_asan_bin() {
    if [ -n "${AEGIS_BRIDGE_BIN:-}" ]; then echo "$AEGIS_BRIDGE_BIN"; return 0; fi
    make -s -C "$AEGIS_TOP/bridge" asan >&2 || return 0
    echo "$AEGIS_TOP/bridge/aegis-bridge-asan"
}

# sanitizer_clean LOG: no AddressSanitizer/LeakSanitizer/UBSan report in LOG
sanitizer_clean() {
    ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1"
}

# run_node_tap NAME SCRIPT [ARGS...]: runs node SCRIPT, echoes its lines and
# counts its ok/not ok lines; a script that fails without a "not ok" line
# counts as one failure named NAME
run_node_tap() {
    local name=$1 script=$2 line rc=none before=$TESTS_FAILED
    shift 2
    while IFS= read -r line; do
        case $line in
            "ok - "*)     TESTS_PASSED=$((TESTS_PASSED+1)) ;;
            "not ok - "*) TESTS_FAILED=$((TESTS_FAILED+1)) ;;
            "#node-exit "*) rc=${line#\#node-exit }; continue ;;
        esac
        echo "$line"
    done < <(cd "$BROWSER_DIR" && node "$script" "$@" 2>&1; echo "#node-exit $?")
    if [ "$rc" != 0 ] && [ "$TESTS_FAILED" = "$before" ]; then
        not_ok "$name (node exited $rc)"
    fi
}

# browser_suite_start NAME: the start every browser suite shares. Sets OUT
# (test/out/NAME, emptied), PIDS (processes the suite starts; append to it),
# BRIDGE (the ASan build), and a cleanup on exit that stops the bridges the
# node side recorded in OUT/bridge.pids, every pid in PIDS and every
# PostgreSQL started. Returns 1 after a "not ok" when the bridge's ASan
# build or the browser is missing.
browser_suite_start() {
    OUT="$AEGIS_TOP/test/out/$1"
    rm -rf "$OUT"; mkdir -p "$OUT"
    PIDS=()
    trap browser_suite_cleanup EXIT
    BRIDGE=$(bridge_asan_bin)
    [ -x "$BRIDGE" ] || { not_ok "aegis-bridge's ASan build is made (make -C bridge asan)"; return 1; }
    diag "bridge: $BRIDGE"
    browser_setup || { not_ok "playwright-core and chromium are installed"; return 1; }
}

browser_suite_cleanup() {
    local pid
    if [ -f "$OUT/bridge.pids" ]; then
        while read -r pid; do kill_pid "$pid"; done <"$OUT/bridge.pids"
    fi
    for pid in "${PIDS[@]}"; do kill_pid "$pid"; done
    pg_stop_all
}
