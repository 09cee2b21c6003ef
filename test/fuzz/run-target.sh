#!/usr/bin/env bash
# test/fuzz/run-target.sh NAME SECONDS: runs one built fuzz target for
# SECONDS over its committed corpus (NAME/corpus, read only) plus the inputs
# it found before (out/NAME/corpus), with NAME/dict when present.  Prints
# one line "fuzz NAME: N runs, corpus C, ..." and exits non-zero on a crash,
# leak, timeout or sanitizer report (the input is left in out/NAME/).
set -u
cd "$(dirname "$0")"
name=$1 seconds=$2
out=out/$name
mkdir -p "$out/corpus"
dict=()
[ -f "$name/dict" ] && dict=(-dict="$name/dict")
log=$out/run.log
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    bin/"$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="${FUZZ_MAX_LEN:-16384}" -print_final_stats=1 \
    -artifact_prefix="$out/" "${dict[@]}" "$out/corpus" "$name/corpus" >"$log" 2>&1
status=$?
runs=$(grep -aE '^stat::number_of_executed_units' "$log" | awk '{print $2}')
cov=$(grep -aoE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
corpus=$(ls "$out/corpus" | wc -l)
seeds=$(ls "$name/corpus" | wc -l)
echo "fuzz $name: ${runs:-0} runs in ${seconds} s, coverage ${cov:-?} edges, corpus $seeds seeds + $corpus found, exit $status"
if [ "$status" -ne 0 ]; then
    grep -aE 'ERROR: |SUMMARY|fuzz: |runtime error' "$log" | head -5
    ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null | head -3
fi
exit "$status"
