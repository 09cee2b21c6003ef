#!/usr/bin/env bash
# demo/publish.sh: the demo publisher. Replays demo/replay.sql (the seed's
# compliance assessment and conversation flow) through psql, one event per
# transaction, with the replay's pauses scaled by --pace.
# Connection: libpq's PG* variables (or --dbname CONNINFO).
#   demo/publish.sh [--checklist ID] [--conv1 ID] [--conv2 ID] [--pace X] [--dbname CONNINFO]
# Defaults: chk-demo, conv-demo-1, conv-demo-2, pace 1 (about 45 s; --pace 0.1 replays in 5 s).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checklist=chk-demo conv1=conv-demo-1 conv2=conv-demo-2 pace=1 dbname=

usage() { sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die()   { echo "publish.sh: $*" >&2; exit 2; }

# an id must be what the bridge accepts in a stream URL: 1 to 128 of [A-Za-z0-9._:-]
valid_id() { [[ $1 =~ ^[A-Za-z0-9._:-]{1,128}$ ]]; }

while [ $# -gt 0 ]; do
    case $1 in
        --checklist) checklist=${2-}; shift 2 || die "--checklist needs a value" ;;
        --conv1)     conv1=${2-};     shift 2 || die "--conv1 needs a value" ;;
        --conv2)     conv2=${2-};     shift 2 || die "--conv2 needs a value" ;;
        --pace)      pace=${2-};      shift 2 || die "--pace needs a value" ;;
        --dbname)    dbname=${2-};    shift 2 || die "--dbname needs a value" ;;
        -h|--help)   usage; exit 0 ;;
        *)           usage >&2; die "unknown argument '$1'" ;;
    esac
done

for id in "$checklist" "$conv1" "$conv2"; do
    valid_id "$id" || die "bad id '$id': use 1 to 128 of A-Z a-z 0-9 . _ : -"
done
[[ $pace =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad --pace '$pace': a number >= 0, e.g. 0.1 for ten times faster"

exec psql -X -q -t -A -v ON_ERROR_STOP=1 ${dbname:+--dbname="$dbname"} \
    -v checklist="$checklist" -v conv1="$conv1" -v conv2="$conv2" -v pace="$pace" \
    -f "$here/replay.sql"
