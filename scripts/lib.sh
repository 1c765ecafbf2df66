# Shared helpers for the scripts behind `make up`, `make down` and `make test`.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
VAR="$ROOT/var"
RUN="$VAR/run"
LOG="$VAR/log"
AMQP_URL="${LAPOR_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  # Installs Debian packages only when asked for something missing; apt-get update once.
  if [ -z "${_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq
    _APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# host and port of an amqp:// URL
amqp_host_port() {
  python3 - "$1" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
print(u.hostname or "127.0.0.1", u.port or 5672)
PY
}

port_open() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

wait_port() {  # host port seconds
  local i
  for i in $(seq 1 "$3"); do
    port_open "$1" "$2" && return 0
    sleep 1
  done
  return 1
}

# The services apply their queue policies through RabbitMQ's management API (port 15672);
# on a local broker, turn the plugin on when it does not answer.
ensure_rabbitmq_management() {
  local host=$1
  port_open "$host" 15672 && return 0
  case "$host" in 127.*|localhost) ;; *) return 0;; esac
  command -v rabbitmq-plugins >/dev/null || return 0
  say "enabling RabbitMQ's management API (queue policies)"
  as_root rabbitmq-plugins enable --online rabbitmq_management >/dev/null
  wait_port "$host" 15672 30 || echo "RabbitMQ's management API did not come up on :15672" >&2
}

# Starts RabbitMQ when nothing answers on the configured URL; prints "started" if it did.
ensure_rabbitmq() {
  local host port
  read -r host port < <(amqp_host_port "$AMQP_URL")
  if port_open "$host" "$port"; then ensure_rabbitmq_management "$host" >&2; return 0; fi
  case "$host" in 127.*|localhost) ;; *)
    echo "RabbitMQ at $host:$port does not answer and is not local; start it or fix LAPOR_AMQP_URL" >&2
    return 1;;
  esac
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  say "starting RabbitMQ (detached)"
  as_root rabbitmq-server -detached
  if ! wait_port "$host" "$port" 60; then
    echo "RabbitMQ did not start within 60s; see /var/log/rabbitmq/" >&2
    return 1
  fi
  # The port opens before the broker accepts logins; wait until it does.
  as_root rabbitmqctl -q await_startup >/dev/null 2>&1 || true
  ensure_rabbitmq_management "$host" >&2
  echo started
}
