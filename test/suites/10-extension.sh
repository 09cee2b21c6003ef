#!/usr/bin/env bash
# 10-extension: the extension's pg_regress suites and isolation specs
# (make installcheck) against a throwaway cluster; one ok/not ok per test.
source "$(dirname "$0")/../lib.sh"
trap pg_stop_all EXIT
cd "$AEGIS_TOP"

pg_start ext
rm -rf results output_iso regression.diffs regression.out
make -s -o bridge installcheck >"$AEGIS_TEST_TMP/installcheck.$$.log" 2>&1
status=$?
# pg_regress prints "test name ... ok" / "... FAILED" per test
while read -r line; do
    name=$(echo "$line" | awk '{print $2}')
    case "$line" in
        *" ok "*|*" ok") ok "pg_regress $name" ;;
        *FAILED*) not_ok "pg_regress $name" ;;
    esac
done < <(grep -E '^(test|     ) ' "$AEGIS_TEST_TMP/installcheck.$$.log" | grep -E '\.\.\. ')
grep -qE 'All [0-9]+ tests passed' "$AEGIS_TEST_TMP/installcheck.$$.log" || {
    diag "installcheck exit status $status"
    cat regression.diffs output_iso/regression.diffs 2>/dev/null | head -80 | sed 's/^/# /'
}
check "installcheck exit status 0" test "$status" -eq 0
log="$AEGIS_TEST_TMP/pg-ext-$$/server.log"
check "no reference leaks or assertion failures in the server log" \
    bash -c "! grep -E 'leak|TRAP|PANIC|server process .* was terminated' '$log'"

# Without shared_preload_libraries, CREATE EXTENSION fails with a clear hint.
pg_start nopreload "shared_preload_libraries = ''"
msg=$(psql -X -v ON_ERROR_STOP=1 -c "CREATE EXTENSION aegis_events" 2>&1)
check "CREATE EXTENSION without preload fails" test $? -ne 0
check "the error names shared_preload_libraries" grep -q "must be loaded via shared_preload_libraries" <<<"$msg"
check "the hint says what to set" grep -q "Add aegis_events to shared_preload_libraries" <<<"$msg"
finish
