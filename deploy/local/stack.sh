#!/usr/bin/env bash
# The local development stack without Docker: a single-node Apache Kafka (KRaft) whose jars come
# from Maven Central, and Debian's redis-server, both on loopback.
#
#   deploy/local/stack.sh up       start whatever is not running; returns once both answer
#   deploy/local/stack.sh down     stop both; returns once no process is left
#   deploy/local/stack.sh status   say what runs, exit 0 only when both answer
#   deploy/local/stack.sh reset    down, then delete all local state (topics, offsets, Redis data)
#
# Settings (environment; defaults in brackets):
#   SCRUBBER_STACK_DIR   all state: data, logs, pid files           [<repo>/.stack]
#   KAFKA_VERSION        org.apache.kafka:kafka_2.13 version        [4.1.1]
#   KAFKA_CACHE_DIR      where the broker's jars are cached          [~/.cache/claim-scrubber]
#   KAFKA_PORT           PLAINTEXT listener on 127.0.0.1             [19092]
#   KAFKA_CONTROLLER_PORT KRaft controller listener on 127.0.0.1     [19093]
#   KAFKA_HEAP_OPTS      JVM heap                                    [-Xms256m -Xmx512m]
#   REDIS_PORT           redis-server on 127.0.0.1                   [16379]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

STACK_DIR="${SCRUBBER_STACK_DIR:-$repo/.stack}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_CACHE_DIR="${KAFKA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/claim-scrubber}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
REDIS_PORT="${REDIS_PORT:-16379}"

KAFKA_LIBS="$KAFKA_CACHE_DIR/kafka-$KAFKA_VERSION/libs"
KAFKA_DIR="$STACK_DIR/kafka"
REDIS_DIR="$STACK_DIR/redis"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

apt_install() {
  # Debian packages the stack needs; installed only when missing (root on these machines).
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (Debian packages)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- Kafka
kafka_fetch() {
  if [ -f "$KAFKA_LIBS/.complete" ]; then return 0; fi
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  log "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS" >&2
  ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "maven did not produce the kafka jar"
  touch "$KAFKA_LIBS/.complete"
}

kafka_render_config() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@KAFKA_DATA_DIR@|$KAFKA_DIR/data|g" \
      "$here/kafka/server.properties" > "$KAFKA_DIR/server.properties"
}

kafka_java() {
  # shellcheck disable=SC2086
  java $KAFKA_HEAP_OPTS -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$KAFKA_DIR/logs" -cp "$KAFKA_LIBS/*" "$@"
}

kafka_up() {
  if pid_alive "$KAFKA_DIR/kafka.pid" && port_open "$KAFKA_PORT"; then
    log "kafka already running on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process (set KAFKA_PORT)"
  kafka_fetch
  kafka_render_config
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid | tail -n 1)"
    log "formatting KRaft storage (cluster $cluster_id)"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_DIR/server.properties" --ignore-formatted >/dev/null
  fi
  log "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  : > "$KAFKA_DIR/logs/server.log"
  rm -f "$KAFKA_DIR/kafka.pid"
  # The shell writes its own pid and then becomes the JVM (exec), so the pid file names the
  # broker whether or not setsid had to fork.
  setsid bash -c "echo \$\$ > '$KAFKA_DIR/kafka.pid'; exec java $KAFKA_HEAP_OPTS -XX:+UseG1GC \
      -Dlog4j2.configurationFile='$here/kafka/log4j2.properties' \
      -Dkafka.logs.dir='$KAFKA_DIR/logs' -cp '$KAFKA_LIBS/*' \
      kafka.Kafka '$KAFKA_DIR/server.properties'" \
    >"$KAFKA_DIR/logs/stdout.log" 2>&1 < /dev/null &
  for _ in $(seq 1 50); do [ -s "$KAFKA_DIR/kafka.pid" ] && break; sleep 0.1; done
  # The broker logs "Kafka Server started" once both listeners serve; 90 s covers a cold JVM on
  # two busy cores with room to spare (it takes 3-6 s here).
  for _ in $(seq 1 180); do
    if grep -q "Kafka Server started" "$KAFKA_DIR/logs/server.log" 2>/dev/null && port_open "$KAFKA_PORT"; then
      log "kafka is up"
      return 0
    fi
    pid_alive "$KAFKA_DIR/kafka.pid" || { tail -n 30 "$KAFKA_DIR/logs/stdout.log" >&2; die "kafka exited during start"; }
    sleep 0.5
  done
  die "kafka did not start within 90 s (see $KAFKA_DIR/logs)"
}

# ---------------------------------------------------------------- Redis
redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  # Debian's package starts its own service on 6379 where an init system runs; ours is separate.
  if pid_alive "$REDIS_DIR/redis.pid" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "redis already running on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by another process (set REDIS_PORT)"
  mkdir -p "$REDIS_DIR"
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  # Append-only persistence: loaded reference data versions survive a restart of the stack.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    --appendonly yes --save "" --protected-mode yes >/dev/null
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && { log "redis is up"; return 0; }
    sleep 0.1
  done
  die "redis did not start within 10 s (see $REDIS_DIR/redis.log)"
}

# ---------------------------------------------------------------- stop
stop_pid() {
  local name="$1" pidfile="$2"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # Kafka's controlled shutdown takes a few seconds; past 30 s it is killed.
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop in 30 s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$pidfile"
}

down() {
  stop_pid kafka "$KAFKA_DIR/kafka.pid"
  stop_pid redis "$REDIS_DIR/redis.pid"
}

status() {
  local ok=0
  if pid_alive "$KAFKA_DIR/kafka.pid" && port_open "$KAFKA_PORT"; then
    echo "kafka  up    127.0.0.1:$KAFKA_PORT (pid $(cat "$KAFKA_DIR/kafka.pid"))"
  else
    echo "kafka  down"; ok=1
  fi
  if pid_alive "$REDIS_DIR/redis.pid" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "redis  up    127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_DIR/redis.pid"))"
  else
    echo "redis  down"; ok=1
  fi
  return $ok
}

case "${1:-}" in
  up) redis_up; kafka_up ;;
  down) down ;;
  status) status ;;
  reset) down; rm -rf "$STACK_DIR/kafka" "$STACK_DIR/redis"; log "local state removed" ;;
  kafka-up) kafka_up ;;
  kafka-down) stop_pid kafka "$KAFKA_DIR/kafka.pid" ;;
  redis-up) redis_up ;;
  redis-down) stop_pid redis "$REDIS_DIR/redis.pid" ;;
  fetch) kafka_fetch ;;
  *) echo "usage: $0 up|down|status|reset|fetch|kafka-up|kafka-down|redis-up|redis-down" >&2; exit 2 ;;
esac
