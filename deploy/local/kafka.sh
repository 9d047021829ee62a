#!/usr/bin/env bash
# Single-node KRaft Apache Kafka on 127.0.0.1 from Maven Central jars (no Docker).
# Usage: deploy/local/kafka.sh {start|stop|status|logs|fetch}. Every command is idempotent.
# State lives under .local/kafka (git-ignored): lib/ jars, data/ log dirs, broker.log, broker.pid.
#
# A second broker beside it (tests of Kafka security): its own KAFKA_LOCAL_DIR, KAFKA_PORT and
# KAFKA_CONTROLLER_PORT, the jars of the first (KAFKA_LIB_DIR), and a SASL_SSL listener:
#   KAFKA_SASL_SSL_PORT   port of a SASL_SSL listener (SCRAM-SHA-512 and SCRAM-SHA-256)
#   KAFKA_SSL_DIR         holds server-keystore.pem: the server's PKCS#8 private key, then its
#                         certificate chain (PEM, no password)
#   KAFKA_SCRAM_USERS     "name:password name2:password2", created at storage format time
# The controller and inter-broker listeners stay PLAINTEXT on loopback.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HOME_DIR="${KAFKA_LOCAL_DIR:-$ROOT/.local/kafka}"
LIB="${KAFKA_LIB_DIR:-$HOME_DIR/lib}"
DATA="$HOME_DIR/data"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
PID_FILE="$HOME_DIR/broker.pid"
LOG_FILE="$HOME_DIR/broker.log"
PROPS="$HOME_DIR/server.properties"
SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
SSL_DIR="${KAFKA_SSL_DIR:-}"
SCRAM_USERS="${KAFKA_SCRAM_USERS:-}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

fetch() {
  if [ -f "$LIB/.complete" ]; then return; fi
  command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) is required to fetch the broker jars" >&2; exit 1; }
  command -v java >/dev/null || { echo "kafka.sh: Java 17 is required to run the broker" >&2; exit 1; }
  echo "kafka.sh: fetching Apache Kafka jars from Maven Central into $LIB"
  mkdir -p "$LIB"
  mvn -q -B -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB"
  touch "$LIB/.complete"
}

configure() {
  mkdir -p "$DATA"
  local listeners="PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
  local advertised="PLAINTEXT://127.0.0.1:$PORT"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [ -n "$SASL_SSL_PORT" ]; then
    [ -f "$SSL_DIR/server-keystore.pem" ] || { echo "kafka.sh: KAFKA_SSL_DIR needs server-keystore.pem" >&2; exit 1; }
    listeners="$listeners,SASL_SSL://127.0.0.1:$SASL_SSL_PORT"
    advertised="$advertised,SASL_SSL://127.0.0.1:$SASL_SSL_PORT"
    protocols="$protocols,SASL_SSL:SASL_SSL"
  fi
  cat > "$PROPS" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$DATA
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  if [ -n "$SASL_SSL_PORT" ]; then
    cat >> "$PROPS" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$SSL_DIR/server-keystore.pem
PROPS
  fi
  cat > "$HOME_DIR/log4j2.properties" <<'LOG'
appender.console.type=Console
appender.console.name=STDOUT
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
logger.kafka.name=kafka.server.KafkaServer
logger.kafka.level=INFO
logger.raft.name=kafka.server.KafkaRaftServer
logger.raft.level=INFO
LOG
  if [ ! -f "$DATA/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid)"
    local scram=() user
    for user in $SCRAM_USERS; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%:*},password=${user#*:}]")
      scram+=(--add-scram "SCRAM-SHA-256=[name=${user%%:*},password=${user#*:}]")
    done
    java -cp "$LIB/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" --ignore-formatted \
        "${scram[@]}" >/dev/null
  fi
}

start() {
  if port_open "$PORT"; then echo "kafka.sh: a broker already answers on 127.0.0.1:$PORT"; return; fi
  fetch
  configure
  echo "kafka.sh: starting broker on 127.0.0.1:$PORT (log: $LOG_FILE)"
  nohup java -Xms256m -Xmx1g -cp "$LIB/*" -Dlog4j2.configurationFile="$HOME_DIR/log4j2.properties" \
      kafka.Kafka "$PROPS" >"$LOG_FILE" 2>&1 &
  echo $! > "$PID_FILE"
  # A broker holding thousands of partitions (test topics pile up) takes minutes to load them.
  local timeout="${KAFKA_START_TIMEOUT_SECONDS:-300}"
  for _ in $(seq 1 $((timeout * 2))); do
    if port_open "$PORT" && { [ -z "$SASL_SSL_PORT" ] || port_open "$SASL_SSL_PORT"; }; then
      echo "kafka.sh: broker ready"; return
    fi
    if ! running; then echo "kafka.sh: broker exited; last log lines:" >&2; tail -30 "$LOG_FILE" >&2; exit 1; fi
    sleep 0.5
  done
  echo "kafka.sh: broker did not open port $PORT within $timeout s (KAFKA_START_TIMEOUT_SECONDS)" >&2; tail -30 "$LOG_FILE" >&2; exit 1
}

stop() {
  if ! running; then echo "kafka.sh: not running"; rm -f "$PID_FILE"; return; fi
  local pid; pid="$(cat "$PID_FILE")"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE"; echo "kafka.sh: stopped"; return; }; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true; rm -f "$PID_FILE"; echo "kafka.sh: killed after 30 s"
}

status() {
  if port_open "$PORT"; then echo "kafka: up on 127.0.0.1:$PORT"; else echo "kafka: down"; return 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) tail -n "${2:-100}" -f "$LOG_FILE" ;;
  fetch) fetch ;;
  *) echo "usage: $0 {start|stop|status|logs|fetch}" >&2; exit 2 ;;
esac
