#!/bin/bash
# bench/sse/run.sh (`make bench-sse`): aegis-bridge's SSE delivery against a
# baseline in the same run, nginx with the nchan module (Debian's
# libnginx-mod-nchan) as an SSE pub/sub server fed by HTTP POST.  Both are
# measured by the same client, bench/sse/sseload.c (C, epoll, raw sockets;
# built here into a temp dir).
#
# Starts everything itself on 127.0.0.1 and stops it by pid, even on
# failure: a throwaway PostgreSQL 15 with the extension (test/lib.sh
# pg_start), the plain bridge (make -C bridge; --max-clients 12000, --no-drain)
# and nginx (non-daemon, own prefix and config in a temp dir, worker_processes
# NCHAN_WORKERS, nchan_publisher on /pub/<channel>, nchan_subscriber
# eventsource on /sub/<channel>).
#
# 1. Memory per idle connection: on freshly started servers, IDLE_CONNS SSE
#    connections (once spread one per stream, once all on one stream);
#    (server RSS after - before) / IDLE_CONNS.  RSS = VmRSS of the bridge,
#    nginx master + workers summed (PSS from smaps_rollup is printed too:
#    nginx's master and worker share pages that the RSS sum counts twice).
# 2. Latency: commit -> receive, per delivery.  The client publishes at RATE
#    events/s (event k due at k / RATE; PUBLISHERS threads with a connection
#    each, one call at a time per thread, so a slow call does not lower the
#    offered rate unless all are busy): bridge `BEGIN; SELECT
#    aegis.publish_workspace_event(...); COMMIT`, nchan `POST /pub/<channel>`.
#    Latency (the target) = subscriber read() time - the time the COMMIT /
#    the POST was sent, both CLOCK_MONOTONIC in the same process: the event
#    exists from its commit on, and nchan's publish is its POST.  Also
#    printed: from the call's return (nchan fans out before it answers the
#    POST, so its "from return" is about 0 or negative), from the bridge's
#    BEGIN (the whole publishing transaction, three round trips), and from
#    the time the event was due (includes publisher lag when a server takes
#    the calls slower than RATE).  NOTIFY_PROBE=1 adds a separate LISTEN
#    session timing the extension's NOTIFY (off by default: the bridge is
#    woken by aegis.wait_all, and on 2 cores one more process woken per event
#    costs the measured path).  Server CPU per cell from /proc/PID/stat.
#    WARMUP events first, not counted.
#    Cells: 1, 100, 1,000 subscribers on one stream; 1,000 subscribers over
#    100 streams (10 each, event k on stream k % 100).  Fresh stream names
#    per cell, so neither server replays anything.
#
# Environment: EVENTS (3000), RATE (1000), WARMUP (100), IDLE_CONNS (10000),
#   NCHAN_WORKERS (1: one event loop, like the bridge), PUBLISHERS (4), CELLS ("1:1 100:1
#   1000:1 1000:100", subscribers:streams), IDLE_LAYOUTS ("per-stream one-stream"),
#   SETTLE (60: at most this many seconds before a cell for the server to drop
#   the previous cell's closed streams; 0 = do not wait), NOTIFY_PROBE (0),
#   ROUNDS (3: each latency cell runs this many times per server, alternating
#   which server goes first; the report takes the median of each number).
# Whole run: 2-4 minutes on 2 cores; every step has a deadline and the
# whole script is killed (cleanly, by the trap) after 570 s.
set -u
# the whole run is bounded: re-run under timeout(1), whose SIGTERM fires the cleanup trap
if [ -z "${BENCH_SSE_BOUNDED:-}" ]; then
    BENCH_SSE_BOUNDED=1 exec timeout --signal=TERM --kill-after=30 570 bash "$0" "$@"
fi
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$TOP/test/lib.sh"
EVENTS=${EVENTS:-3000}
RATE=${RATE:-1000}
WARMUP=${WARMUP:-100}
IDLE_CONNS=${IDLE_CONNS:-10000}
NCHAN_WORKERS=${NCHAN_WORKERS:-1}
PUBLISHERS=${PUBLISHERS:-4}
CELLS=${CELLS:-"1:1 100:1 1000:1 1000:100"}
SETTLE=${SETTLE:-60}
ROUNDS=${ROUNDS:-3}
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "bench-sse: ROUNDS must be 1-99, got '$ROUNDS'" >&2; exit 2; }
NOTIFY_PROBE=${NOTIFY_PROBE:-0}
IDLE_LAYOUTS=${IDLE_LAYOUTS:-"per-stream one-stream"}
BRIDGE=${AEGIS_BRIDGE:-$TOP/bridge/aegis-bridge}
NCHAN_SO=/usr/lib/nginx/modules/ngx_nchan_module.so
W=$(mktemp -d "$AEGIS_TEST_TMP/bench-sse-XXXXXX")
chmod 755 "$W"
BR_PID= NG_PID= CL_PID=
RUN_START=$(date +%s)
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)

cleanup() {
    kill_pid "$CL_PID"
    kill_pid "$BR_PID"
    kill_pid "$NG_PID"
    pg_stop_all
    rm -rf "$W" "$AEGIS_TEST_TMP/pg-bench-sse-$$"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((IDLE_CONNS + 1000)) ] || {
    echo "bench-sse: open file limit $(ulimit -n) is below IDLE_CONNS + 1000"; exit 1; }

# ---- prerequisites ----
if ! command -v nginx >/dev/null || [ ! -f "$NCHAN_SO" ]; then
    bash "$TOP/scripts/install-deps.sh" nginx libnginx-mod-nchan || exit 1
fi
[ -f "$(pg_config --sharedir)/extension/aegis_events.control" ] || {
    echo "bench-sse: the extension is not installed; run 'make install' first"; exit 1; }
make -s -C "$TOP" bridge >/dev/null || { echo "bench-sse: bridge build failed"; exit 1; }
SSELOAD=$W/sseload
cc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$(pg_config --includedir)" -o "$SSELOAD" \
    "$TOP/bench/sse/sseload.c" -lpq -lpthread || { echo "bench-sse: sseload build failed"; exit 1; }

pg_start bench-sse >/dev/null || exit 1
psql -qX -c "CREATE EXTENSION aegis_events" || exit 1
BR_PORT=$(free_port)
NG_PORT=$(free_port)

# ---- servers ----
start_bridge() {
    "$BRIDGE" --listen "127.0.0.1:$BR_PORT" --no-drain --max-clients 12000 \
        --log-level warn 2>>"$W/bridge.log" &
    BR_PID=$!
    wait_for 30 curl -sf "http://127.0.0.1:$BR_PORT/healthz" || {
        echo "bench-sse: bridge did not start"; cat "$W/bridge.log"; exit 1; }
}
stop_bridge() { kill_pid "$BR_PID"; BR_PID=; }

write_nginx_conf() {
    mkdir -p "$W/nginx/logs" "$W/nginx/tmp"
    cat >"$W/nginx/nginx.conf" <<CONF
load_module $NCHAN_SO;
daemon off;
master_process on;
worker_processes $NCHAN_WORKERS;
worker_rlimit_nofile $(ulimit -n);
pid $W/nginx/nginx.pid;
error_log $W/nginx/logs/error.log warn;
events { worker_connections $((IDLE_CONNS + 2000)); }
http {
    access_log off;
    keepalive_requests 1000000;   # the publisher keeps one connection for every cell
    client_body_temp_path $W/nginx/tmp/body;
    proxy_temp_path $W/nginx/tmp/proxy;
    fastcgi_temp_path $W/nginx/tmp/fastcgi;
    uwsgi_temp_path $W/nginx/tmp/uwsgi;
    scgi_temp_path $W/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NG_PORT;
        location ~ ^/pub/([A-Za-z0-9_.:-]+)\$ { nchan_publisher; nchan_channel_id \$1; }
        location ~ ^/sub/([A-Za-z0-9_.:-]+)\$ { nchan_subscriber eventsource; nchan_channel_id \$1; }
        location = /healthz { return 200 "ok\n"; }
    }
}
CONF
    nginx -t -q -p "$W/nginx" -c "$W/nginx/nginx.conf" 2>"$W/nginx-t.log" || {
        echo "bench-sse: nginx config rejected"; cat "$W/nginx-t.log"; exit 1; }
}
start_nginx() {
    nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" 2>>"$W/nginx/logs/stderr.log" &
    NG_PID=$!
    wait_for 30 curl -sf "http://127.0.0.1:$NG_PORT/healthz" || {
        echo "bench-sse: nginx did not start"; cat "$W/nginx/logs/"*; exit 1; }
    grep -q nchan "/proc/$NG_PID/maps" || { echo "bench-sse: nginx did not load $NCHAN_SO"; exit 1; }
}
stop_nginx() { kill_pid "$NG_PID"; NG_PID=; }

# server_pids bridge|nchan: the server's processes (nginx: master + workers)
server_pids() {
    if [ "$1" = bridge ]; then echo "$BR_PID"; return; fi
    echo "$NG_PID" $(cat /proc/"$NG_PID"/task/*/children 2>/dev/null)
}
# mem_kb bridge|nchan: "RSS_kB PSS_kB" summed over the server's processes
mem_kb() {
    local p rss=0 pss=0 v
    for p in $(server_pids "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status") && rss=$((rss + v))
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup") && pss=$((pss + v))
    done
    echo "$rss $pss"
}
# cpu_ticks bridge|nchan: user+system clock ticks of the server's processes
cpu_ticks() {
    local p t=0
    for p in $(server_pids "$1"); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
sub_fmt() { [ "$1" = bridge ] && echo "/workspaces/%s/stream" || echo "/sub/%s"; }
port_of() { [ "$1" = bridge ] && echo "$BR_PORT" || echo "$NG_PORT"; }

# ---- 1. memory per idle connection ----
# idle_mem SERVER LAYOUT: prints "bytes_per_conn_rss bytes_per_conn_pss"
idle_mem() {
    local srv=$1 layout=$2 streams before after
    [ "$layout" = one-stream ] && streams=1 || streams=$IDLE_CONNS
    before=$(mem_kb "$srv")
    "$SSELOAD" idle --port "$(port_of "$srv")" --sub "$(sub_fmt "$srv")" \
        --names "idle-$layout-" --conns "$IDLE_CONNS" --streams "$streams" --timeout 240 \
        >"$W/idle.out" 2>"$W/idle.err" &
    CL_PID=$!
    if ! wait_for 180 grep -q '^ready' "$W/idle.out"; then
        echo "bench-sse: $srv: $IDLE_CONNS idle connections did not all open"; cat "$W/idle.err"; exit 1
    fi
    sleep 2
    after=$(mem_kb "$srv")
    kill_pid "$CL_PID"; wait "$CL_PID" 2>/dev/null; CL_PID=
    grep -q . "$W/idle.err" && { echo "bench-sse: $srv idle client:"; cat "$W/idle.err"; exit 1; }
    set -- $before $after
    echo "$(( ($3 - $1) * 1024 / IDLE_CONNS )) $(( ($4 - $2) * 1024 / IDLE_CONNS )) $1 $3"
}

write_nginx_conf
declare -A MEM
for layout in $IDLE_LAYOUTS; do
    start_nginx; MEM[nchan,$layout]=$(idle_mem nchan "$layout"); stop_nginx
    start_bridge; MEM[bridge,$layout]=$(idle_mem bridge "$layout"); stop_bridge
    echo "# memory $layout: nchan ${MEM[nchan,$layout]}; bridge ${MEM[bridge,$layout]} (B/conn rss, pss, kB before, after)" >&2
done

# ---- 2. latency ----
# settle SERVER CELL: before a cell, wait (at most SETTLE s) until the server
# holds no stream of the previous cell's (closed) clients.  Measured: the
# bridge keeps a stream whose client closed until a heartbeat write fails
# (~2 heartbeat intervals) and spins on the poll loop meanwhile; the wait is
# reported, not hidden.
settle() {
    local srv=$1 c=$2 t0=$SECONDS n fds
    while :; do
        if [ "$srv" = bridge ]; then
            n=$(curl -s "http://127.0.0.1:$BR_PORT/healthz" | jq -r .sse_connections)
        else
            n=$(ss -Htn state established "( sport = :$NG_PORT )" | wc -l)
        fi
        [ "$n" = 0 ] || [ $((SECONDS - t0)) -ge "$SETTLE" ] && break
        sleep 0.5
    done
    fds=0; for p in $(server_pids "$srv"); do fds=$((fds + $(ls "/proc/$p/fd" | wc -l))); done
    echo "# $srv before $c: waited $((SECONDS - t0)) s for the previous cell's streams to go; $n streams left, $fds fds" >&2
    SETTLED[$srv,$c]=$((SECONDS - t0))
}
declare -A SETTLED
start_nginx
start_bridge
declare -A LAT
LAT_LINES=()
cell=0
for c in $CELLS; do
    subs=${c%%:*} streams=${c##*:}
    cell=$((cell + 1))
    for r in $(seq 1 "$ROUNDS"); do
        # alternate which server goes first, so neither always runs on a fresher machine
        order="nchan bridge"; [ $((r % 2)) -eq 0 ] && order="bridge nchan"
        for srv in $order; do
            args=(run --port "$(port_of "$srv")" --sub "$(sub_fmt "$srv")" --names "c$cell-r$r-$srv-"
                  --subs "$subs" --streams "$streams" --events "$EVENTS" --warmup "$WARMUP"
                  --rate "$RATE" --pub "$srv" --publishers "$PUBLISHERS" --timeout 120)
            [ "$srv" = nchan ] && args+=(--pub-path "/pub/%s")
            [ "$srv" = bridge ] && args+=(--notify-probe "$NOTIFY_PROBE")
            settle "$srv" "$c"
            cpu0=$(cpu_ticks "$srv")
            "$SSELOAD" "${args[@]}" >"$W/lat.out" 2>"$W/lat.err" &
            CL_PID=$!
            wait "$CL_PID"; rc=$?; CL_PID=
            cpu=$(( ($(cpu_ticks "$srv") - cpu0) * 1000 / $(getconf CLK_TCK) ))
            LAT[$srv,$c]="$(cat "$W/lat.out") server_cpu_ms=$cpu settled_s=${SETTLED[$srv,$c]}"
            if ! grep -q . "$W/lat.out"; then
                echo "bench-sse: $srv $c failed:"; cat "$W/lat.err"; exit 1
            fi
            [ "$rc" -eq 0 ] || { echo "# $srv $c: not every delivery arrived (rc $rc)" >&2; cat "$W/lat.err" >&2; }
            LAT_LINES+=("lat $c $srv ${LAT[$srv,$c]}")
            echo "# $srv $c round $r: ${LAT[$srv,$c]}" >&2
        done
    done
    curl -sf "http://127.0.0.1:$BR_PORT/metrics" | grep -E '^aegis_bridge_(sse_(events_sent|catchups|drops|replays)|store_reads)_total' \
        | tr '\n' ' ' | sed "s/^/# bridge counters after $c: /; s/aegis_bridge_//g; s/\$/\n/" >&2
done
grep -v 'module=drain msg=off' "$W/bridge.log" | grep -q . && {
    echo "# bridge log (warnings):"; grep -v 'module=drain msg=off' "$W/bridge.log" | head -20; }

# ---- report ----
{
    for l in "${LAT_LINES[@]}"; do echo "$l"; done
    for l in $IDLE_LAYOUTS; do echo "mem $l nchan ${MEM[nchan,$l]}"; echo "mem $l bridge ${MEM[bridge,$l]}"; done
} >"$W/results.txt"
python3 "$TOP/bench/sse/report.py" "$W/results.txt" "$RATE" "$EVENTS" "$IDLE_CONNS" "$NCHAN_WORKERS" "$ROUNDS"
echo "# bench-sse: $(( $(date +%s) - RUN_START )) s on $(nproc) cores; load average (1/5/15 min) at start $LOAD_START, at end $(cut -d" " -f1-3 /proc/loadavg)"
