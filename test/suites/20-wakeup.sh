#!/usr/bin/env bash
# 20-wakeup: LISTEN aegis_events is woken after publishing commits (never
# after a rollback), the payload is a small position, notifications are
# coalesced, aegis.wait_all is woken by commits (not rollbacks) and never
# runs ahead of the safe position, and DROP DATABASE is not blocked by the
# notifier worker.
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

# 6. aegis.wait_all: a reader waiting in the store is woken by a commit, not
#    by a rollback, and never returns an event above the safe position
#    (publisher A takes the lower position, B commits first: the waiter
#    must return both together, in order, once A commits)
waiting() { psql -XAtc "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND query LIKE '%wait_all%'" | grep -qx 1; }
start=$(psql -XAtc "SELECT aegis.safe_position()")
psql -XAtc "SELECT id FROM aegis.wait_all($start, 10, 30000)" >"$AEGIS_TEST_TMP/wait1.$$" 2>&1 & listen_pid=$!
check "wait_all sleeps while nothing is new" wait_for 10 waiting
psql -qX -c "BEGIN" -c "SELECT aegis.publish('wait-probe', '{\"rolled\": \"back\"}')" -c "ROLLBACK" >/dev/null
psql -qX -c "BEGIN" -c "SELECT aegis.publish('wait-probe', '{\"rolled\": \"back\"}')" -c "ROLLBACK" >/dev/null
check "after two rollbacks wait_all is still waiting" wait_for 10 waiting
id=$(psql -XAtc "SELECT aegis.publish('wait-probe', '{\"n\": 1}')")
wait "$listen_pid"
expect_eq "a commit wakes wait_all, which returns just the committed event" "$id" "$(cat "$AEGIS_TEST_TMP/wait1.$$")"

start=$(psql -XAtc "SELECT aegis.safe_position()")
psql -XAtc "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.wait_all($start, 10, 30000)" >"$AEGIS_TEST_TMP/wait2.$$" 2>&1 & listen_pid=$!
check "wait_all sleeps again" wait_for 10 waiting
psql -XAt -c "BEGIN" -c "SELECT aegis.publish('wait-probe', '{\"who\": \"A\"}')" -c "SELECT pg_sleep(2)" -c "COMMIT" \
    >"$AEGIS_TEST_TMP/waitA.$$" 2>&1 & a_pid=$!
a_open() { psql -XAtc "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%pg_sleep(2)%'" | grep -qx 1; }
check "publisher A holds its position open" wait_for 10 a_open
b=$(psql -XAtc "SELECT aegis.publish('wait-probe', '{\"who\": \"B\"}')")
wait "$a_pid"
wait "$listen_pid"
a=$(sed -n 2p "$AEGIS_TEST_TMP/waitA.$$")
expect_eq "B committed first, yet wait_all returned A and B together, in position order" "$a,$b" "$(cat "$AEGIS_TEST_TMP/wait2.$$")"
check "A took the lower position ($a < $b)" test "$a" -lt "$b"

# 5. DROP DATABASE while its notifier runs: the worker steps aside
psql -qX -c "CREATE DATABASE dropme" && PGDATABASE=dropme psql -qX -c "CREATE EXTENSION aegis_events; SELECT aegis.publish('t', '{}')" >/dev/null
notifier_of() { psql -XAtc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'aegis_events notifier' AND datname = '$1'" | grep -q .; }
check "the new database has its own notifier" wait_for 5 notifier_of dropme
out=$(psql -X -c "DROP DATABASE dropme" 2>&1)
check "DROP DATABASE is not blocked by the notifier ($out)" grep -q "DROP DATABASE" <<<"$out"
finish
