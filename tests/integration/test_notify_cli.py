"""`python -m services.notify`: the operator's webhook commands, and the serving process
starting, answering its probes and draining on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.infra import db
from services.notify import store
from services.notify.__main__ import main
from tests.conftest import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SECRET = "pupr-sijunjung-signing-secret-42"


@pytest.fixture
def notify_db(database_url, monkeypatch):
    monkeypatch.setenv("NOTIFY_DATABASE_URL", database_url)
    return database_url


def endpoint(url, code):
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return store.endpoint_for(conn, code)
    finally:
        engine.dispose()


def test_webhooks_set_takes_the_secret_from_env_or_file_and_list_never_shows_it(
        notify_db, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PUPR_SECRET", SECRET)
    assert main(["webhooks", "set", "PUPR-13.03", "https://pupr.sijunjung.go.id/lapor",
                 "--secret-env", "PUPR_SECRET"]) == 0
    secret_file = tmp_path / "default.secret"
    secret_file.write_text("default-endpoint-secret-0001\n")
    assert main(["webhooks", "set", "*", "https://hooks.lapor.go.id/in?token=abc123",
                 "--secret-file", str(secret_file)]) == 0

    saved = endpoint(notify_db, "PUPR-13.03")
    assert (saved.url, saved.secret, saved.active) == (
        "https://pupr.sijunjung.go.id/lapor", SECRET, True)
    assert endpoint(notify_db, "DISHUB-13.03").secret == "default-endpoint-secret-0001"

    capsys.readouterr()
    assert main(["webhooks", "list"]) == 0
    out = capsys.readouterr().out
    assert "PUPR-13.03" in out and "https://pupr.sijunjung.go.id/lapor" in out and "*" in out
    assert SECRET not in out and "default-endpoint-secret" not in out
    assert "abc123" not in out  # a token in a query string is a secret too

    # Replacing an endpoint keeps one row per agency; --inactive stops sending to it.
    assert main(["webhooks", "set", "PUPR-13.03", "https://pupr.sijunjung.go.id/v2",
                 "--secret-env", "PUPR_SECRET", "--inactive"]) == 0
    assert endpoint(notify_db, "PUPR-13.03").agency_code == "*"


def test_webhooks_set_refuses_weak_or_missing_secrets_and_bad_urls(notify_db, monkeypatch,
                                                                   capsys):
    engine = db.make_engine(notify_db)
    db.migrate(engine, "notify", store.MIGRATIONS)
    monkeypatch.setenv("SHORT_SECRET", "abc")
    assert main(["webhooks", "set", "X", "https://x.go.id", "--secret-env", "SHORT_SECRET"]) == 2
    assert main(["webhooks", "set", "X", "https://x.go.id", "--secret-env", "UNSET_VAR_0"]) == 2
    assert main(["webhooks", "set", "X", "ftp://x.go.id", "--secret-env", "SHORT_SECRET"]) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["webhooks", "set", "X", "https://x.go.id"])  # a secret is required
    assert exit_.value.code == 2
    assert "abc" not in capsys.readouterr().err.replace("abcd", "")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.subscriptions)
                            ).scalar() == 0
    engine.dispose()


def test_webhooks_set_refuses_plain_http_unless_allowed_for_local_testing(notify_db, capsys,
                                                                         monkeypatch):
    monkeypatch.setenv("PUPR_SECRET", SECRET)
    url = "http://pupr.sijunjung.go.id/lapor"
    assert main(["webhooks", "set", "PUPR-13.03", url, "--secret-env", "PUPR_SECRET"]) == 2
    err = capsys.readouterr().err
    assert "https://" in err and "--allow-http" in err
    assert main(["webhooks", "list"]) == 0
    assert "no webhook endpoints" in capsys.readouterr().out

    local = "http://127.0.0.1:8099/agency"
    assert main(["webhooks", "set", "*", local, "--secret-env", "PUPR_SECRET",
                 "--allow-http"]) == 0
    assert endpoint(notify_db, "PUPR-13.03").url == local


def test_webhooks_set_help_explains_allow_http(capsys):
    with pytest.raises(SystemExit):
        main(["webhooks", "set", "--help"])
    assert "--allow-http" in capsys.readouterr().out


def test_serve_answers_probes_and_drains_on_sigterm(amqp_url, sqlite_url):
    port = free_port()
    env = dict(os.environ, NOTIFY_DATABASE_URL=sqlite_url, LAPOR_AMQP_URL=amqp_url,
               NOTIFY_METRICS_PORT=str(port), NOTIFY_SMTP_URL=f"smtp://127.0.0.1:{free_port()}",
               PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "services.notify"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    ready = json.loads(r.read())
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert ready == {"status": "ok", "checks": {"database": True, "broker": True,
                                                    "loops": True}}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            assert json.loads(r.read())["checks"] == {"loops": True}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            assert b"lapor_notify_deliveries_total" in r.read()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert lines and all(line["service"] == "notify" for line in lines)
    assert any(line["msg"] == "notify stopped" for line in lines)
