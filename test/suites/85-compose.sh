#!/usr/bin/env bash
# 85-compose: docker-compose.yml for users with Docker. Docker does not run on
# our machines, so this checks the file instead (test/demo/compose_check.py):
# it parses; every service, port and environment variable it names exists in
# the project; Kafka has the seed's settings; the Dockerfiles build with the
# same commands as a local install (`make && make install`, `make bridge &&
# make install-bridge`), and what they copy out of the build stage is what
# those install (run here with DESTDIR).
set -uo pipefail
source "$(dirname "$0")/../lib.sh"

TMP=$(mktemp -d "$AEGIS_TEST_TMP/compose.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# run_check [COMPOSE_FILE]: the checker's output, its ok/not ok lines counted
run_check() {
    python3 "$AEGIS_TOP/test/demo/compose_check.py" "$AEGIS_TOP" "$@" 2>&1
}

if ! python3 -c 'import yaml' 2>/dev/null; then
    not_ok "python3-yaml is installed (apt-get install python3-yaml)"; finish; exit
fi

run_check >"$TMP/check.out"
cat "$TMP/check.out"
TESTS_PASSED=$((TESTS_PASSED + $(grep -c '^ok - ' "$TMP/check.out")))
TESTS_FAILED=$((TESTS_FAILED + $(grep -c '^not ok - ' "$TMP/check.out")))

# the checker catches mistakes: a compose file with three of them
sed -e 's#confluentinc/cp-kafka:7.6.0#confluentinc/cp-kafka:7.5.0#' \
    -e 's#KAFKA_BOOTSTRAP_SERVERS: kafka:29092#KAFKA_BOOTSTRAP_SERVERS: kafka:9092#' \
    -e 's#AEGIS_LISTEN: 0.0.0.0:8001#AEGIS_LISTEN_ADDR: 0.0.0.0:8001#' \
    "$AEGIS_TOP/docker-compose.yml" >"$TMP/broken.yml"
run_check "$TMP/broken.yml" >"$TMP/broken.out"
check "checker: flags a wrong Kafka image" grep -q '^not ok - compose: kafka: image' "$TMP/broken.out"
check "checker: flags a bootstrap address kafka does not advertise in the network" \
    grep -q '^not ok - compose: bridge: KAFKA_BOOTSTRAP_SERVERS' "$TMP/broken.out"
check "checker: flags a variable aegis-bridge does not read" \
    grep -q '^not ok - compose: bridge: every variable is one aegis-bridge reads.*AEGIS_LISTEN_ADDR' "$TMP/broken.out"
printf 'services: [unclosed\n' >"$TMP/bad.yml"
check "checker: a file that does not parse fails" bash -c "! python3 '$AEGIS_TOP/test/demo/compose_check.py' '$AEGIS_TOP' '$TMP/bad.yml' >/dev/null 2>&1"

# `make install install-bridge` (into DESTDIR) produce what the images copy out of the build stage
if make -s -C "$AEGIS_TOP" install install-bridge DESTDIR="$TMP/root" >"$TMP/install.log" 2>&1; then
    ok "make install DESTDIR=… works"
    while read -r p; do
        check "make install produces $p (copied by docker/bridge.Dockerfile)" test -x "$TMP/root$p"
    done < <(sed -n 's/^# installed-path //p' "$TMP/check.out")
    check "make install produces the extension's module and control file" \
        test -f "$TMP/root$(pg_config --pkglibdir)/aegis_events.so" -a \
             -f "$TMP/root$(pg_config --sharedir)/extension/aegis_events.control"
else
    not_ok "make install DESTDIR=… works ($(tail -3 "$TMP/install.log" | tr '\n' ' '))"
fi

finish
