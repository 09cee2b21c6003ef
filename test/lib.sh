# test/lib.sh: shared helpers for the test suites (sourced, not run).
# Owns: throwaway PostgreSQL clusters started as the postgres user on
# loopback, free ports, TAP-style result lines, and cleanup by pid.
# Every suite prints "ok - name" / "not ok - name" lines; test/run counts them.

AEGIS_TOP=${AEGIS_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PG_BIN=${PG_BIN:-$(pg_config --bindir)}
: "${AEGIS_TEST_TMP:=/tmp/aegis-test}"
mkdir -p "$AEGIS_TEST_TMP"
chmod 1777 "$AEGIS_TEST_TMP"

TESTS_PASSED=${TESTS_PASSED:-0}
TESTS_FAILED=${TESTS_FAILED:-0}

ok()     { echo "ok - $*"; TESTS_PASSED=$((TESTS_PASSED+1)); }
not_ok() { echo "not ok - $*"; TESTS_FAILED=$((TESTS_FAILED+1)); }
# check NAME CMD...: runs CMD, reports ok/not ok by its exit status
check()  { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}
diag()   { echo "# $*"; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on now
free_port() {
    python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# pg_start NAME [extra postgres -c settings...]: initdb + start a cluster as
# the postgres user; exports PGHOST PGPORT PGUSER PGDATABASE and PGDATA_<NAME>.
pg_start() {
    local name=$1; shift
    local dir="$AEGIS_TEST_TMP/pg-$name-$$"
    rm -rf "$dir"; mkdir -p "$dir"; chown postgres:postgres "$dir"
    local port; port=$(free_port)
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres \
        --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; return 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'aegis_events'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
max_prepared_transactions = 5
CONF
    local setting
    for setting in "$@"; do echo "$setting" >>"$dir/data/postgresql.conf"; done
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        >/dev/null || { cat "$dir/server.log"; return 1; }
    export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    eval "PGDATA_${name//-/_}=\$dir/data"
    echo "$dir/data" >>"$AEGIS_TEST_TMP/clusters.$$"
}

# pg_stop_dir DATADIR: fast shutdown of one cluster
pg_stop_dir() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# pg_restart_dir DATADIR: restart a cluster in place (same port)
pg_restart_dir() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$1" -l "$1/../server.log" -m fast -w -t 60 restart >/dev/null
}

# pg_stop_all: stop every cluster this shell started and remove its data
# directory (benchmarks leave gigabytes); server.log stays beside it.
# AEGIS_KEEP_CLUSTERS=1 keeps the data too.
pg_stop_all() {
    local d
    [ -f "$AEGIS_TEST_TMP/clusters.$$" ] || return 0
    while read -r d; do
        pg_stop_dir "$d"
        [ -n "${AEGIS_KEEP_CLUSTERS:-}" ] || rm -rf "$d"
    done <"$AEGIS_TEST_TMP/clusters.$$"
    rm -f "$AEGIS_TEST_TMP/clusters.$$"
}

# kill_pid PID: SIGTERM, wait up to 10 s (a zombie counts as gone), then SIGKILL
kill_pid() {
    local pid=$1 i state
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 0
        [ "$state" = Z ] && return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds or time runs out
wait_for() {
    local secs=$1; shift
    local end=$(( $(date +%s) + secs ))
    while [ "$(date +%s)" -lt "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# finish: print this suite's tally; exit status 1 if anything failed
finish() {
    echo "# suite $(basename "$0"): $TESTS_PASSED passed, $TESTS_FAILED failed"
    [ "$TESTS_FAILED" -eq 0 ]
}
