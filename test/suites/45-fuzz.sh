#!/usr/bin/env bash
# 45-fuzz: builds every libFuzzer target under test/fuzz (ASan + UBSan) and
# runs each for FUZZ_TEST_SECONDS (default 10) over its committed corpus:
# one ok/not ok per target; a crash, leak, timeout or sanitizer report
# fails it (the input is left in test/fuzz/out/<target>/).  First, every
# committed corpus input (the seeds and the inputs of crashes once found)
# runs once: a regression fails at once; so does every input in
# <target>/findings/ (found, reported, not fixed yet) until it is fixed.
# `make fuzz` runs them longer.
source "$(dirname "$0")/../lib.sh"
cd "$AEGIS_TOP/test/fuzz"
seconds=${FUZZ_TEST_SECONDS:-10}

if ! make -s all >"$AEGIS_TEST_TMP/fuzz-build.$$.log" 2>&1; then
    sed 's/^/# /' "$AEGIS_TEST_TMP/fuzz-build.$$.log" | head -40
    not_ok "the fuzz targets build"
    finish
fi
ok "the fuzz targets build"
targets=$(make -s --no-print-directory -f Makefile -f - print-targets <<<'print-targets: ; @echo $(TARGETS)')
for t in $targets; do
    if bin/"$t" -runs=0 "$t"/corpus >"$AEGIS_TEST_TMP/fuzz-$t.$$.log" 2>&1; then
        ok "fuzz $t: the committed corpus ($(ls "$t"/corpus | wc -l) inputs) runs clean"
    else
        grep -aE 'ERROR: |SUMMARY|fuzz: ' "$AEGIS_TEST_TMP/fuzz-$t.$$.log" | head -5 | sed 's/^/# /'
        not_ok "fuzz $t: the committed corpus runs clean"
    fi
    # inputs found and not fixed yet (see $t/findings/README): each must now run clean
    for f in "$t"/findings/*; do
        [ -f "$f" ] && [ "$(basename "$f")" != README ] || continue
        if timeout 60 bin/"$t" -timeout=5 "$f" >"$AEGIS_TEST_TMP/fuzz-finding.$$.log" 2>&1; then
            ok "fuzz $t: finding $(basename "$f") runs clean"
        else
            grep -aE 'fuzz: |SUMMARY' "$AEGIS_TEST_TMP/fuzz-finding.$$.log" | head -2 | sed 's/^/# /'
            not_ok "fuzz $t: finding $(basename "$f") runs clean (see test/fuzz/$t/findings/README)"
        fi
    done
    line=$(./run-target.sh "$t" "$seconds")
    status=$?
    diag "$line"
    check "fuzz $t for $seconds s: no crash (${line#*: })" test "$status" -eq 0
done
finish
