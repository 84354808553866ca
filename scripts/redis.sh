#!/usr/bin/env bash
# Start/stop/status a local Redis on 127.0.0.1 (Debian's redis-server, installed on first use).
# Usage: bash scripts/redis.sh start|stop|status   (port: REDIS_PORT, default 6379)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${REDIS_PORT:-6379}
DIR=.cache/redis-$PORT
mkdir -p "$DIR"
PIDFILE=$PWD/$DIR/redis.pid
ensure_installed() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "[redis] installing redis-server from apt"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  fi
}
ping() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }
case "${1:-}" in
  start)
    ensure_installed
    if ping; then echo "[redis] already running on 127.0.0.1:$PORT"; exit 0; fi
    redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --pidfile "$PIDFILE" \
      --dir "$PWD/$DIR" --save "" --appendonly no --logfile "$PWD/$DIR/redis.log"
    for _ in $(seq 1 300); do ping && { echo "[redis] up on 127.0.0.1:$PORT"; exit 0; }; sleep 0.1; done  # 30 s: a loaded machine
    echo "[redis] did not answer PING; see $DIR/redis.log" >&2; exit 1 ;;
  stop)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      pid=$(cat "$PIDFILE"); kill "$pid"
      # SIGTERM only asks: wait until the process is gone, so a caller that stops Redis and then uses the
      # port (an outage test, a restart) never talks to a server still shutting down.
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then echo "[redis] pid $pid ignored SIGTERM for 30 s; sending SIGKILL" >&2; kill -9 "$pid" || true; fi
      rm -f "$PIDFILE"; echo "[redis] stopped"
    else echo "[redis] not running"; fi ;;
  status)
    if ping; then echo "[redis] running on 127.0.0.1:$PORT"; else echo "[redis] not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
