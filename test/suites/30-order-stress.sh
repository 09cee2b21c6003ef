#!/usr/bin/env bash
# 30-order-stress: six pgbench clients publish with random commit delays and
# some rollbacks (bounded: 6 s) while a reader loops over aegis.read_all in
# its own transactions; the reader must end up with exactly the committed
# events, each once, delivered in position order.  Twice: with the default
# partitions, and with partitions of 100 positions and none made ahead, so
# that the publishers cross bounds and attach partitions themselves while
# they race (store.c's store_extend).
source "$(dirname "$0")/../lib.sh"
trap pg_stop_all EXIT
cd "$AEGIS_TOP"

# stress LABEL CLUSTER [SETTING...]
stress() {
local label=$1 name=$2; shift 2
pg_start "$name" "$@"
work="$AEGIS_TEST_TMP/$name.$$"; mkdir -p "$work"

psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION aegis_events;
CREATE TABLE seen (seq bigint GENERATED ALWAYS AS IDENTITY, id bigint PRIMARY KEY);
CREATE TABLE reader (pos bigint NOT NULL);
INSERT INTO reader VALUES (0);
-- The reader: read, record (a duplicate violates seen's key), commit, repeat
CREATE PROCEDURE read_loop(seconds float8) LANGUAGE plpgsql AS $$
DECLARE
    stop timestamptz := clock_timestamp() + make_interval(secs => seconds);
    last bigint;
BEGIN
    WHILE clock_timestamp() < stop LOOP
        WITH batch AS (SELECT id, topic FROM aegis.read_all((SELECT pos FROM reader), 500)),
             ins AS (INSERT INTO seen (id)
                     SELECT id FROM batch WHERE topic = 'stress' ORDER BY id)
        SELECT max(id) INTO last FROM batch;
        UPDATE reader SET pos = greatest(pos, coalesce(last, pos));
        COMMIT;
        PERFORM pg_sleep(0.002);
    END LOOP;
END $$;
SQL
cat >"$work/publish.sql" <<'EOF2'
\set delay random(0, 3000)
\set fate random(1, 8)
BEGIN;
SELECT aegis.publish('stress', jsonb_build_object('client', :client_id));
SELECT pg_sleep(:delay / 1000000.0);
SELECT aegis.publish('stress', jsonb_build_object('client', :client_id, 'second', true));
\if :fate = 1
ROLLBACK;
\else
COMMIT;
\endif
EOF2

psql -qX -c "CALL read_loop(8)" >"$work/reader.log" 2>&1 & reader_pid=$!
"$PG_BIN/pgbench" -n -c 6 -j 2 -T 6 -f "$work/publish.sql" >"$work/pgbench.log" 2>&1
pgbench_status=$?
wait "$reader_pid"; reader_status=$?
psql -qX -c "CALL read_loop(0.5)" >>"$work/reader.log" 2>&1

check "$label: pgbench ran ($(grep -E '^number of transactions actually processed' "$work/pgbench.log"))" test "$pgbench_status" -eq 0
check "$label: the reader never saw an event twice (no key violation)" test "$reader_status" -eq 0
[ "$reader_status" -eq 0 ] || sed 's/^/# /' "$work/reader.log"
committed=$(psql -XAtc "SELECT count(*) FROM aegis.events WHERE topic = 'stress'")
seen=$(psql -XAtc "SELECT count(*) FROM seen")
check "$label: thousands of events were published ($committed)" test "$committed" -ge 1000
expect_eq "$label: the reader saw every committed event" "$committed" "$seen"
expect_eq "$label: nothing seen that was not committed" "0" \
    "$(psql -XAtc "SELECT count(*) FROM seen s WHERE NOT EXISTS (SELECT 1 FROM aegis.events e WHERE e.id = s.id AND e.topic = 'stress')")"
expect_eq "$label: delivery order is position order" "0" \
    "$(psql -XAtc "SELECT count(*) FROM (SELECT id, lag(id) OVER (ORDER BY seq) AS prev FROM seen) t WHERE id < prev")"
processed=$(awk -F': ' '/^number of transactions actually processed/ {print $2}' "$work/pgbench.log" | cut -d/ -f1)
check "$label: some transactions rolled back ($committed events from $processed transactions of 2)" \
    test "$committed" -lt $((2 * processed))
expect_eq "$label: events come in whole transactions (first and second of each)" "0" \
    "$(psql -XAtc "SELECT abs(count(*) FILTER (WHERE payload ? 'second') - count(*) FILTER (WHERE NOT payload ? 'second')) FROM seen JOIN aegis.events USING (id)")"
}

stress "one partition" stress
stress "partitions of 100, none ahead" stress-parts "aegis.partition_width = 100" "aegis.partitions_ahead = 0"
check "partitions of 100: the publishers made dozens ($(psql -XAtc "SELECT count(*) FROM aegis.event_partitions"))" \
    test "$(psql -XAtc "SELECT count(*) FROM aegis.event_partitions")" -ge 20
finish
