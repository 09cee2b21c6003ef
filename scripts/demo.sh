#!/usr/bin/env bash
# scripts/demo.sh: what `make demo` runs. Owns the demo's life cycle: install
# missing dependencies, build and install, a throwaway PostgreSQL cluster under
# demo/.run/, the extension, aegis-bridge serving the dashboard on
# 127.0.0.1:8001, the agent worker (examples/worker), Kafka (KAFKA=1), the publisher.
# Ctrl-C (or the end of a --once run) stops everything it started, by pid.
#
#   scripts/demo.sh [--once] [--kafka] [--port N] [--pace X] [--start-delay S] [--no-build]
#     --once          end after one replay (for tests; DEMO_ONCE=1 does the same)
#     --kafka         also start a real Kafka broker and show the events there (KAFKA=1)
#     --port N        the bridge's port on 127.0.0.1 (DEMO_PORT, default 8001)
#     --pace X        scale the replay's pauses (DEMO_PACE, default 1: about 45 s)
#     --wait-for-browser S  wait up to S seconds for a browser (any SSE client) to
#                     connect before replaying; Enter starts at once (default 60, 0 with --once)
#     --start-delay S seconds between that and the first event (default 3)
#     --no-build      skip install-deps and make (DEMO_NO_BUILD=1)
#     --linger S      with --once: keep serving S seconds after the replay (default 0);
#                     SIGUSR1 to the pid in DEMO_RUN_DIR/demo.pid ends the wait early
# DEMO_RUN_DIR overrides the state folder (default demo/.run in the checkout).
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
once=${DEMO_ONCE:-0} kafka=${KAFKA:-0} port=${DEMO_PORT:-8001} pace=${DEMO_PACE:-1}
start_delay=${DEMO_START_DELAY:-3} no_build=${DEMO_NO_BUILD:-0} linger=0 linger_done=0
wait_browser=${DEMO_WAIT_FOR_BROWSER:-}
run_dir=${DEMO_RUN_DIR:-$TOP/demo/.run}
checklist=chk-demo conv1=conv-demo-1 conv2=conv-demo-2
pg_data='' bridge_pid='' publisher_pid='' worker_pid='' kcat_pid='' kafka_dir='' stopping=0 started=0

say()   { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
die()   { echo "demo: error: $*" >&2; exit 2; }
usage() { sed -n '8,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --once)        once=1; shift ;;
            --kafka)       kafka=1; shift ;;
            --no-build)    no_build=1; shift ;;
            --port)        port=${2-}; shift 2 || die "--port needs a value" ;;
            --pace)        pace=${2-}; shift 2 || die "--pace needs a value" ;;
            --start-delay) start_delay=${2-}; shift 2 || die "--start-delay needs a value" ;;
            --linger)      linger=${2-}; shift 2 || die "--linger needs a value" ;;
            --wait-for-browser) wait_browser=${2-}; shift 2 || die "--wait-for-browser needs a value" ;;
            -h|--help)     usage; exit 0 ;;
            *)             usage >&2; die "unknown argument '$1'" ;;
        esac
    done
    [[ $port =~ ^[0-9]{1,5}$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] \
        || die "bad port '$port': a number from 1 to 65535"
    [[ $pace =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad pace '$pace': a number >= 0 (1 = real time, 0.1 = ten times faster)"
    [[ $start_delay =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad start delay '$start_delay': seconds >= 0"
    [[ $linger =~ ^[0-9]{1,4}$ ]] || die "bad linger '$linger': whole seconds, 0 to 9999"
    if [ -z "$wait_browser" ]; then
        if [ "$once" = 1 ]; then wait_browser=0; else wait_browser=60; fi
    fi
    [[ $wait_browser =~ ^[0-9]{1,4}$ ]] || die "bad wait-for-browser '$wait_browser': whole seconds, 0 to 9999"
    [[ $once =~ ^[01]$ ]] || die "bad DEMO_ONCE '$once': 0 or 1"
    [[ $kafka =~ ^[01]$ ]] || die "bad KAFKA '$kafka': 0 or 1"
    return 0
}

# ---- dependencies and build ----

missing_deps() {
    local c
    for c in pg_config psql cc make pkg-config curl runuser python3; do
        command -v "$c" >/dev/null || { echo "$c"; return 0; }
    done
    for c in libwebsockets rdkafka jansson libpq; do
        pkg-config --exists "$c" || { echo "$c (pkg-config)"; return 0; }
    done
    [ -x "$(pg_config --bindir)/initdb" ] || { echo initdb; return 0; }
    /usr/bin/python3 -c 'import psycopg' 2>/dev/null || { echo "python3-psycopg"; return 0; }
    if [ "$kafka" = 1 ]; then
        for c in java mvn kcat; do command -v "$c" >/dev/null || { echo "$c"; return 0; }; done
    fi
    return 0
}

build() {
    local missing
    missing=$(missing_deps)
    if [ -n "$missing" ]; then
        [ -x "$TOP/scripts/install-deps.sh" ] || [ -f "$TOP/scripts/install-deps.sh" ] \
            || die "$missing is missing and scripts/install-deps.sh is not there"
        [ "$(id -u)" = 0 ] || die "$missing is missing: run as root so that scripts/install-deps.sh can apt-get it"
        say "installing missing dependencies ($missing first): scripts/install-deps.sh"
        bash "$TOP/scripts/install-deps.sh"
    fi
    say "building: make all bridge && make install install-bridge"
    make -C "$TOP" -s all bridge
    make -C "$TOP" -s install install-bridge
}

# ---- PostgreSQL ----

pg_bin() { echo "$(pg_config --bindir)/$1"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# the cluster runs as postgres (PostgreSQL refuses root): it needs a folder it can enter
prepare_run_dir() {
    started=1
    mkdir -p "$run_dir"
    rm -rf "$run_dir/pg" "$run_dir/kafka"
    mkdir -p "$run_dir/pg"
    chown postgres:postgres "$run_dir/pg"
    if ! runuser -u postgres -- test -w "$run_dir/pg"; then
        local fallback
        fallback=$(mktemp -d /tmp/aegis-demo.XXXXXX)
        say "warning: user postgres cannot enter $run_dir (a parent folder is private); using $fallback"
        run_dir=$fallback
        mkdir -p "$run_dir/pg"
        chown postgres:postgres "$run_dir/pg"
        chmod 755 "$run_dir"
    fi
}

start_postgres() {
    local pg_port
    pg_port=$(free_port)
    pg_data=$run_dir/pg/data
    runuser -u postgres -- "$(pg_bin initdb)" -D "$pg_data" -A trust -U postgres --no-sync \
        >"$run_dir/pg/initdb.log" 2>&1 || { cat "$run_dir/pg/initdb.log" >&2; die "initdb failed"; }
    cat >>"$pg_data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$run_dir/pg'
shared_preload_libraries = 'aegis_events'
CONF
    runuser -u postgres -- "$(pg_bin pg_ctl)" -D "$pg_data" -l "$run_dir/pg/server.log" -w -t 60 start \
        >/dev/null || { tail -20 "$run_dir/pg/server.log" >&2; die "PostgreSQL did not start"; }
    export PGHOST=127.0.0.1 PGPORT=$pg_port PGUSER=postgres PGDATABASE=postgres
    psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION aegis_events' \
        || die "CREATE EXTENSION aegis_events failed (is it installed? make install)"
    say "PostgreSQL 127.0.0.1:$pg_port (data in $pg_data), extension aegis_events $(psql -X -At -c \
        "SELECT extversion FROM pg_extension WHERE extname = 'aegis_events'")"
    # the message box's agent: runs are taken only for configured agent types
    psql -X -q -v ON_ERROR_STOP=1 -c "SELECT aegis.configure_agent('rule_37', queue_timeout => '30 s', lease => '10 s')" \
        >/dev/null || die "aegis.configure_agent failed"
}

# ---- the reference agent worker (examples/worker): answers the message box ----

start_worker() {
    /usr/bin/python3 "$TOP/examples/worker/worker.py" --agent-type rule_37 --step-seconds 0.6 \
        --dsn "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" \
        2> >(tee -a "$run_dir/worker.log" | sed -u 's/^/worker | /' >&2) &
    worker_pid=$!
    say "agent worker (examples/worker/worker.py, agent type rule_37) pid $worker_pid"
}

# ---- Kafka (KAFKA=1) ----

start_kafka() {
    # shellcheck source=../test/kafka/lib.sh
    source "$TOP/test/kafka/lib.sh"
    kafka_dir=$run_dir/kafka
    say "starting a real Kafka broker (Apache Kafka 3.6.2, KRaft) in $kafka_dir"
    kafka_start "$kafka_dir" || die "the Kafka broker did not start (see $kafka_dir)"
    export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_TEST_BOOTSTRAP
    say "Kafka at $KAFKA_BOOTSTRAP_SERVERS"
}

# shows what arrives on the seed's topic while the demo runs
watch_kafka() {
    ( for _ in $(seq 1 60); do
          kcat -C -b "$KAFKA_BOOTSTRAP_SERVERS" -t entity-extraction-worker -o beginning -q -u \
              -f 'kafka | partition %p offset %o key %k headers %h: %s\n' 2>/dev/null && break
          sleep 1      # the bridge creates the topic on its first publish
      done ) &
    kcat_pid=$!
}

# ---- the bridge ----

bridge_bin() {
    if [ -x "$TOP/bridge/aegis-bridge" ]; then echo "$TOP/bridge/aegis-bridge"
    elif command -v aegis-bridge >/dev/null; then command -v aegis-bridge
    else die "aegis-bridge not built (make bridge)"; fi
}

check_port() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is taken: stop what runs there or pass --port N"
    fi
}

start_bridge() {
    local bin
    bin=$(bridge_bin)
    check_port
    "$bin" --listen "127.0.0.1:$port" --static-dir "$TOP/web" \
        2> >(tee -a "$run_dir/bridge.log" | sed -u 's/^/bridge | /' >&2) &
    bridge_pid=$!
    for _ in $(seq 1 100); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && return 0
        kill -0 "$bridge_pid" 2>/dev/null || die "aegis-bridge exited (see $run_dir/bridge.log)"
        sleep 0.1
    done
    die "aegis-bridge is not answering on 127.0.0.1:$port after 10 s"
}

# ---- stopping ----

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" = Z ] && { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    [ "$stopping" = 1 ] || [ "$started" = 0 ] && return 0
    stopping=1
    say "stopping"
    stop_pid "$publisher_pid"
    stop_pid "$worker_pid"
    [ -n "$kcat_pid" ] && { pkill -TERM -P "$kcat_pid" 2>/dev/null || true; stop_pid "$kcat_pid"; }
    stop_pid "$bridge_pid"
    [ -n "$kafka_dir" ] && { kafka_stop "$kafka_dir" >/dev/null 2>&1 || true; }
    [ -n "$pg_data" ] && runuser -u postgres -- "$(pg_bin pg_ctl)" -D "$pg_data" -m fast -w -t 60 stop \
        >/dev/null 2>&1 || true
    say "stopped; state left in $run_dir"
}

# ---- main ----

replay() {
    "$TOP/demo/publish.sh" --checklist "$checklist" --conv1 "$conv1" --conv2 "$conv2" --pace "$pace" \
        > >(sed -u 's/^/publish | /') &
    publisher_pid=$!
    wait "$publisher_pid"
}

print_urls() {
    local base="http://127.0.0.1:$port"
    echo
    say "dashboard:  $base/?checklist=$checklist&conversations=$conv1,$conv2"
    say "            (type a question in its message box: the agent worker answers it)"
    say "watch raw:  curl -N $base/workspaces/$checklist/stream"
    say "            curl -N $base/conversations/$conv1/stream"
    echo
}

# the replay is best watched from its start: wait for the first SSE client
# (the bridge's /healthz counts them), for Enter, or for wait_browser seconds
wait_for_browser() {
    local end n
    [ "$wait_browser" -gt 0 ] || return 0
    say "open the dashboard: the replay starts when it connects (or in $wait_browser s; Enter starts it now)"
    end=$((SECONDS + wait_browser))
    while [ "$SECONDS" -lt "$end" ]; do
        n=$(curl -s --max-time 1 "http://127.0.0.1:$port/healthz" | sed -n 's/.*"sse_connections": *\([0-9]*\).*/\1/p')
        if [ "${n:-0}" -gt 0 ]; then say "a browser connected"; return 0; fi
        if [ -t 0 ]; then
            if read -r -t 0.5 _; then return 0; fi
        else
            sleep 0.5
        fi
    done
}

# --once --linger S: serve S more seconds, or until SIGUSR1
linger_wait() {
    [ "$linger" -gt 0 ] || return 0
    say "serving $linger s more (SIGUSR1 to $$ ends it)"
    for _ in $(seq 1 $((linger * 10))); do
        [ "$linger_done" = 1 ] && return 0
        sleep 0.1
    done
}

main() {
    parse_args "$@"
    trap cleanup EXIT
    trap 'linger_done=1' USR1
    trap 'exit 130' INT
    trap 'exit 143' TERM
    check_port
    [ "$no_build" = 1 ] || build
    prepare_run_dir
    echo $$ >"$run_dir/demo.pid"
    start_postgres
    [ "$kafka" = 1 ] && { start_kafka; }
    start_bridge
    start_worker
    [ "$kafka" = 1 ] || say "Kafka: off (make demo KAFKA=1 also starts a real Kafka broker)"
    print_urls
    [ "$kafka" = 1 ] && watch_kafka
    wait_for_browser
    sleep "$start_delay"
    say "replaying the seed's assessment and conversations (pace $pace)"
    replay
    say "replay finished: $(psql -X -At -c "SELECT count(*) FROM aegis.events") events in the store"
    if [ "$once" = 1 ]; then
        [ "$kafka" = 1 ] && sleep 5     # let the drain deliver, and kcat print
        linger_wait
        return 0
    fi
    say "the dashboard stays up; Ctrl-C stops everything"
    wait "$bridge_pid" || die "aegis-bridge exited (see $run_dir/bridge.log)"
}

main "$@"
