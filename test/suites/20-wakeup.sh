#!/usr/bin/env bash
# 20-wakeup: LISTEN aegis_events is woken after publishing commits (never
# after a rollback), the payload is a small position, notifications are
# coalesced, and DROP DATABASE is not blocked by the notifier worker.
source "$(dirname "$0")/../lib.sh"
trap 'pg_stop_all; kill_pid "$listen_pid"' EXIT
cd "$AEGIS_TOP"
bin="$AEGIS_TEST_TMP/wakeup.$$"
gcc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -I"$(pg_config --includedir)" \
    -o "$bin" test/tools/wakeup.c -lpq || { not_ok "build wakeup probe"; finish; exit 1; }

pg_start wake
psql -qX -c "CREATE EXTENSION aegis_events" >/dev/null

# 1. every publishing commit wakes the listener (20 in a row, each waited for)
out=$("$bin" latency 20)
check "20 commits, 20 wake-ups (p50/p99/max us, missed: $out)" test "$(echo "$out" | awk '{print $4}')" = 0

# 2. a rolled-back publish wakes nobody
out=$("$bin" rollback 1000)
expect_eq "no wake-up after ROLLBACK" "0" "$(echo "$out" | awk '{print $1}')"

# 3. payload: a position (digits), small
"$bin" count 3000 >"$AEGIS_TEST_TMP/count.$$" & listen_pid=$!
wait_for 5 grep -q ready "$AEGIS_TEST_TMP/count.$$"
id=$(psql -XAtc "SELECT aegis.publish('wakeup-probe', '{\"big\": \"$(head -c 5000 /dev/zero | tr '\0' x)\"}')")
wait "$listen_pid"
read -r n longest payload < <(tail -1 "$AEGIS_TEST_TMP/count.$$")
check "a 5 kB event gives a notification ($n)" test "$n" -ge 1
check "the payload is small ($longest bytes), never the event" test "$longest" -ge 1 -a "$longest" -le 20
check "the payload is a position at or past the event ($payload >= $id)" test "$payload" -ge "$id"

# 4. coalescing: while the notifier is stopped, 50 commits pile up; when it
#    resumes it sends one NOTIFY for all of them
notifier=$(psql -XAtc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'aegis_events notifier' AND datname = current_database()")
check "a notifier worker runs for the database" test -n "$notifier"
"$bin" count 3000 >"$AEGIS_TEST_TMP/count2.$$" & listen_pid=$!
wait_for 5 grep -q ready "$AEGIS_TEST_TMP/count2.$$"
kill -STOP "$notifier"
for i in $(seq 1 50); do echo "SELECT aegis.publish('wakeup-probe', '{\"i\": $i}');"; done | psql -qX >/dev/null
kill -CONT "$notifier"
wait "$listen_pid"
read -r n longest payload < <(tail -1 "$AEGIS_TEST_TMP/count2.$$")
check "50 commits while the notifier was busy: 1 coalesced wake-up (got $n)" test "$n" -eq 1

last=$(psql -XAtc "SELECT max(id) FROM aegis.events")
expect_eq "the coalesced wake-up names the last position" "$last" "$payload"

# 5. DROP DATABASE while its notifier runs: the worker steps aside
psql -qX -c "CREATE DATABASE dropme" && PGDATABASE=dropme psql -qX -c "CREATE EXTENSION aegis_events; SELECT aegis.publish('t', '{}')" >/dev/null
notifier_of() { psql -XAtc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'aegis_events notifier' AND datname = '$1'" | grep -q .; }
check "the new database has its own notifier" wait_for 5 notifier_of dropme
out=$(psql -X -c "DROP DATABASE dropme" 2>&1)
check "DROP DATABASE is not blocked by the notifier ($out)" grep -q "DROP DATABASE" <<<"$out"
finish
