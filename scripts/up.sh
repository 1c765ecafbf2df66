#!/usr/bin/env bash
# `make up`: starts RabbitMQ if nothing answers, the demo SMTP sink and webhook receiver,
# and the three services with SQLite under var/; loads the national directory when the region
# list is there (the demo directory otherwise); prints the URLs.
# `make down` stops exactly what this started. `scripts/up.sh --status` shows what runs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
mkdir -p "$RUN" "$LOG"

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

if [ "${1:-}" = "--status" ]; then
  for name in devsinks routing notify intake; do
    if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))";
    else echo "$name: stopped"; fi
  done
  exit 0
fi

if [ "$(ensure_rabbitmq)" = started ]; then touch "$RUN/rabbitmq.started-by-lapor"; fi

export LAPOR_AMQP_URL="$AMQP_URL"
export INTAKE_PORT="${INTAKE_PORT:-8080}"
export ROUTING_ADDR="${ROUTING_ADDR:-127.0.0.1:50051}"
export ROUTING_LISTEN="${ROUTING_LISTEN:-$ROUTING_ADDR}"
export LAPOR_PUBLIC_URL="${LAPOR_PUBLIC_URL:-http://127.0.0.1:$INTAKE_PORT}"
# Reflection lets grpcurl list the API on this development machine; off in deployments.
export ROUTING_REFLECTION="${ROUTING_REFLECTION:-true}"

start() {  # name command...
  local name=$1; shift
  if running "$name"; then echo "$name already running"; return; fi
  nohup "$@" >>"$LOG/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

DEMO_SINKS=
if [ -z "${NOTIFY_SMTP_URL:-}" ]; then
  # No mail server configured: the demo sinks stand in for the reporter's inbox and the
  # agencies' systems.
  DEMO_SINKS=1
  [ -s "$VAR/demo-webhook-secret" ] || "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$VAR/demo-webhook-secret"
  chmod 600 "$VAR/demo-webhook-secret"
  export NOTIFY_SMTP_URL=smtp://127.0.0.1:1025
  start devsinks "$PY" tools/devsinks.py --var "$VAR" --secret-file "$VAR/demo-webhook-secret"
  wait_port 127.0.0.1 8099 20 || { echo "demo sinks did not start; see $LOG/devsinks.log" >&2; exit 1; }
fi

# Secrets made once per checkout, kept in var/ (mode 600): the SMS and WhatsApp gateways'
# signing secrets (intake checks them; tools/gateway_message.py signs with them) and the key
# of the agencies' attachment links (notify signs them, intake checks them).
secret_file() {  # variable file: point VARIABLE_FILE at the file unless either is set
  local variable=$1 file=$2
  [ -n "${!variable:-}" ] && return
  local file_variable="${variable}_FILE"
  [ -n "${!file_variable:-}" ] && return
  [ -s "$file" ] || "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$file"
  chmod 600 "$file"
  export "$file_variable=$file"
}
secret_file INTAKE_SMS_GATEWAY_SECRET "$VAR/sms-gateway-secret"
secret_file INTAKE_WHATSAPP_GATEWAY_SECRET "$VAR/whatsapp-gateway-secret"
secret_file LAPOR_ATTACHMENT_LINK_SECRET "$VAR/attachment-link-secret"
export NOTIFY_INTAKE_PUBLIC_URL="${NOTIFY_INTAKE_PUBLIC_URL:-$LAPOR_PUBLIC_URL}"
if [ -n "$DEMO_SINKS" ]; then
  # Texts to reporters' phones go to the demo gateway, which keeps them in var/sms/.
  export NOTIFY_SMS_GATEWAY_URL="${NOTIFY_SMS_GATEWAY_URL:-http://127.0.0.1:8099/gateway/sms}"
  export NOTIFY_WHATSAPP_GATEWAY_URL="${NOTIFY_WHATSAPP_GATEWAY_URL:-http://127.0.0.1:8099/gateway/whatsapp}"
fi

# The official region list (LAPOR_REGIONS_CSV, or ../shared/data beside the checkout) makes
# every real region code work: routing and intake import it, and routing loads the national
# directory generated from it (LAPOR_DIRECTORY_FILE: an operator's own file instead).
# Without it, the demo directory (Sumatera Barat).
REGIONS_CSV="${LAPOR_REGIONS_CSV:-$ROOT/../shared/data/wilayah-kepmendagri-2025.csv}"
if [ -f "$REGIONS_CSV" ]; then
  say "importing the region list and loading the national directory"
  DIRECTORY_FILE="${LAPOR_DIRECTORY_FILE:-$VAR/directory-national.yaml}"
  # Intake's import runs beside routing's: two databases, a few seconds saved.
  "$PY" -m services.intake import-regions "$REGIONS_CSV" >>"$LOG/intake.log" 2>&1 &
  intake_import=$!
  { "$PY" -m services.routing import-regions "$REGIONS_CSV" &&
    if [ -z "${LAPOR_DIRECTORY_FILE:-}" ]; then
      "$PY" -m services.routing directory generate --regions "$REGIONS_CSV" --out "$DIRECTORY_FILE"
    fi &&
    "$PY" -m services.routing directory load "$DIRECTORY_FILE"; } >>"$LOG/routing.log" 2>&1 || {
    echo "could not load the national directory; last lines of $LOG/routing.log:" >&2
    tail -n 10 "$LOG/routing.log" >&2
    exit 1
  }
  wait "$intake_import" || {
    echo "intake could not import the region list; last lines of $LOG/intake.log:" >&2
    tail -n 10 "$LOG/intake.log" >&2
    exit 1
  }
else
  say "seeding the demo directory (no region list at $REGIONS_CSV)"
  "$PY" -m services.routing seed-demo >>"$LOG/routing.log"
fi
# Intake calls routing with its own service account's token (citizen-side calls only); a
# token kept from an earlier run is reused while it works.
export INTAKE_ROUTING_TOKEN_FILE="${INTAKE_ROUTING_TOKEN_FILE:-$VAR/intake-routing-token}"
if ! "$PY" -m services.routing accounts ensure-service intake \
     --token-file "$INTAKE_ROUTING_TOKEN_FILE" >>"$LOG/routing.log" 2>&1; then
  echo "could not give intake its routing token; last lines of $LOG/routing.log:" >&2
  tail -n 5 "$LOG/routing.log" >&2
  exit 1
fi
if [ -n "$DEMO_SINKS" ]; then
  "$PY" -m services.notify webhooks set '*' http://127.0.0.1:8099/agency --allow-http \
    --secret-file "$VAR/demo-webhook-secret" >>"$LOG/notify.log"
fi

say "starting routing, notify and intake"
start routing "$PY" -m services.routing
start notify "$PY" -m services.notify
start intake "$PY" -m services.intake

for i in $(seq 1 30); do
  "$PY" -m services.infra.healthcheck "http://127.0.0.1:$INTAKE_PORT/healthz" && \
  "$PY" -m services.infra.healthcheck "grpc://$ROUTING_ADDR" && break
  sleep 1
done
for name in routing notify intake; do
  running "$name" || { echo "$name failed to start; last lines of $LOG/$name.log:" >&2;
                       tail -n 20 "$LOG/$name.log" >&2; exit 1; }
done

cat <<MSG

LAPOR is up.
  Citizen API      http://127.0.0.1:$INTAKE_PORT/api/v1/reports   (OpenAPI: /api/v1/openapi.json)
  Health, metrics  http://127.0.0.1:${INTAKE_METRICS_PORT:-9100}/readyz  /healthz  /metrics; routing :${ROUTING_METRICS_PORT:-9101}, notify :${NOTIFY_METRICS_PORT:-9102}
  Routing gRPC     $ROUTING_ADDR (reflection on)
  Staff accounts   .venv/bin/python -m services.routing accounts create|token|list (docs/authorization.md)
  Logs             var/log/*.log
MSG
if [ -n "$DEMO_SINKS" ]; then
  echo "  Reporter inbox   var/mail/*.eml      Agency webhooks  var/webhooks/*.json"
  echo "  Reporter phones  var/sms/*.json      Send an SMS      .venv/bin/python tools/gateway_message.py --from +6281234567890 \"Jalan rusak di Sijunjung\""
fi
echo "  Stop with        make down"
