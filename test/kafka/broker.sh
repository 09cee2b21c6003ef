#!/bin/bash
# test/kafka/broker.sh: a real Apache Kafka 3.6.2 broker for the tests (KRaft,
# combined broker+controller, one node, 127.0.0.1 only), run from the Maven
# Central jars with the JDK. Owns: the jar cache, server.properties, storage
# format, start/stop by pid, and topic creation with Kafka's own TopicCommand.
#
#   broker.sh fetch                      download the jars into the cache (once)
#   broker.sh start DIR                  start a broker whose state lives in DIR;
#                                        DIR/bootstrap = host:port, DIR/broker.pid
#                                        (a restart of the same DIR keeps ports and data)
#   broker.sh stop DIR                   SIGTERM, wait for the process to end
#   broker.sh create-topic DIR TOPIC N   create TOPIC with N partitions, RF 1
#   broker.sh topic-config DIR TOPIC K=V set a topic config (e.g. max.message.bytes=1000)
#
# Environment: AEGIS_KAFKA_JARS (jar folder, default ~/.cache/aegis-kafka/3.6.2/jars),
# AEGIS_KAFKA_HEAP (default 512m).
set -euo pipefail

KAFKA_VERSION=3.6.2
KAFKA_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_JARS=${AEGIS_KAFKA_JARS:-$HOME/.cache/aegis-kafka/$KAFKA_VERSION/jars}
KAFKA_HEAP=${AEGIS_KAFKA_HEAP:-512m}
KAFKA_CLUSTER_ID=MkU3OEVBNTcwNTJENDM2Qk   # any 22-char base64url id
KAFKA_READY_SECS=60
KAFKA_STOP_SECS=30

broker_die() { echo "broker.sh: $*" >&2; exit 1; }

broker_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# broker_fetch: copy the broker's runtime jars into the cache unless present.
# Downloads into a temporary folder and renames it, under a lock, so that
# concurrent suites never see a half-filled cache.
broker_fetch() {
    [ -f "$KAFKA_JARS/.complete" ] && return 0
    command -v mvn >/dev/null || broker_die "mvn not found (apt-get install maven)"
    mkdir -p "$(dirname "$KAFKA_JARS")"
    exec 9>"$(dirname "$KAFKA_JARS")/.lock"
    flock 9
    if [ ! -f "$KAFKA_JARS/.complete" ]; then
        local tmp="$KAFKA_JARS.tmp.$$"
        rm -rf "$tmp"
        echo "broker.sh: fetching Kafka $KAFKA_VERSION jars into $KAFKA_JARS" >&2
        mvn -B -q -f "$KAFKA_HERE/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" -DincludeScope=runtime >&2 \
            || { rm -rf "$tmp"; broker_die "mvn dependency:copy-dependencies failed"; }
        ls "$tmp"/kafka_2.13-$KAFKA_VERSION.jar >/dev/null 2>&1 \
            || { rm -rf "$tmp"; broker_die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"; }
        touch "$tmp/.complete"
        rm -rf "$KAFKA_JARS"
        mv "$tmp" "$KAFKA_JARS"
    fi
    flock -u 9
}

# broker_java MAINCLASS ARGS...: runs a JVM with the broker's class path
# (replacing the calling (sub)shell when KAFKA_EXEC=exec)
broker_java() {
    ${KAFKA_EXEC:-} java -Xmx"$KAFKA_HEAP" -Xms"$KAFKA_HEAP" -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$KAFKA_HERE/log4j.properties" \
        -cp "$KAFKA_JARS/*" "$@"
}

# broker_write_config DIR: server.properties with fresh loopback ports
# (kept when DIR already has one, so a restarted broker has the same address)
broker_write_config() {
    local dir=$1 kafka_port ctrl_port
    [ -f "$dir/server.properties" ] && return 0
    kafka_port=$(broker_free_port)
    ctrl_port=$(broker_free_port)
    while [ "$ctrl_port" = "$kafka_port" ]; do ctrl_port=$(broker_free_port); done
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctrl_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$ctrl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=2097152
PROPS
    echo "127.0.0.1:$kafka_port" >"$dir/bootstrap"
}

# broker_alive PID: the process exists and is not a zombie
broker_alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}

broker_ready() {
    kcat -L -b "$1" -m 2 >/dev/null 2>&1
}

broker_start() {
    local dir=$1 pid bootstrap end
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/broker.pid" ] && broker_alive "$(cat "$dir/broker.pid")"; then
        broker_die "a broker already runs for $dir (pid $(cat "$dir/broker.pid"))"
    fi
    broker_fetch
    broker_write_config "$dir"
    if [ ! -f "$dir/data/meta.properties" ]; then
        broker_java kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" \
            -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
            || { cat "$dir/format.log" >&2; broker_die "storage format failed"; }
    fi
    bootstrap=$(cat "$dir/bootstrap")
    broker_ready "$bootstrap" && broker_die "something already serves $bootstrap"
    # exec in the background subshell, so that $! is the JVM's own pid
    (KAFKA_EXEC=exec broker_java kafka.Kafka "$dir/server.properties") \
        >>"$dir/broker.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/broker.pid"
    end=$(( $(date +%s) + KAFKA_READY_SECS ))
    until broker_ready "$bootstrap"; do
        if ! broker_alive "$pid"; then
            tail -n 30 "$dir/broker.log" >&2
            broker_die "broker exited during start-up (log: $dir/broker.log)"
        fi
        if [ "$(date +%s)" -ge "$end" ]; then
            kill -KILL "$pid" 2>/dev/null || true
            broker_die "broker not ready after ${KAFKA_READY_SECS}s (log: $dir/broker.log)"
        fi
        sleep 0.2
    done
    echo "$bootstrap"
}

broker_stop() {
    local dir=$1 pid i
    [ -f "$dir/broker.pid" ] || return 0
    pid=$(cat "$dir/broker.pid")
    if broker_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < KAFKA_STOP_SECS * 10; i++)); do
            broker_alive "$pid" || break
            sleep 0.1
        done
        if broker_alive "$pid"; then
            echo "broker.sh: broker $pid ignored SIGTERM for ${KAFKA_STOP_SECS}s, killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do broker_alive "$pid" || break; sleep 0.1; done
        fi
    fi
    rm -f "$dir/broker.pid"
}

broker_create_topic() {
    local dir=$1 topic=$2 partitions=$3
    [ -f "$dir/bootstrap" ] || broker_die "no broker in $dir"
    broker_java kafka.admin.TopicCommand --bootstrap-server "$(cat "$dir/bootstrap")" \
        --create --if-not-exists --topic "$topic" --partitions "$partitions" \
        --replication-factor 1 >/dev/null
}

broker_topic_config() {
    local dir=$1 topic=$2 kv=$3
    [ -f "$dir/bootstrap" ] || broker_die "no broker in $dir"
    broker_java kafka.admin.ConfigCommand --bootstrap-server "$(cat "$dir/bootstrap")" \
        --alter --entity-type topics --entity-name "$topic" --add-config "$kv" >/dev/null
}

case "${1:-}" in
    fetch)        broker_fetch ;;
    start)        [ $# -eq 2 ] || broker_die "usage: broker.sh start DIR"; broker_start "$2" ;;
    stop)         [ $# -eq 2 ] || broker_die "usage: broker.sh stop DIR"; broker_stop "$2" ;;
    create-topic) [ $# -eq 4 ] || broker_die "usage: broker.sh create-topic DIR TOPIC PARTITIONS"
                  broker_create_topic "$2" "$3" "$4" ;;
    topic-config) [ $# -eq 4 ] || broker_die "usage: broker.sh topic-config DIR TOPIC KEY=VALUE"
                  broker_topic_config "$2" "$3" "$4" ;;
    *)            broker_die "usage: broker.sh fetch | start DIR | stop DIR | create-topic DIR TOPIC PARTITIONS | topic-config DIR TOPIC KEY=VALUE" ;;
esac
