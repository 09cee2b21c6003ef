#!/bin/bash
# bench/sse/h2.sh (part of `make bench-sse`): aegis-bridge's SSE over HTTP/2
# (TLS) against plain HTTP/1.1 and HTTP/1.1 over TLS, same run, same client
# (bench/sse/h2load.js on node's http/https/http2), all on 127.0.0.1.
#
# 1. Memory per idle stream: on a freshly started bridge per protocol,
#    IDLE streams (one per workspace; HTTP/2: PER_CONN streams per
#    connection, HTTP/1.1: a connection each); (bridge RSS after - before) /
#    IDLE. The client's memory is not counted.
# 2. Latency commit -> receive: SUBS subscribers of one stream; one psql
#    session publishes EVENTS events (a DO block, COMMIT after each, 5 ms
#    apart), each carrying clock_timestamp() taken just before its commit;
#    latency = the client's receive time - that (same host clock). ROUNDS
#    rounds, the order of the protocols rotating; medians of p50/p99.
# Ratios are against plain HTTP/1.1 measured in the same run. Goal (issue
# 14): HTTP/2 at most 1.3x the memory per stream of HTTP/1.1, same p99.
# Environment: IDLE (1000), PER_CONN (100), SUBS (20: the node client, not the bridge, is the
# bottleneck past a few thousand deliveries a second), EVENTS (300), ROUNDS (3).
# Bounded: the whole run is killed (cleanly, by the trap) after 400 s.
set -u
if [ -z "${BENCH_H2_BOUNDED:-}" ]; then
    BENCH_H2_BOUNDED=1 exec timeout --signal=TERM --kill-after=30 400 bash "$0" "$@"
fi
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$TOP/test/lib.sh"
IDLE=${IDLE:-1000}
PER_CONN=${PER_CONN:-100}
SUBS=${SUBS:-20}
EVENTS=${EVENTS:-300}
ROUNDS=${ROUNDS:-3}
for v in IDLE PER_CONN SUBS EVENTS ROUNDS; do
    [[ "${!v}" =~ ^[1-9][0-9]{0,4}$ ]] || { echo "bench-sse h2: $v must be 1-99999, got '${!v}'" >&2; exit 2; }
done
[ "$PER_CONN" -le 128 ] || { echo "bench-sse h2: PER_CONN must be at most 128 (the bridge's stream limit)" >&2; exit 2; }
BRIDGE=${AEGIS_BRIDGE:-$TOP/bridge/aegis-bridge}
LOAD=(node "$TOP/bench/sse/h2load.js")
W=$(mktemp -d "$AEGIS_TEST_TMP/bench-h2-XXXXXX")
chmod 755 "$W"
BR_PID= CL_PID=

cleanup() {
    kill_pid "$CL_PID"
    kill_pid "$BR_PID"
    pg_stop_all
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' TERM INT

ulimit -n "$(ulimit -Hn)"
make -s -C "$TOP/bridge" all >/dev/null || { echo "bench-sse h2: bridge build failed" >&2; exit 1; }
"$TOP/test/tls/mkcerts.sh" "$W/certs" >/dev/null || exit 1
pg_start bench-h2 "max_connections = 50" >/dev/null || { echo "bench-sse h2: PostgreSQL did not start" >&2; exit 1; }
psql -qX -c "CREATE EXTENSION aegis_events" || exit 1

# start_bridge PROTO: a fresh bridge for PROTO (TLS unless h1); sets BASE
start_bridge() {
    local port tls=()
    port=$(free_port)
    if [ "$1" = h1 ]; then BASE=http://127.0.0.1:$port; else
        BASE=https://127.0.0.1:$port; tls=(--tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key"); fi
    "$BRIDGE" --listen "127.0.0.1:$port" --no-drain --max-clients 20000 --max-clients-per-ip 20000 "${tls[@]}" >>"$W/bridge.log" 2>&1 &
    BR_PID=$!
    wait_for 30 curl -skf -o /dev/null "$BASE/healthz" || { echo "bench-sse h2: bridge did not start" >&2; exit 1; }
}
stop_bridge() { kill_pid "$BR_PID"; BR_PID=; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$BR_PID/status"; }

declare -A MEM P50 P99
for proto in h1 h1tls h2; do
    start_bridge "$proto"
    sleep 1
    before=$(rss_kb)
    rm -f "$W/idle.ready" "$W/idle.done"
    "${LOAD[@]}" idle "$BASE" --proto "$proto" --streams "$IDLE" --per-conn "$PER_CONN" --prefix "idle-$proto" \
        --ready "$W/idle.ready" --done "$W/idle.done" --timeout 120 2>"$W/idle.err" &
    CL_PID=$!
    wait_for 120 test -f "$W/idle.ready" || { echo "bench-sse h2: $proto idle streams did not open" >&2; cat "$W/idle.err" >&2; exit 1; }
    sleep 1
    after=$(rss_kb)
    MEM[$proto]=$(( (after - before) * 1024 / IDLE ))
    echo "# idle $proto: bridge RSS $before kB -> $after kB for $IDLE streams: ${MEM[$proto]} B/stream" >&2
    touch "$W/idle.done"; wait "$CL_PID"; CL_PID=
    stop_bridge
done

# latency: one plain bridge and one TLS bridge (h1tls and h2 share it)
start_bridge h1; PLAIN=$BASE; PLAIN_PID=$BR_PID
start_bridge h2; TLSB=$BASE; TLS_PID=$BR_PID
BR_PID=
trap 'kill_pid "$PLAIN_PID"; kill_pid "$TLS_PID"; cleanup' EXIT
protos=(h1 h1tls h2)
for r in $(seq 1 "$ROUNDS"); do
    for k in 0 1 2; do
        proto=${protos[$(( (k + r) % 3 ))]}
        base=$TLSB; [ "$proto" = h1 ] && base=$PLAIN
        name="lat-$proto-$r"
        rm -f "$W/lat.ready"
        "${LOAD[@]}" lat "$base" --proto "$proto" --subs "$SUBS" --stream "$name" --events "$EVENTS" \
            --per-conn "$PER_CONN" --ready "$W/lat.ready" --timeout 120 >"$W/lat.out" 2>"$W/lat.err" &
        CL_PID=$!
        wait_for 60 test -f "$W/lat.ready" || { echo "bench-sse h2: $proto subscribers did not open" >&2; cat "$W/lat.err" >&2; exit 1; }
        psql -qX -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN FOR i IN 1..$EVENTS LOOP
            PERFORM aegis.publish_agent_status('$name', 'running', extract(epoch from clock_timestamp())::text);
            COMMIT; PERFORM pg_sleep(0.005); END LOOP; END \$\$" || exit 1
        wait "$CL_PID"; rc=$?; CL_PID=
        [ "$rc" = 0 ] || { echo "bench-sse h2: $proto round $r failed" >&2; cat "$W/lat.err" >&2; exit 1; }
        P50[$proto]+="$(jq -r .p50 "$W/lat.out") "
        P99[$proto]+="$(jq -r .p99 "$W/lat.out") "
        echo "# latency $proto round $r: $(cat "$W/lat.out")" >&2
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}'; }
echo
echo "HTTP/2 vs HTTP/1.1 ($IDLE idle streams, $PER_CONN per HTTP/2 connection; latency: $SUBS subscribers of one stream, $EVENTS events, median of $ROUNDS rounds)"
echo
echo "| protocol | memory per idle stream | ratio | commit -> client p50 / p99 (ms) | p99 ratio |"
echo "|---|---|---|---|---|"
for proto in h1 h1tls h2; do
    p50=$(median <<<"${P50[$proto]}"); p99=$(median <<<"${P99[$proto]}")
    [ "$proto" = h1 ] && { base_mem=${MEM[h1]}; base_p99=$p99; }
    label=$proto; case $proto in h1) label="HTTP/1.1 plain";; h1tls) label="HTTP/1.1 + TLS";; h2) label="HTTP/2 + TLS";; esac
    echo "| $label | ${MEM[$proto]} B | $(ratio "${MEM[$proto]}" "$base_mem") | $p50 / $p99 | $(ratio "$p99" "$base_p99") |"
done
