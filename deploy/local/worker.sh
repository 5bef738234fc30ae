#!/usr/bin/env bash
# Run the scrubber worker in the background for the local stack.
#
#   deploy/local/worker.sh start   start it unless it runs; returns once /readyz says ready
#   deploy/local/worker.sh stop    SIGTERM (graceful: finish, flush, commit), SIGKILL after 30 s
#
# Settings come from SCRUBBER_* in the environment (see README); the log is
# $SCRUBBER_STACK_DIR/worker/worker.log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
STACK_DIR="${SCRUBBER_STACK_DIR:-$repo/.stack}"
DIR="$STACK_DIR/worker"
PIDFILE="$DIR/worker.pid"
HOST="${SCRUBBER_WEB_HOST:-127.0.0.1}"
PORT="${SCRUBBER_WEB_PORT:-6066}"
BIN="${SCRUBBER_BIN:-$repo/.venv/bin/scrubber}"

LOG_TAG=worker
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"

alive() { pid_alive "$PIDFILE"; }

ready() { curl -fsS "http://$HOST:$PORT/readyz" >/dev/null 2>&1; }

start() {
  mkdir -p "$DIR"
  if alive; then
    log "already running (pid $(cat "$PIDFILE"))"
  else
    log "starting; log in $DIR/worker.log"
    # The worker writes its own pid before exec, so the pid file names the worker itself
    # whether or not setsid had to fork.
    cd "$repo"
    SCRUBBER_DATA_DIR="${SCRUBBER_DATA_DIR:-$DIR/data}" \
      setsid bash -c 'echo $$ > "$1"; exec "$2" worker' _ "$PIDFILE" "$BIN" \
      >>"$DIR/worker.log" 2>&1 < /dev/null &
    for _ in $(seq 1 50); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  fi
  # Ready means: partitions assigned, producer connected, reference data loaded. The first
  # start includes a consumer group join and a topic metadata round; 60 s is generous.
  for _ in $(seq 1 120); do
    alive || { tail -n 40 "$DIR/worker.log" >&2; log "worker exited during start"; exit 1; }
    if ready; then log "ready: http://$HOST:$PORT/readyz"; return 0; fi
    sleep 0.5
  done
  tail -n 40 "$DIR/worker.log" >&2
  log "worker not ready after 60 s"
  exit 1
}

stop() {
  # SIGTERM: Faust finishes the record in hand, flushes and commits; SIGKILL after 30 s.
  stop_pid worker "$PIDFILE" 30
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if alive; then echo "worker up (pid $(cat "$PIDFILE"))"; else echo "worker down"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
