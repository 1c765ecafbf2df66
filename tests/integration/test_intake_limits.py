"""Rate limits per client on the citizen API: in this process, and in a real Redis shared by
replicas; what a client over its allowance is told; guessing ids or tokens slowed to a crawl;
Redis going away never turning citizens away."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

import pytest

from services.infra.config import ConfigError
from services.intake import ids, limits
from services.intake.app import create_app
from tests.conftest import free_port
from tests.integration.helpers import BlackHole, TcpProxy, dead_amqp_url
from tests.integration.test_intake_api import close, problem, report

pytestmark = pytest.mark.integration

REDIS = os.environ.get("LAPOR_TEST_REDIS", "redis://127.0.0.1:6379/0")
GENEROUS = "1000 per minute"


def make_app(tmp_path, name: str = "intake", **settings):
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / (name + '.db')}",
              "AMQP_URL": dead_amqp_url(), "ROUTING_ADDR": f"127.0.0.1:{free_port()}",
              "ROUTING_TIMEOUT": 0.5, "START_WORKERS": False,
              "RATE_LIMIT_SUBMIT": GENEROUS, "RATE_LIMIT_SUGGEST": GENEROUS,
              "RATE_LIMIT_READ": GENEROUS, "RATE_LIMIT_LOOKUP_FAILURES": GENEROUS, **settings}
    return create_app(config)


@pytest.fixture
def apps():
    made = []
    yield made
    for app in made:
        close(app)


def client(app, address: str = "203.0.113.7"):
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def submit(browser, **headers):
    return browser.post("/api/v1/reports", json=report(), headers=headers)


def assert_rate_limited(response, limit: int) -> dict:
    body = problem(response, 429, "rate_limited")
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= 61  # a per-minute window, rounded up
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 0 <= int(response.headers["RateLimit-Reset"]) <= 61
    assert f"wait {wait} seconds" in body["detail"]
    return body


def test_one_client_cannot_flood_submissions_and_is_told_when_to_come_back(tmp_path, apps):
    apps.append(app := make_app(tmp_path, RATE_LIMIT_SUBMIT="3 per minute"))
    flooder = client(app)
    answers = [submit(flooder) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)

    body = assert_rate_limited(submit(flooder), 3)
    assert "reports" in body["detail"]
    # Another citizen is not affected.
    assert submit(client(app, "198.51.100.20")).status_code == 201


def test_suggestions_and_lookups_have_their_own_allowances(tmp_path, apps):
    apps.append(app := make_app(tmp_path, RATE_LIMIT_SUGGEST="2 per minute",
                                RATE_LIMIT_READ="2 per minute"))
    browser = client(app)
    tracking_id = submit(browser).get_json()["tracking_id"]
    draft = {"title": "Jalan rusak", "region_code": "13.03"}
    assert [browser.post("/api/v1/reports/suggest", json=draft).status_code
            for _ in range(2)] == [503, 503]  # routing is down; still counted
    assert_rate_limited(browser.post("/api/v1/reports/suggest", json=draft), 2)
    assert [browser.get(f"/api/v1/reports/{tracking_id}").status_code
            for _ in range(2)] == [200, 200]
    assert_rate_limited(browser.get(f"/api/v1/reports/{tracking_id}"), 2)
    assert submit(browser).status_code == 201
    # Health and the document are never limited.
    assert all(browser.get("/healthz").status_code == 200 for _ in range(5))


def test_guessing_tracking_ids_or_tokens_slows_to_a_crawl(tmp_path, apps):
    apps.append(app := make_app(tmp_path, RATE_LIMIT_LOOKUP_FAILURES="3 per minute"))
    citizen = client(app, "198.51.100.20")
    answer = submit(citizen).get_json()
    mine = f"/api/v1/reports/{answer['tracking_id']}"
    owner = {"Authorization": f"Bearer {answer['access_token']}"}
    # Looking at one's own report, however often, is not guessing.
    assert all(citizen.get(mine, headers=owner).status_code == 200 for _ in range(6))

    guesser = client(app)
    assert guesser.get(f"/api/v1/reports/{ids.new_tracking_id()}").status_code == 404
    assert guesser.get(mine, headers={"Authorization": "Bearer tebakan"}).status_code == 403
    # A typo caught by the check character is not a guess.
    assert guesser.get(mine[:-1] + ("0" if mine[-1] != "0" else "1")).status_code == 400
    assert guesser.get(f"/api/v1/reports/{ids.new_tracking_id()}").status_code == 404
    body = assert_rate_limited(guesser.get(f"/api/v1/reports/{ids.new_tracking_id()}"), 3)
    assert "wrong access tokens" in body["detail"]
    assert_rate_limited(guesser.get(mine), 3)  # until the window passes, no lookups at all
    assert citizen.get(mine, headers=owner).status_code == 200


def test_replicas_sharing_redis_share_the_limit(tmp_path, apps):
    prefix = f"lapor-test-{uuid.uuid4().hex[:12]}"
    shared = {"REDIS_URL": REDIS, "RATE_LIMIT_KEY_PREFIX": prefix,
              "RATE_LIMIT_SUBMIT": "3 per minute"}
    apps.append(first := make_app(tmp_path, "first", **shared))
    apps.append(second := make_app(tmp_path, "second", **shared))
    assert [submit(client(first)).status_code for _ in range(2)] == [201, 201]
    answer = submit(client(second))
    assert answer.status_code == 201 and answer.headers["RateLimit-Remaining"] == "0"
    assert_rate_limited(submit(client(first)), 3)
    assert_rate_limited(submit(client(second)), 3)
    # A replica of another deployment (another prefix) counts on its own.
    apps.append(other := make_app(tmp_path, "other", **{**shared,
                                                        "RATE_LIMIT_KEY_PREFIX": prefix + "-x"}))
    assert submit(client(other)).status_code == 201


def test_with_redis_down_citizens_are_still_served_and_the_operator_is_warned(
        tmp_path, apps, caplog):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    apps.append(app := make_app(tmp_path, REDIS_URL=dead_redis, RATE_LIMIT_SUBMIT="3 per minute"))
    browser = client(app)
    with caplog.at_level(logging.WARNING):
        answers = [submit(browser).status_code for _ in range(4)]
    # Counting goes on in memory, per replica, until Redis answers again.
    assert answers == [201, 201, 201, 429]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "storage unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert dead_redis not in caplog.text


def test_redis_coming_back_is_counted_in_again(tmp_path, apps, caplog, monkeypatch):
    monkeypatch.setattr(limits, "REDIS_RECHECK_SECONDS", 0.2)
    proxy = TcpProxy(REDIS.split("//", 1)[1].split("/", 1)[0]).start()
    try:
        shared = {"REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
                  "RATE_LIMIT_KEY_PREFIX": f"lapor-test-{uuid.uuid4().hex[:12]}",
                  "RATE_LIMIT_SUBMIT": "3 per minute"}
        apps.append(app := make_app(tmp_path, **shared))
        browser = client(app)
        assert [submit(browser).status_code for _ in range(2)] == [201, 201]
        proxy.stop()
        with caplog.at_level(logging.INFO, logger="services.intake.limits"):
            away = submit(browser)
            # This replica counts on in memory, from nothing: the citizen is served.
            assert away.status_code == 201 and away.headers["RateLimit-Remaining"] == "2"
            proxy.start()
            time.sleep(0.3)
            # Back in Redis, where the first two still stand.
            back = submit(browser)
            assert back.status_code == 201 and back.headers["RateLimit-Remaining"] == "0"
            assert_rate_limited(submit(browser), 3)
        assert "answers again" in caplog.text
    finally:
        proxy.stop()


def test_a_redis_that_never_answers_does_not_hold_citizens_up(tmp_path, apps):
    silent = BlackHole()
    try:
        apps.append(app := make_app(tmp_path, REDIS_URL=f"redis://127.0.0.1:{silent.port}/0",
                                    RATE_LIMIT_SUBMIT="3 per minute"))
        browser = client(app)
        started = time.monotonic()
        answers = [submit(browser).status_code for _ in range(4)]
        assert answers == [201, 201, 201, 429]
        # One wait of the Redis timeout, then memory; not a wait per request.
        assert time.monotonic() - started < 4 * limits.REDIS_TIMEOUT
    finally:
        silent.close()


def test_counting_in_memory_starts_no_thread_per_request(tmp_path, apps):
    apps.append(app := make_app(tmp_path))
    browser = client(app)
    started = []
    threading.settrace(lambda frame, event, arg: started.append(frame) and None)
    try:
        for _ in range(30):
            assert submit(browser).status_code == 201
            time.sleep(0.015)  # longer than the 10 ms after which limits' own timer ends
    finally:
        threading.settrace(None)
    assert started == []


def test_memory_forgets_clients_not_seen_again(tmp_path, apps, monkeypatch):
    monkeypatch.setattr(limits, "PURGE_SECONDS", 0.0)
    apps.append(app := make_app(tmp_path, RATE_LIMIT_SUBMIT="5 per second"))
    counters = app.extensions["lapor_rate_limits"].memory.storage.storage
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        assert submit(client(app, address)).status_code == 201
    assert sum("198.51.100." in key for key in counters) == 3
    time.sleep(2.1)  # a one-second window's counter is kept for two
    assert submit(client(app, "198.51.100.4")).status_code == 201
    assert [key for key in counters if "198.51.100." in key] == [
        key for key in counters if "198.51.100.4" in key] != []


def test_behind_a_trusted_proxy_each_citizen_is_counted_apart(tmp_path, apps):
    apps.append(proxied := make_app(tmp_path, "proxied", TRUSTED_PROXIES=1,
                                    RATE_LIMIT_SUBMIT="2 per minute"))
    through_proxy = client(proxied, "10.0.0.2")
    for citizen in ("198.51.100.1", "198.51.100.2"):
        headers = {"X-Forwarded-For": citizen}
        assert [submit(through_proxy, **headers).status_code for _ in range(2)] == [201, 201]
        assert_rate_limited(submit(through_proxy, **headers), 2)

    # Without INTAKE_TRUSTED_PROXIES the header is anyone's to write: it is ignored.
    apps.append(direct := make_app(tmp_path, "direct", RATE_LIMIT_SUBMIT="2 per minute"))
    spoofer = client(direct)
    assert [submit(spoofer, **{"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(3)] == [201, 201, 429]


def test_ipv6_clients_are_counted_by_their_64_prefix(tmp_path, apps):
    apps.append(app := make_app(tmp_path, RATE_LIMIT_SUBMIT="2 per minute"))
    assert submit(client(app, "2001:db8:1:2::10")).status_code == 201
    assert submit(client(app, "2001:db8:1:2:ffff::99")).status_code == 201
    assert_rate_limited(submit(client(app, "2001:db8:1:2::abc")), 2)
    assert submit(client(app, "2001:db8:1:3::10")).status_code == 201


def test_a_malformed_limit_stops_the_process_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="INTAKE_RATE_LIMIT_SUBMIT"):
        make_app(tmp_path, RATE_LIMIT_SUBMIT="banyak sekali")
