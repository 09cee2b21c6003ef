#!/usr/bin/env bash
# 21-notifier-reload: a reload (SIGHUP) reaches the running notifier worker:
# started with aegis.notifier_idle_timeout = 1h, it exits soon after the
# setting is reloaded as 1s (a worker that ignored SIGHUP would sleep on for
# the hour), and a commit after that starts a new one.
source "$(dirname "$0")/../lib.sh"
trap pg_stop_all EXIT
cd "$AEGIS_TOP"

pg_start reload
psql -qX -c "CREATE EXTENSION aegis_events" >/dev/null

set_timeout() {
    psql -qX -c "ALTER SYSTEM SET aegis.notifier_idle_timeout = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
}
shows() { [ "$(psql -XAtc "SHOW aegis.notifier_idle_timeout")" = "$1" ]; }
notifier_pid() {
    psql -XAtc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'aegis_events notifier' AND datname = current_database()"
}
has_notifier() { [ -n "$(notifier_pid)" ]; }
pid_gone() { [ -z "$(psql -XAtc "SELECT 1 FROM pg_stat_activity WHERE pid = $1")" ]; }

set_timeout 1h
check "the server took aegis.notifier_idle_timeout = 1h" wait_for 20 shows 1h
psql -qX -c "SELECT aegis.publish('reload-probe', '{\"n\": 1}')" >/dev/null
check "a commit starts the database's notifier" wait_for 20 has_notifier
pid=$(notifier_pid)
check "the notifier runs (pid $pid)" test -n "$pid"

# an unrelated reload does not stop the worker
psql -qX -c "SELECT pg_reload_conf()" >/dev/null
psql -qX -c "SELECT aegis.publish('reload-probe', '{\"n\": 2}')" >/dev/null
expect_eq "the same notifier serves after a reload" "$pid" "$(notifier_pid)"

set_timeout 1s
check "the server took aegis.notifier_idle_timeout = 1s" wait_for 20 shows 1s
check "the running notifier (pid $pid) exits after the reloaded 1 s idle timeout" wait_for 30 pid_gone "$pid"
check "its log says nothing went wrong" \
    bash -c "! grep -E 'aegis_events notifier.*(exited with exit code [^0]|terminated)' '$(dirname "$PGDATA_reload")/server.log'"

psql -qX -c "SELECT aegis.publish('reload-probe', '{\"n\": 3}')" >/dev/null
check "the next commit starts a new notifier" wait_for 20 has_notifier
new=$(notifier_pid)
check "a new notifier (pid $new), not the old one" test -n "$new" -a "$new" != "$pid"
check "which also exits after 1 s idle" wait_for 30 pid_gone "$new"
finish
