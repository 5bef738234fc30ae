#!/usr/bin/env bash
# Prometheus for the local stack, without Docker: Debian's `prometheus` package (the server and
# promtool), scraping the local worker and evaluating deploy/prometheus/alerts.yml.
#
#   deploy/local/prometheus.sh install   apt-install Debian's prometheus package when promtool or
#                                        prometheus is missing (make test calls this)
#   deploy/local/prometheus.sh check     promtool: check the configs and rules, run the rule tests
#   deploy/local/prometheus.sh up        start Prometheus on 127.0.0.1:$PROMETHEUS_PORT scraping
#                                        the worker at SCRUBBER_WEB_HOST:SCRUBBER_WEB_PORT
#   deploy/local/prometheus.sh down      stop it
#   deploy/local/prometheus.sh status    say whether it runs, exit 0 only when it answers
#
# Settings (environment; defaults in brackets):
#   SCRUBBER_STACK_DIR   state: data, log, pid file                    [<repo>/.stack]
#   PROMETHEUS_PORT      Prometheus web UI and API on 127.0.0.1        [19090]
#   SCRUBBER_WEB_HOST    the worker's metrics host                     [127.0.0.1]
#   SCRUBBER_WEB_PORT    the worker's metrics port                     [6066]
#   PROMETHEUS_SCRAPE_X12 1: scrape the X12 intake too                  [0]
#   SCRUBBER_X12_WEB_PORT the X12 intake's metrics port                 [6067]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
conf="$repo/deploy/prometheus"

STACK_DIR="${SCRUBBER_STACK_DIR:-$repo/.stack}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-19090}"
TARGET="${SCRUBBER_WEB_HOST:-127.0.0.1}:${SCRUBBER_WEB_PORT:-6066}"
X12_TARGET="${SCRUBBER_WEB_HOST:-127.0.0.1}:${SCRUBBER_X12_WEB_PORT:-6067}"
# The X12 intake is scraped only when asked: a target that runs no intake would be down and
# ScrubberX12IntakeDown would fire. Without it, the template's X12 job (its last part) is left out.
if [ "${PROMETHEUS_SCRAPE_X12:-0}" = 1 ]; then WITHOUT_X12=""; else WITHOUT_X12='/# The X12 intake/,$d'; fi
DIR="$STACK_DIR/prometheus"
PIDFILE="$DIR/prometheus.pid"

LOG_TAG=prometheus
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"

install() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    return 0
  fi
  # Debian's package starts its own service on :9090 where an init system runs; ours is separate.
  apt_install prometheus
  command -v promtool >/dev/null || die "promtool is still missing after installing prometheus"
}

check() {
  install
  promtool check config "$conf/prometheus.yml"
  promtool check rules "$conf/alerts.yml"
  promtool test rules "$conf/alerts.test.yml"
}

alive() { pid_alive "$PIDFILE"; }

answers() { curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1; }

up() {
  install
  if alive && answers; then
    log "already running on http://127.0.0.1:$PROMETHEUS_PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  port_open "$PROMETHEUS_PORT" && die "port $PROMETHEUS_PORT is taken (set PROMETHEUS_PORT)"
  mkdir -p "$DIR/data"
  sed -e "s|@SCRAPE_INTERVAL@|5s|g" -e "s|@TARGET@|$TARGET|g" -e "s|@X12_TARGET@|$X12_TARGET|g" -e "$WITHOUT_X12" \
      -e "s|@ALERTS_FILE@|$conf/alerts.yml|g" \
      "$conf/prometheus.local.yml" > "$DIR/prometheus.yml"
  promtool check config "$DIR/prometheus.yml" >/dev/null
  log "starting on http://127.0.0.1:$PROMETHEUS_PORT, scraping $TARGET (X12 intake: ${PROMETHEUS_SCRAPE_X12:-0}); log in $DIR/prometheus.log"
  setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$PIDFILE" prometheus \
    --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
    --storage.tsdb.retention.time=7d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    >>"$DIR/prometheus.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    answers && { log "prometheus is up"; return 0; }
    alive || { tail -n 20 "$DIR/prometheus.log" >&2; die "prometheus exited during start"; }
    sleep 0.2
  done
  die "prometheus did not answer within 20 s (see $DIR/prometheus.log)"
}

down() { stop_pid prometheus "$PIDFILE" 10; }

status() {
  if alive && answers; then
    echo "prometheus  up    http://127.0.0.1:$PROMETHEUS_PORT (pid $(cat "$PIDFILE"))"
  else
    echo "prometheus  down"; return 1
  fi
}

case "${1:-}" in
  install) install ;;
  check) check ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 install|check|up|down|status" >&2; exit 2 ;;
esac
