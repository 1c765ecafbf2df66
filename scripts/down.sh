#!/usr/bin/env bash
# `make down`: stops what `make up` started (and nothing else), draining each service.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

stop() {
  local name=$1 pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid=$(cat "$RUN/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { echo "$name did not stop in 30s; killing"; kill -KILL "$pid"; }
    echo "stopped $name"
  fi
  rm -f "$RUN/$name.pid"
}

# intake first (no new reports), routing and notify next, the sinks last.
for name in intake routing notify devsinks; do stop "$name"; done
if [ -f "$RUN/rabbitmq.started-by-lapor" ]; then
  as_root rabbitmqctl -q stop && echo "stopped RabbitMQ"
  rm -f "$RUN/rabbitmq.started-by-lapor"
fi
