#!/bin/bash
# bench/sse/scale.sh: how many SSE subscribers one aegis-bridge process holds,
# against nginx + nchan (1 worker, like the bridge's one event loop) in the
# same run.  For each LEVELS count L of concurrent connections and each
# server (fresh for every level):
#   1. L idle SSE connections (sseload idle, in processes of at most CHUNK
#      connections each, so every process stays under the 20,000-file limit),
#      connection i on stream i % STREAMS; the server's RSS/PSS before and
#      after gives bytes per connection, the wall time to open them the
#      connection setup rate;
#   2. the last 1,000 of them are closed and replaced by a latency client
#      (sseload run, 1,000 subscribers over the same STREAMS streams), so L
#      connections stay open while RATE events/s are published over STREAMS
#      streams for EVENTS events: every event goes to L / STREAMS sockets, of
#      which one belongs to the latency client.  Latency = the subscriber's
#      read() - the COMMIT (bridge) / POST (nchan) being sent, as bench-sse.
#      Every event must reach every latency subscriber (received = expected).
# Prints one line per server and level and a table; writes scale.tsv and,
# with matplotlib (python3-matplotlib, installed through apt-get when
# missing), scale.png into OUT (default bench/sse/out).
#
# Loopback only (127.0.0.1); everything it starts is stopped by pid (trap);
# the whole run is under timeout(1) (TIMEOUT, 1500 s).
# Environment: LEVELS ("1000 5000 10000 19000"), SERVERS ("bridge nchan"),
#   STREAMS (1000), RATE (1000), EVENTS (10000), WARMUP (200), CHUNK (9000),
#   PUBLISHERS (4), OUT, AEGIS_BRIDGE (binary), BRIDGE_EXTRA (more bridge flags).
# Needs `make install` (the extension) first.
set -u
if [ -z "${BENCH_SCALE_BOUNDED:-}" ]; then
    BENCH_SCALE_BOUNDED=1 exec timeout --signal=TERM --kill-after=30 "${TIMEOUT:-1500}" bash "$0" "$@"
fi
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$TOP/test/lib.sh"
LEVELS=${LEVELS:-1000 5000 10000 19000}
SERVERS=${SERVERS:-bridge nchan}
STREAMS=${STREAMS:-1000}
RATE=${RATE:-1000}
EVENTS=${EVENTS:-10000}
WARMUP=${WARMUP:-200}
CHUNK=${CHUNK:-9000}
PUBLISHERS=${PUBLISHERS:-4}
OUT=${OUT:-$TOP/bench/sse/out}
BRIDGE=${AEGIS_BRIDGE:-$TOP/bridge/aegis-bridge}
NCHAN_SO=/usr/lib/nginx/modules/ngx_nchan_module.so
LAT_SUBS=1000
mkdir -p "$OUT"
W=$(mktemp -d "$AEGIS_TEST_TMP/bench-scale-XXXXXX")
chmod 755 "$W"
SRV_PID= CL_PID=
IDLE_PIDS=()

cleanup() {
    local p
    kill_pid "$CL_PID"
    for p in "${IDLE_PIDS[@]}"; do kill_pid "$p"; done
    kill_pid "$SRV_PID"
    pg_stop_all
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)"

for l in $LEVELS; do
    [[ "$l" =~ ^[0-9]+$ ]] && [ "$l" -ge "$LAT_SUBS" ] && [ "$l" -le 19500 ] && [ $((l % 1000)) -eq 0 ] || {
        echo "bench-scale: each level must be $LAT_SUBS..19500, got '$l'" >&2; exit 2; }
done
if ! command -v nginx >/dev/null || [ ! -f "$NCHAN_SO" ]; then
    bash "$TOP/scripts/install-deps.sh" nginx libnginx-mod-nchan || exit 1
fi
# Debian's python3 (matplotlib from apt; another python3 may come first in PATH)
PLOT_PY=/usr/bin/python3
$PLOT_PY -c 'import matplotlib' 2>/dev/null || apt-get install -y -q python3-matplotlib >/dev/null 2>&1 ||
    echo "# python3-matplotlib could not be installed: no chart" >&2
[ -f "$(pg_config --sharedir)/extension/aegis_events.control" ] || {
    echo "bench-scale: the extension is not installed; run 'make install' first"; exit 1; }
make -s -C "$TOP" bridge >/dev/null || { echo "bench-scale: bridge build failed"; exit 1; }
SSELOAD=$W/sseload
cc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$(pg_config --includedir)" -o "$SSELOAD" \
    "$TOP/bench/sse/sseload.c" -lpq -lpthread || { echo "bench-scale: sseload build failed"; exit 1; }
pg_start bench-scale >/dev/null || exit 1
psql -qX -c "CREATE EXTENSION aegis_events" || exit 1

PORT=
start_server() { # bridge|nchan
    PORT=$(free_port)
    if [ "$1" = bridge ]; then
        "$BRIDGE" --listen "127.0.0.1:$PORT" --no-drain --max-clients 19900 --max-clients-per-ip 19900 \
            --log-level warn ${BRIDGE_EXTRA:-} 2>>"$W/bridge.log" &
        SRV_PID=$!
    else
        mkdir -p "$W/nginx/logs" "$W/nginx/tmp"
        cat >"$W/nginx/nginx.conf" <<CONF
load_module $NCHAN_SO;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
pid $W/nginx/nginx.pid;
error_log $W/nginx/logs/error.log warn;
events { worker_connections 19990; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $W/nginx/tmp/body;
    proxy_temp_path $W/nginx/tmp/proxy;
    fastcgi_temp_path $W/nginx/tmp/fastcgi;
    uwsgi_temp_path $W/nginx/tmp/uwsgi;
    scgi_temp_path $W/nginx/tmp/scgi;
    nchan_max_reserved_memory 256M;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location ~ ^/pub/([A-Za-z0-9_.:-]+)\$ { nchan_publisher; nchan_channel_id \$1; }
        location ~ ^/sub/([A-Za-z0-9_.:-]+)\$ { nchan_subscriber eventsource; nchan_channel_id \$1; }
        location = /healthz { return 200 "ok\n"; }
    }
}
CONF
        nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" 2>>"$W/nginx/logs/stderr.log" &
        SRV_PID=$!
    fi
    wait_for 30 curl -sf "http://127.0.0.1:$PORT/healthz" || {
        echo "bench-scale: $1 did not start"; cat "$W/bridge.log" "$W/nginx/logs/"* 2>/dev/null; exit 1; }
    sleep 1
}
stop_server() { kill_pid "$SRV_PID"; SRV_PID=; }
server_pids() { echo "$SRV_PID" $(cat /proc/"$SRV_PID"/task/*/children 2>/dev/null); }
mem_kb() { # "RSS_kB PSS_kB" of the server's processes
    local p rss=0 pss=0 v
    for p in $(server_pids); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status") && rss=$((rss + v))
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup") && pss=$((pss + v))
    done
    echo "$rss $pss"
}
cpu_ticks() { local p t=0; for p in $(server_pids); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
tcp_mem_kb() { awk -v pg="$(getconf PAGESIZE)" '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) * pg / 1024}' /proc/net/sockstat; }
sub_fmt() { [ "$1" = bridge ] && echo "/workspaces/%s/stream" || echo "/sub/%s"; }

now_ms() { date +%s%3N; }
RESULTS=$W/results.tsv
printf 'server\tconns\trss_before_kb\trss_after_kb\tbytes_per_conn_rss\tbytes_per_conn_pss\tkernel_tcp_kb\tsetup_conns_per_s\tp50_ms\tp99_ms\tmax_ms\treceived\texpected\tserver_cpu_pct\tload\n' >"$RESULTS"

one_level() { # SERVER L
    local srv=$1 L=$2 names="s$2-$1-" left i n chunks=() p m0 m1 k0 k1 t0 t1 c0 c1 ready
    start_server "$srv"
    # idle connections: chunks of at most CHUNK, the last one exactly LAT_SUBS
    left=$((L - LAT_SUBS))
    while [ "$left" -gt 0 ]; do n=$((left < CHUNK ? left : CHUNK)); chunks+=("$n"); left=$((left - n)); done
    chunks+=("$LAT_SUBS")
    read -r m0 p0 <<<"$(mem_kb)"; k0=$(tcp_mem_kb)
    IDLE_PIDS=(); i=0; t0=$(now_ms)
    # connection c of a chunk is on stream c % STREAMS: chunks are multiples of 1,000, so every
    # stream gets the same number of connections
    for n in "${chunks[@]}"; do
        "$SSELOAD" idle --port "$PORT" --sub "$(sub_fmt "$srv")" --names "$names" --conns "$n" \
            --streams "$STREAMS" --timeout 600 >"$W/idle.$i.out" 2>"$W/idle.$i.err" &
        IDLE_PIDS+=($!); i=$((i + 1))
    done
    for ((j = 0; j < i; j++)); do
        if ! wait_for 240 grep -q '^ready' "$W/idle.$j.out"; then
            echo "bench-scale: $srv $L: idle chunk $j (${chunks[$j]}) did not open: $(head -c 300 "$W/idle.$j.err")" >&2
            for p in "${IDLE_PIDS[@]}"; do kill_pid "$p"; done; IDLE_PIDS=(); stop_server
            printf '%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n' "$srv" "$L" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS"
            return 1
        fi
    done
    t1=$(now_ms)
    sleep 2
    read -r m1 p1 <<<"$(mem_kb)"; k1=$(tcp_mem_kb)
    local per_rss=$(( (m1 - m0) * 1024 / L )) per_pss=$(( (p1 - p0) * 1024 / L ))
    local rate=$(( L * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    # replace the last chunk (LAT_SUBS idle connections) by the latency client
    kill_pid "${IDLE_PIDS[$((i - 1))]}"; unset 'IDLE_PIDS[$((i - 1))]'
    sleep 2
    local args=(run --port "$PORT" --sub "$(sub_fmt "$srv")" --names "$names" --subs "$LAT_SUBS"
                --streams "$STREAMS" --events "$EVENTS" --warmup "$WARMUP" --rate "$RATE"
                --pub "$srv" --publishers "$PUBLISHERS" --timeout 300)
    [ "$srv" = nchan ] && args+=(--pub-path "/pub/%s")
    c0=$(cpu_ticks); local w0=$(now_ms)
    "$SSELOAD" "${args[@]}" >"$W/lat.out" 2>"$W/lat.err" &
    CL_PID=$!; wait "$CL_PID"; CL_PID=
    c1=$(cpu_ticks); local w1=$(now_ms)
    local cpu=$(( (c1 - c0) * 1000 / $(getconf CLK_TCK) * 100 / (w1 - w0 > 0 ? w1 - w0 : 1) ))
    for p in "${IDLE_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || echo "# $srv $L: an idle client ended early: $(cat "$W"/idle.*.err | head -3)" >&2
        kill_pid "$p"
    done
    IDLE_PIDS=()
    local o; o=$(cat "$W/lat.out")
    [ -n "$o" ] || echo "# $srv $L: latency client failed: $(head -c 300 "$W/lat.err")" >&2
    kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$o"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$L" "$m0" "$m1" "$per_rss" "$per_pss" \
        "$((k1 - k0))" "$rate" "$(kv start_p50)" "$(kv start_p99)" "$(kv start_max)" \
        "$(kv received)" "$(kv expected)" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS"
    echo "# $srv $L: rss $m0 -> $m1 kB ($per_rss B/conn, pss $per_pss), kernel tcp +$((k1 - k0)) kB, setup $rate conn/s; $o server_cpu=${cpu}%" >&2
    stop_server
    sleep 3
}

START=$(date +%s) LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for L in $LEVELS; do
    for srv in $SERVERS; do one_level "$srv" "$L"; done
done
grep -v 'module=drain msg=off' "$W/bridge.log" | head -20 | sed 's/^/# bridge log: /' >&2
cp "$RESULTS" "$OUT/scale.tsv"
column -t -s $'\t' "$OUT/scale.tsv"
echo "# bench-scale: $(( $(date +%s) - START )) s on $(nproc) cores; load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
$PLOT_PY "$TOP/bench/sse/scale_plot.py" "$OUT/scale.tsv" "$OUT/scale.png" || echo "# no chart" >&2
