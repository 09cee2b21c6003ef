#!/usr/bin/env bash
# 26-publishers: roles granted exactly as the README says work first after a
# server restart (order.c's first read of the largest id runs with the table
# owner's rights); an idle publishing transaction holds back every reader,
# in every database, and shows in aegis.open_publishers and
# aegis.publisher_status; the README's idle_in_transaction_session_timeout
# for publisher roles ends it and the readers move on.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../readme_grants.sh"
holder_pid=
trap 'exec 7>&- 2>/dev/null; kill_pid "$holder_pid"; pg_stop_all' EXIT
cd "$AEGIS_TOP"

pg_start pubs
psql -qX -c "CREATE EXTENSION aegis_events" >/dev/null
for block in publisher bridge-sse; do
    out=$(readme_grants "$block" | psql -qX -v ON_ERROR_STOP=1 2>&1)
    check "the README's $block grants run ($out)" test $? -eq 0 -a -z "$out"
done
safe() { psql -XAtc "SELECT aegis.safe_position()"; }

# 1. after a restart, the publisher role publishes first: no permission
#    error, and its position is above every id the store held
psql -qX -c "SELECT aegis.publish('roles', '{\"before\": \"restart\"}')" >/dev/null
max=$(psql -XAtc "SELECT max(id) FROM aegis.events")
pg_restart_dir "$PGDATA_pubs"
out=$(psql -XAt -U app -c "SELECT aegis.publish('roles', '{\"first\": \"after restart\"}')" 2>&1)
check "after a restart the publisher role's first publish works ($out)" grep -qxE '[0-9]+' <<<"$out"
above() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt "$2" ]; }
check "its position is above the stored ones ($out > $max)" above "$out" "$max"
out=$(psql -XAt -U app -c "SELECT aegis.publish_done('conv-r', 'x', 'completed')" 2>&1)
check "a typed helper works for it too ($out)" grep -qxE '[0-9]+' <<<"$out"
out=$(psql -XAt -U app -c "SELECT aegis.ensure_topic('roles-topic', 2, 1)" 2>&1)
check "and it declares a topic ($out)" test -z "$out"
out=$(psql -XAt -U app -c "SELECT count(*) FROM aegis.events" 2>&1)
check "while it cannot read the table ($out)" grep -q "permission denied for table events" <<<"$out"

# 2. after a restart, the bridge role's first call is safe_position
max=$(psql -XAtc "SELECT max(id) FROM aegis.events")
pg_restart_dir "$PGDATA_pubs"
out=$(psql -XAt -U aegis_bridge -c "SELECT aegis.safe_position()" 2>&1)
expect_eq "after a restart the bridge role's first safe_position works" "$max" "$out"

# 3. an idle publishing transaction freezes every reader and is visible
psql -qX -c "CREATE DATABASE other" && PGDATABASE=other psql -qX -c "CREATE EXTENSION aegis_events" >/dev/null
fifo="$AEGIS_TEST_TMP/holder.$$"
hold() {    # hold ROLE OUTFILE: a session that publishes, then sits idle in its transaction
    rm -f "$fifo"; mkfifo "$fifo"
    psql -qXAt -U "$1" <"$fifo" >"$2" 2>&1 & holder_pid=$!
    exec 7>"$fifo"
    echo "SELECT pg_backend_pid();" >&7
    echo "BEGIN;" >&7
    echo "SELECT aegis.publish('freeze', '{\"who\": \"holder\"}');" >&7
    wait_for 20 lines_are 2 "$2"
}
lines_are() { [ "$(grep -cxE '[0-9]+' "$2")" -eq "$1" ]; }
hold postgres "$AEGIS_TEST_TMP/hold1.$$"
hpid=$(sed -n 1p "$AEGIS_TEST_TMP/hold1.$$"); a=$(sed -n 2p "$AEGIS_TEST_TMP/hold1.$$")
check "the holder published (pid $hpid, position $a)" test -n "$a"
b=$(psql -XAtc "SELECT aegis.publish('freeze', '{\"who\": \"later\"}')")
idle() { psql -XAtc "SELECT state FROM aegis.open_publishers WHERE pid = $hpid" | grep -qx 'idle in transaction'; }
check "aegis.open_publishers shows it idle in transaction" wait_for 20 idle
expect_eq "the safe position stays below its event while a later one ($b) committed" "$((a - 1))" "$(safe)"
expect_eq "a reader does not get the later event" "0" \
    "$(psql -XAtc "SELECT count(*) FROM aegis.read_all($a - 1, 10) WHERE id = $b")"
expect_eq "nor does a reader in another database" "$((a - 1))" "$(PGDATABASE=other safe)"
expect_eq "open_publishers: its pid, database, role, position" "$hpid|postgres|postgres|$a" \
    "$(psql -XAtc "SELECT pid, database, role, first_position FROM aegis.open_publishers")"
expect_eq "publisher_status: one open, the oldest is it" "1|$hpid|postgres|t" \
    "$(psql -XAtc "SELECT open_publishers, oldest_pid, oldest_database, oldest_age > '0' FROM aegis.publisher_status()")"
echo "COMMIT;" >&7; exec 7>&-; wait "$holder_pid"; holder_pid=
check "once it commits, readers move on ($(safe) >= $b)" test "$(safe)" -ge "$b"
expect_eq "and nothing is open" "0" "$(psql -XAtc "SELECT open_publishers FROM aegis.publisher_status()")"

# 4. the README's bound: idle_in_transaction_session_timeout for the
#    publisher role (2 s here instead of the README's 30 s) ends the freeze
psql -qX -c "ALTER ROLE app SET idle_in_transaction_session_timeout = '2s'"
hold app "$AEGIS_TEST_TMP/hold2.$$"
hpid=$(sed -n 1p "$AEGIS_TEST_TMP/hold2.$$"); a=$(sed -n 2p "$AEGIS_TEST_TMP/hold2.$$")
check "the app role holds a publishing transaction open (pid $hpid, position $a)" test -n "$a"
b=$(psql -XAtc "SELECT aegis.publish('freeze', '{\"who\": \"later\"}')")
got=$(psql -XAtc "SELECT string_agg(id::text, ',' ORDER BY id) FROM aegis.wait_all($a - 1, 10, 30000)")
expect_eq "a waiting reader gets the later event once the timeout ends the idle transaction" "$b" "$got"
check "the server ended the idle session" \
    grep -q "terminating connection due to idle-in-transaction timeout" "$(dirname "$PGDATA_pubs")/server.log"
expect_eq "its event was rolled back" "0" "$(psql -XAtc "SELECT count(*) FROM aegis.events WHERE id = $a")"
expect_eq "nothing is open" "0" "$(psql -XAtc "SELECT count(*) FROM aegis.open_publishers")"
exec 7>&-; kill_pid "$holder_pid"; holder_pid=
finish
