#!/usr/bin/env bash
# 40-bridge-unit: the bridge's unit tests (config, SSE/HTTP parsing, Kafka
# producer against librdkafka's mock cluster, consumer encoding, lws timers
# on the libev loop, log_text, pgconn_result_int8), built plain and with
# AddressSanitizer/UBSan (make -C bridge unit).
source "$(dirname "$0")/../lib.sh"
cd "$AEGIS_TOP"
log="$AEGIS_TEST_TMP/bridge-unit.$$.log"
make -s -C bridge unit >"$log" 2>&1
status=$?
# each unit test prints its own "ok - …" / "not ok - …" lines
grep -E '^(ok|not ok) - ' "$log"
grep -E '^not ok - ' "$log" >/dev/null && TESTS_FAILED=1
check "make -C bridge unit exits 0 (plain and ASan builds)" test "$status" -eq 0
check "no sanitizer report" bash -c "! grep -E 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' '$log'"
[ "$status" -eq 0 ] || tail -30 "$log" | sed 's/^/# /'
finish
