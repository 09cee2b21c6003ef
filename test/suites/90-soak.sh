#!/bin/bash
# test/suites/90-soak.sh: a 2-minute run of the soak test (test/soak/soak.sh;
# `make soak` runs it for 30 minutes): publishers, SSE clients reconnecting
# with Last-Event-ID, the Kafka drain to a real broker, a consumer, and
# retention when the extension has it, all at once, with the plain bridge
# build (ASan is too slow for a soak).  Checks no gap, no duplicate, every
# event in Kafka and through the consumer, RSS growth < 5% after warm-up, and
# draws the chart.  Then the checker itself is shown to fail: soak_check.py
# runs on copies of the run's records with one fault put in each (a gap, a
# duplicate, a missing Kafka message, a consumer short of one message, RSS
# grown 10%, a final client behind) and must report each.
# Output: test/out/soak-suite (SOAK_OUT).
set -u
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
OUT=${SOAK_OUT:-$AEGIS_TOP/test/out/soak-suite}
make -s -C "$AEGIS_TOP/bridge" all >/dev/null || { not_ok "soak: the bridge builds"; finish; exit 1; }

SOAK_MINUTES=2 SOAK_OUT=$OUT bash "$AEGIS_TOP/test/soak/soak.sh" >"$AEGIS_TEST_TMP/soak-$$.out" 2>&1
RC=$?
cat "$AEGIS_TEST_TMP/soak-$$.out"
TESTS_PASSED=$(grep -c '^ok - ' "$AEGIS_TEST_TMP/soak-$$.out")
TESTS_FAILED=$(grep -c '^not ok - ' "$AEGIS_TEST_TMP/soak-$$.out")
rm -f "$AEGIS_TEST_TMP/soak-$$.out"
[ "$RC" -eq 0 ] || [ "$TESTS_FAILED" -gt 0 ] || not_ok "soak: soak.sh exited $RC"
[ -f "$OUT/run.json" ] && [ -f "$OUT/clients.jsonl" ] || { not_ok "soak: the run left its records"; finish; exit 1; }

# ---- the checker fails on broken records ----

M=$(mktemp -d "$AEGIS_TEST_TMP/soak-mut-XXXXXX")
# mutant NAME EXPECTED_NOT_OK_TEXT PYTHON: copy the records, apply PYTHON
# (d is the copy's folder), run the check; it must exit 1 with that not ok line
mutant() {
    local name=$1 text=$2 code=$3
    rm -rf "$M/$name"; mkdir -p "$M/$name"
    cp "$OUT"/{run.json,published.csv,clients.jsonl,kafka.jsonl,consumed.txt,samples.jsonl} "$M/$name/"
    python3 -c "import json, sys; d = sys.argv[1]
$code" "$M/$name" || { not_ok "soak checker: mutant $name applies"; return; }
    /usr/bin/python3 "$AEGIS_TOP/test/soak/soak_check.py" "$M/$name" >"$M/$name/out" 2>&1
    local rc=$?
    if [ "$rc" -eq 1 ] && grep -q "^not ok - soak: $text" "$M/$name/out"; then
        ok "soak checker: $name is reported"
    else
        not_ok "soak checker: $name not reported (exit $rc): $(grep '^not ok' "$M/$name/out" | head -2)"
    fi
}
LIVES='
def edit_lives(f):
    p = d + "/clients.jsonl"
    lives = [json.loads(l) for l in open(p)]
    for lf in lives:
        if len(lf["ids"]) >= 5 and not lf["final"]:
            f(lf)
            break
    else:
        sys.exit(1)
    open(p, "w").write("".join(json.dumps(l) + "\n" for l in lives))
'
mutant gap "every client life got" "$LIVES
def f(lf):
    for k in ('ids', 'recv', 'conn'): del lf[k][2]
edit_lives(f)"
mutant duplicate "every client life got" "$LIVES
def f(lf):
    for k in ('ids', 'recv', 'conn'): lf[k].insert(3, lf[k][2])
edit_lives(f)"
mutant final-behind "every client caught up" "
p = d + '/clients.jsonl'
lives = [json.loads(l) for l in open(p)]
lf = next(l for l in lives if l['final'] and len(l['ids']) >= 2)
for k in ('ids', 'recv', 'conn'): lf[k].pop()
open(p, 'w').write(''.join(json.dumps(l) + '\n' for l in lives))"
mutant kafka-missing "every topic event reached Kafka" "
p = d + '/kafka.jsonl'
lines = open(p).readlines()
open(p, 'w').write(''.join(lines[:5] + lines[6:]))"
mutant consumer-short "the consumer applied every message once" "
p = d + '/consumed.txt'
r, n, dead = map(int, open(p).read().split())
open(p, 'w').write('%d %d %d' % (r - 1, n - 1, dead))"
mutant rss-growth "bridge RSS after warm-up grew" "
run = json.load(open(d + '/run.json'))
p = d + '/samples.jsonl'
ss = [json.loads(l) for l in open(p)]
for s in ss:
    if s['t'] > run['start'] + run['warmup_s'] + 15:
        s['rss_kb'] = int(s['rss_kb'] * 1.10)
open(p, 'w').write(''.join(json.dumps(s) + '\n' for s in ss))"
[ "$TESTS_FAILED" -eq 0 ] && rm -rf "$M"
finish
