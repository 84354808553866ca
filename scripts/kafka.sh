#!/usr/bin/env bash
# Single-node Apache Kafka 4.x (KRaft, combined broker + controller) on 127.0.0.1, from Maven Central jars.
# Usage: bash scripts/kafka.sh start|stop|status|restart
#   KAFKA_PORT (default 9092; the controller listens on KAFKA_PORT+1), KAFKA_HEAP (default 512m),
#   KAFKA_DIR (state, default .cache/kafka-$KAFKA_PORT). Jars: .cache/kafka/libs (fetched once with Maven).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${KAFKA_PORT:-9092}
CTRL=$((PORT + 1))
LIBS=$ROOT/.cache/kafka/libs
DIR=${KAFKA_DIR:-$ROOT/.cache/kafka-$PORT}
PIDFILE=$DIR/kafka.pid
CONF=$DIR/server.properties

fetch_jars() {
  if [ ! -f "$LIBS/.complete" ]; then
    echo "[kafka] fetching the broker's jars from Maven Central (once)"
    mvn -q -f scripts/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$LIBS"
    touch "$LIBS/.complete"
  fi
}

write_config() {
  mkdir -p "$DIR/data"
  cat > "$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CTRL
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
PROPS
}

healthy() {
  java -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" --list \
    >/dev/null 2>&1
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  fetch_jars
  if running && healthy; then echo "[kafka] already running on 127.0.0.1:$PORT"; return 0; fi
  write_config
  if [ ! -f "$DIR/data/meta.properties" ]; then
    id=$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)
    java -cp "$LIBS/*" kafka.tools.StorageTool format --standalone -t "$id" -c "$CONF" >"$DIR/format.log" 2>&1
  fi
  nohup java -Xms${KAFKA_HEAP:-512m} -Xmx${KAFKA_HEAP:-512m} -XX:+UseG1GC -Djava.awt.headless=true \
    -cp "$LIBS/*" kafka.Kafka "$CONF" >"$DIR/kafka.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    if healthy; then echo "[kafka] up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return 0; fi
    running || { echo "[kafka] broker exited; see $DIR/kafka.log" >&2; tail -20 "$DIR/kafka.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "[kafka] no answer after 60s; see $DIR/kafka.log" >&2; exit 1
}

stop() {
  if running; then
    pid=$(cat "$PIDFILE"); kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"; echo "[kafka] stopped"
  else
    echo "[kafka] not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running && healthy; then echo "[kafka] running on 127.0.0.1:$PORT"; else echo "[kafka] not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
