#!/usr/bin/env bash
# The local development stack without Docker: a single-node Apache Kafka (KRaft) whose jars come
# from Maven Central, and Debian's redis-server, both on loopback.
#
#   deploy/local/stack.sh up       start whatever is not running; returns once both answer
#   deploy/local/stack.sh down     stop both; returns once no process is left
#   deploy/local/stack.sh status   say what runs, exit 0 only when both answer
#   deploy/local/stack.sh reset    down, then delete all local state (topics, offsets, Redis data)
#   deploy/local/stack.sh secure-env worker|admin
#                                  print the SCRUBBER_* settings for the secured endpoints
#
# Besides the plain loopback ports, the stack serves the same broker and Redis secured, as a
# production deployment would: Kafka SASL_SSL with SCRAM-SHA-512 on KAFKA_SECURE_PORT, and Redis
# over TLS on REDIS_TLS_PORT with two ACL users: scrubber-worker (read-only on reference data,
# read-write only on its own heartbeat keys) and scrubber-admin (loads and switches versions).
# A local CA and server certificate (openssl) and random passwords are made on first start and
# kept in $SCRUBBER_STACK_DIR/tls and $SCRUBBER_STACK_DIR/secrets.env (mode 0600).
#
# Settings (environment; defaults in brackets):
#   SCRUBBER_STACK_DIR   all state: data, logs, pid files           [<repo>/.stack]
#   KAFKA_VERSION        org.apache.kafka:kafka_2.13 version        [4.1.1]
#   KAFKA_CACHE_DIR      where the broker's jars are cached          [~/.cache/claim-scrubber]
#   KAFKA_PORT           PLAINTEXT listener on 127.0.0.1             [19092]
#   KAFKA_CONTROLLER_PORT KRaft controller listener on 127.0.0.1     [19093]
#   KAFKA_HEAP_OPTS      JVM heap                                    [-Xms256m -Xmx512m]
#   KAFKA_SECURE_PORT    SASL_SSL (SCRAM-SHA-512) listener            [19094]
#   KAFKA_LATENCY_PORT   plain listener, advertised at the proxy port [KAFKA_PORT + 3]
#   KAFKA_LATENCY_PROXY_PORT the slow-broker test's delaying proxy  [KAFKA_PORT + 4]
#   REDIS_PORT           redis-server on 127.0.0.1                   [16379]
#   REDIS_TLS_PORT       the same redis-server over TLS              [16380]
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
KAFKA_SECURE_PORT="${KAFKA_SECURE_PORT:-19094}"
KAFKA_LATENCY_PORT="${KAFKA_LATENCY_PORT:-$((KAFKA_PORT + 3))}"
KAFKA_LATENCY_PROXY_PORT="${KAFKA_LATENCY_PROXY_PORT:-$((KAFKA_PORT + 4))}"
REDIS_TLS_PORT="${REDIS_TLS_PORT:-16380}"

KAFKA_LIBS="$KAFKA_CACHE_DIR/kafka-$KAFKA_VERSION/libs"
KAFKA_DIR="$STACK_DIR/kafka"
REDIS_DIR="$STACK_DIR/redis"
TLS_DIR="$STACK_DIR/tls"
SECRETS="$STACK_DIR/secrets.env"

LOG_TAG=stack
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"

# ---------------------------------------------------------------- TLS and secrets
secrets_setup() {
  # Random passwords, made once; `reset` keeps them (and the CA) so clients stay configured.
  [ -f "$SECRETS" ] && return 0
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$STACK_DIR"
  local old_umask
  old_umask="$(umask)"
  umask 077
  {
    echo "KAFKA_SCRAM_USER=scrubber"
    echo "KAFKA_SCRAM_PASSWORD=$(openssl rand -hex 16)"
    echo "REDIS_WORKER_USER=scrubber-worker"
    echo "REDIS_WORKER_PASSWORD=$(openssl rand -hex 16)"
    echo "REDIS_ADMIN_USER=scrubber-admin"
    echo "REDIS_ADMIN_PASSWORD=$(openssl rand -hex 16)"
    echo "TLS_STORE_PASSWORD=$(openssl rand -hex 16)"
  } > "$SECRETS.tmp"
  mv "$SECRETS.tmp" "$SECRETS"
  umask "$old_umask"
}

load_secrets() { secrets_setup; set -a; . "$SECRETS"; set +a; }

tls_setup() {
  # A local CA and one server certificate for 127.0.0.1/localhost, used by Kafka and Redis.
  [ -f "$TLS_DIR/.complete" ] && return 0
  load_secrets
  command -v openssl >/dev/null || apt_install openssl
  log "making a local CA and server certificate in $TLS_DIR"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=claim-scrubber local CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
      -extfile server.ext -out server.crt 2>/dev/null
    openssl pkcs12 -export -in server.crt -inkey server.key -certfile ca.crt -name broker \
      -passout "pass:$TLS_STORE_PASSWORD" -out server.p12
    chmod 600 ./*.key server.p12
    rm -f server.csr server.ext
  )
  touch "$TLS_DIR/.complete"
}

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
  local old_umask
  old_umask="$(umask)"
  umask 077  # the rendered file holds the keystore password
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@KAFKA_SECURE_PORT@|$KAFKA_SECURE_PORT|g" \
      -e "s|@KAFKA_LATENCY_PORT@|$KAFKA_LATENCY_PORT|g" \
      -e "s|@KAFKA_LATENCY_PROXY_PORT@|$KAFKA_LATENCY_PROXY_PORT|g" \
      -e "s|@KAFKA_DATA_DIR@|$KAFKA_DIR/data|g" \
      -e "s|@TLS_DIR@|$TLS_DIR|g" \
      -e "s|@TLS_STORE_PASSWORD@|$TLS_STORE_PASSWORD|g" \
      "$here/kafka/server.properties" > "$KAFKA_DIR/server.properties"
  umask "$old_umask"
}

kafka_scram_user() {
  # SCRAM credentials live in the KRaft metadata log; set once per formatted storage.
  local marker="$KAFKA_DIR/data/.scram-$KAFKA_SCRAM_USER"
  [ -f "$marker" ] && return 0
  log "creating the SCRAM-SHA-512 user $KAFKA_SCRAM_USER"
  kafka_java kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$KAFKA_SCRAM_PASSWORD]" \
    --entity-type users --entity-name "$KAFKA_SCRAM_USER" >/dev/null
  touch "$marker"
}

kafka_java() {
  # shellcheck disable=SC2086
  java $KAFKA_HEAP_OPTS -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$KAFKA_DIR/logs" -cp "$KAFKA_LIBS/*" "$@"
}

kafka_up() {
  if pid_alive "$KAFKA_DIR/kafka.pid" && port_open "$KAFKA_PORT"; then
    if port_open "$KAFKA_SECURE_PORT" && port_open "$KAFKA_LATENCY_PORT"; then
      log "kafka already running on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    log "kafka runs without its secured or latency listener (an older configuration); restarting it"
    stop_pid kafka "$KAFKA_DIR/kafka.pid"
  fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process (set KAFKA_PORT)"
  load_secrets
  tls_setup
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
      kafka_scram_user
      log "kafka is up"
      return 0
    fi
    pid_alive "$KAFKA_DIR/kafka.pid" || { tail -n 30 "$KAFKA_DIR/logs/stdout.log" >&2; die "kafka exited during start"; }
    sleep 0.5
  done
  die "kafka did not start within 90 s (see $KAFKA_DIR/logs)"
}

# ---------------------------------------------------------------- Redis
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

redis_acl() {
  # Least privilege. The worker reads reference data (GET on <prefix>:refdata:*) and writes
  # only its heartbeat (SET on <prefix>:workers:*); the admin loads versions and moves the
  # pointer (Lua). Key patterns cover the default prefix and the tests' scrubber-test-* ones.
  # Passwords are stored hashed. The default user stays open on loopback for development.
  local old_umask
  old_umask="$(umask)"
  umask 077
  cat > "$REDIS_DIR/users.acl" <<ACL
user default on nopass ~* &* +@all
user $REDIS_WORKER_USER on #$(sha256 "$REDIS_WORKER_PASSWORD") resetkeys resetchannels %R~scrubber*:refdata:* ~scrubber*:workers:* -@all +get +set +ping +hello
user $REDIS_ADMIN_USER on #$(sha256 "$REDIS_ADMIN_PASSWORD") resetkeys resetchannels ~scrubber*:refdata:* ~scrubber*:workers:* -@all +@read +@write +@keyspace +@scripting +@transaction +@connection -@dangerous
ACL
  umask "$old_umask"
}

redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  # Debian's package starts its own service on 6379 where an init system runs; ours is separate.
  if pid_alive "$REDIS_DIR/redis.pid" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    if port_open "$REDIS_TLS_PORT"; then
      log "redis already running on 127.0.0.1:$REDIS_PORT"
      return 0
    fi
    log "redis runs without TLS and ACL users (an older configuration); restarting it"
    stop_pid redis "$REDIS_DIR/redis.pid"
  fi
  port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by another process (set REDIS_PORT)"
  load_secrets
  tls_setup
  mkdir -p "$REDIS_DIR"
  redis_acl
  log "starting redis on 127.0.0.1:$REDIS_PORT (TLS on $REDIS_TLS_PORT)"
  # Append-only persistence: loaded reference data versions survive a restart of the stack.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    --appendonly yes --save "" --protected-mode yes \
    --aclfile "$REDIS_DIR/users.acl" \
    --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$TLS_DIR/server.crt" \
    --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_DIR/ca.crt" \
    --tls-auth-clients no >/dev/null
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && { log "redis is up"; return 0; }
    sleep 0.1
  done
  die "redis did not start within 10 s (see $REDIS_DIR/redis.log)"
}

# ---------------------------------------------------------------- stop
down() {
  stop_pid kafka "$KAFKA_DIR/kafka.pid"
  stop_pid redis "$REDIS_DIR/redis.pid"
}

status() {
  local ok=0
  if pid_alive "$KAFKA_DIR/kafka.pid" && port_open "$KAFKA_PORT" && port_open "$KAFKA_SECURE_PORT"; then
    echo "kafka  up    127.0.0.1:$KAFKA_PORT, SASL_SSL 127.0.0.1:$KAFKA_SECURE_PORT (pid $(cat "$KAFKA_DIR/kafka.pid"))"
  else
    echo "kafka  down"; ok=1
  fi
  if pid_alive "$REDIS_DIR/redis.pid" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 \
      && port_open "$REDIS_TLS_PORT"; then
    echo "redis  up    127.0.0.1:$REDIS_PORT, TLS 127.0.0.1:$REDIS_TLS_PORT (pid $(cat "$REDIS_DIR/redis.pid"))"
  else
    echo "redis  down"; ok=1
  fi
  return $ok
}

secure_env() {
  # The settings a worker (or an admin tool) needs for the secured endpoints, as shell exports.
  load_secrets
  local user="$REDIS_WORKER_USER" pass="$REDIS_WORKER_PASSWORD"
  case "$1" in
    worker) ;;
    admin) user="$REDIS_ADMIN_USER"; pass="$REDIS_ADMIN_PASSWORD" ;;
    *) die "secure-env takes worker or admin" ;;
  esac
  cat <<ENV
export SCRUBBER_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_SECURE_PORT
export SCRUBBER_KAFKA_SECURITY_PROTOCOL=SASL_SSL
export SCRUBBER_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
export SCRUBBER_KAFKA_SASL_USERNAME=$KAFKA_SCRAM_USER
export SCRUBBER_KAFKA_SASL_PASSWORD=$KAFKA_SCRAM_PASSWORD
export SCRUBBER_KAFKA_SSL_CAFILE=$TLS_DIR/ca.crt
export SCRUBBER_REDIS_URL=rediss://$user:$pass@127.0.0.1:$REDIS_TLS_PORT/0
export SCRUBBER_REDIS_TLS_CAFILE=$TLS_DIR/ca.crt
ENV
}

case "${1:-}" in
  up) redis_up; kafka_up ;;
  down) down ;;
  status) status ;;
  reset) down; rm -rf "$STACK_DIR/kafka" "$STACK_DIR/redis"; log "local state removed" ;;
  secure-env) secure_env "${2:-worker}" ;;
  kafka-up) kafka_up ;;
  kafka-down) stop_pid kafka "$KAFKA_DIR/kafka.pid" ;;
  redis-up) redis_up ;;
  redis-down) stop_pid redis "$REDIS_DIR/redis.pid" ;;
  fetch) kafka_fetch ;;
  *) echo "usage: $0 up|down|status|reset|secure-env worker|admin|fetch|kafka-up|kafka-down|redis-up|redis-down" >&2; exit 2 ;;
esac
