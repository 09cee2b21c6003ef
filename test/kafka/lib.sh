# test/kafka/lib.sh: sourceable helpers around broker.sh for test suites and
# demos (sourced, not run). Owns: starting/stopping/restarting real Kafka
# 3.6.2 test brokers and remembering them for cleanup. Interface (stable):
#   kafka_start DIR          start a broker in DIR (created if needed); exports
#                            KAFKA_TEST_BOOTSTRAP=127.0.0.1:PORT and KAFKA_TEST_DIR=DIR
#   kafka_stop DIR           stop it (SIGTERM, waits for the process to end)
#   kafka_restart DIR        stop, then start again with the same address and data
#   kafka_stop_all           stop every broker this shell started (for traps)
#   kafka_create_topic DIR TOPIC PARTITIONS   (TopicCommand, --if-not-exists)
#   kafka_topic_config DIR TOPIC KEY=VALUE    (ConfigCommand --alter --add-config)
#   kafka_pid DIR            the broker's pid (empty when stopped)
# Note: KAFKA_BOOTSTRAP_SERVERS is left alone; a suite sets it for the bridge.

KAFKA_BROKER_SH=${KAFKA_BROKER_SH:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/broker.sh}
: "${AEGIS_TEST_TMP:=/tmp/aegis-test}"

kafka_start() {
    local dir=$1 addr
    [ -n "$dir" ] || { echo "kafka_start: DIR missing" >&2; return 1; }
    addr=$("$KAFKA_BROKER_SH" start "$dir") || return 1
    mkdir -p "$AEGIS_TEST_TMP"
    grep -qxF "$dir" "$AEGIS_TEST_TMP/brokers.$$" 2>/dev/null \
        || echo "$dir" >>"$AEGIS_TEST_TMP/brokers.$$"
    export KAFKA_TEST_BOOTSTRAP=$addr KAFKA_TEST_DIR=$dir
}

kafka_stop() {
    "$KAFKA_BROKER_SH" stop "$1"
}

kafka_restart() {
    kafka_stop "$1" && kafka_start "$1"
}

kafka_stop_all() {
    local d
    [ -f "$AEGIS_TEST_TMP/brokers.$$" ] || return 0
    while read -r d; do kafka_stop "$d" || true; done <"$AEGIS_TEST_TMP/brokers.$$"
    rm -f "$AEGIS_TEST_TMP/brokers.$$"
}

kafka_create_topic() {
    "$KAFKA_BROKER_SH" create-topic "$1" "$2" "$3"
}

kafka_topic_config() {
    "$KAFKA_BROKER_SH" topic-config "$1" "$2" "$3"
}

kafka_pid() {
    cat "$1/broker.pid" 2>/dev/null || true
}
