#!/usr/bin/env bash
# bench/sse/peers-b.sh: cell b of the independent harness (../shared/peers-sse:
# 1,000 Go subscribers over 100 streams, 1,000 events/s for 20 s) in ROUNDS
# rounds of three runs each, to separate the harness from the bridge:
#   nchan           run-nchan.sh b (ssebench pub: fixed schedule, 4 connections)
#   bridge-fixed    4 publishing sessions on the same fixed schedule as nchan's
#                   (a DO loop each, one transaction per event, event j+4k due
#                   at start + (j+4k)/1000 s)
#   bridge-poisson  compare.sh's publisher: pgbench -c 4 -R 1000 (pgbench
#                   draws the gaps between transactions from an exponential
#                   distribution: Poisson arrivals, bursts)
# t0 on the bridge side is clock_timestamp() inside the publishing statement,
# as in compare.sh; the subscriber is the same ssebench and the same
# run-against.sh.  Loopback only; every run is under timeout(1); the stack
# (with_bridge.sh: throwaway PostgreSQL + the bridge on 127.0.0.1:8001) is
# stopped by with_bridge.sh itself.
# Usage (project root, after make install): PEERS=../shared/peers-sse [ROUNDS=3]
#   [BRIDGE=bridge/aegis-bridge] bash bench/sse/peers-b.sh
set -u
PEERS=$(cd "${PEERS:-../shared/peers-sse}" && pwd) || exit 2
ROUNDS=${ROUNDS:-3}
[[ "$ROUNDS" =~ ^[1-9]$ ]] || { echo "peers-b: ROUNDS must be 1-9" >&2; exit 2; }
BRIDGE=$(realpath "${BRIDGE:-bridge/aegis-bridge}")
BIN=$(mktemp -d); ln -s "$BRIDGE" "$BIN/aegis-bridge"   # with_bridge.sh runs the aegis-bridge found first in PATH
trap 'rm -rf "$BIN"' EXIT
export PEERS
export MODE RESULT

bridge_side() {
  set -u
  ulimit -n "$(ulimit -Hn)"
  local R pub j per=5000
  R=$(mktemp -d)
  psql -X -q -c 'CREATE SEQUENCE bench_seq' -c "SELECT setval('bench_seq', 100)" >/dev/null
  if [ "$MODE" = poisson ]; then
    printf '%s\n' "SELECT aegis.publish_workspace_event('benchb-' || (nextval('bench_seq') % 100), 'agent_status', format('{\"status\":\"running\",\"message\":\"t0=%s\"}', (extract(epoch FROM clock_timestamp()) * 1e9)::bigint)::jsonb);" >"$R/pub.sql"
    pub="pgbench -n -f '$R/pub.sql' -c 4 -j 2 -R 1000 -t $per >'$R/pgbench.txt' 2>&1"
  else
    cat >"$R/pub.sh" <<'SH'
j=$1 per=$2
psql -X -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$
DECLARE st timestamptz := date_trunc('second', clock_timestamp()) + interval '1 s'; d timestamptz;
BEGIN
  FOR k IN 0..$((per - 1)) LOOP
    d := st + (($j + k * 4)::float8 / 1000) * interval '1 s';
    IF d > clock_timestamp() THEN PERFORM pg_sleep(extract(epoch FROM d - clock_timestamp())); END IF;
    PERFORM aegis.publish_workspace_event('benchb-' || (nextval('bench_seq') % 100), 'agent_status',
      format('{"status":"running","message":"t0=%s"}', (extract(epoch FROM clock_timestamp()) * 1e9)::bigint)::jsonb);
    COMMIT;
  END LOOP;
END \$\$;
SQL
SH
    pub=""; for j in 0 1 2 3; do pub="$pub bash '$R/pub.sh' $j $per &"; done; pub="$pub wait"
  fi
  N=1000 CHANNELS=100 EXPECT=200 DURATION=60s OUT=$R/bridge.json PUB_CMD="$pub" PUB_TIMEOUT=120 \
    "$PEERS"/run-against.sh 'http://127.0.0.1:8001/workspaces/benchb-{i}/stream' >"$R/sub.txt" 2>&1
  python3 -c "import json;s=json.load(open('$R/bridge.json'));l=s['latency_ms'];print('%d/%d p50 %.3f p99 %.3f'%(s['events'],s['expected_total'],l['p50'],l['p99']))" >"$RESULT" 2>/dev/null || echo "no result" >"$RESULT"
  rm -rf "$R"
}
export -f bridge_side

for r in $(seq 1 "$ROUNDS"); do
  o=$(mktemp -d)
  OUT=$o timeout 200 "$PEERS"/run-nchan.sh b 1 >/dev/null 2>&1
  echo "round $r nchan          $(python3 -c "import json,glob;s=json.load(open(glob.glob('$o/*.sub.json')[0]));l=s['latency_ms'];print('%d/%d p50 %.3f p99 %.3f'%(s['events'],s['expected_total'],l['p50'],l['p99']))" 2>/dev/null || echo "no result")"
  rm -rf "$o"
  for m in fixed poisson; do
    echo "no result" >"$BIN/result"
    MODE=$m RESULT=$BIN/result BRIDGE_ARGS='--max-clients-per-ip 2000' PATH="$BIN:$PATH" \
      timeout 200 "$PEERS"/with_bridge.sh bash -c bridge_side >/dev/null 2>&1
    echo "round $r bridge-$m $( [ $m = fixed ] && echo '  ')$(cat "$BIN/result")"
  done
  echo "# load average after round $r: $(cut -d' ' -f1-3 /proc/loadavg)"
done
