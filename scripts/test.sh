#!/usr/bin/env bash
# `make test`: the whole suite against real RabbitMQ, PostgreSQL and SQLite. Starts the
# broker and PostgreSQL when they are not running; installs what the tests call
# (docker-compose to validate the compose file). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rabbitmq >/dev/null
command -v rabbitmqctl >/dev/null || apt_install rabbitmq-server

export LAPOR_TEST_PG="${LAPOR_TEST_PG:-postgresql://lapor:lapor@127.0.0.1:5432}"
if ! port_open 127.0.0.1 5432; then
  if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql; fi
  say "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 127.0.0.1 5432 30 || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
# The tests log in as role lapor (password lapor) and create a database per test.
if ! "$PY" -c "import psycopg,sys; psycopg.connect(sys.argv[1] + '/postgres', connect_timeout=3).close()" "$LAPOR_TEST_PG" 2>/dev/null; then
  say "creating PostgreSQL role lapor for the tests"
  as_root runuser -u postgres -- psql -q -c "CREATE ROLE lapor LOGIN PASSWORD 'lapor' CREATEDB" \
    || as_root runuser -u postgres -- psql -q -c "ALTER ROLE lapor LOGIN PASSWORD 'lapor' CREATEDB"
fi

command -v docker-compose >/dev/null || apt_install docker-compose
# nginx -t checks the compose proxy's configuration (deploy/proxy/intake.conf).
command -v nginx >/dev/null || apt_install nginx-light
# promtool (from Debian's prometheus package) checks the alert rules and their unit tests.
command -v promtool >/dev/null || apt_install prometheus
# kubectl builds deploy/k8s with kustomize; kubernetes-validate (a dev extra) checks the built objects
# against Kubernetes' schemas offline (tests/deploy/test_k8s_overlays.py).
command -v kubectl >/dev/null || apt_install kubectl
# node runs the validators generated from the KEDA, CloudNativePG and Prometheus Operator CRDs
# (tests/deploy/crd-validate, versions pinned in its package-lock.json).
command -v npm >/dev/null || apt_install nodejs npm
validators=tests/deploy/crd-validate
if [ ! "$validators/node_modules/.package-lock.json" -nt "$validators/package-lock.json" ]; then
  say "installing the CRD validators (npm ci)"
  npm ci --prefix "$validators" --no-audit --no-fund --loglevel=error >&2
fi

if [ -n "${CI:-}" ]; then
  # In CI a missing ../shared/data is an error, not a skip.
  export LAPOR_REQUIRE_SHARED_DATA=1
fi
# Routing loads its classifier from var/model (ROUTING_MODEL_DIR): build one if missing.
"$PY" -m services.routing model build --if-missing
# Two workers (pytest-xdist), each test file on one of them so its module's fixtures are built
# once: most of the suite waits on servers, brokers and timeouts rather than the CPU, and each
# test has its own vhost, database and ports. LAPOR_TEST_WORKERS=0 runs it in this process.
exec "$PY" -m pytest -n "${LAPOR_TEST_WORKERS:-2}" --dist loadfile "$@"
