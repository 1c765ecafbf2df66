"""A citizen's report travels the whole way, through real processes and a real broker."""

from __future__ import annotations

import json
import time

import pytest

from services.notify.signing import verify
from tests.e2e.harness import SECRET, Stack
from tests.integration.helpers import ROAD_TEXTS, TcpProxy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_report_reaches_agency_and_reporter_and_status_changes(stack):
    for service in ("routing", "notify", "intake"):
        stack.start(service)

    answer = stack.submit()
    tracking_id, token = answer["tracking_id"], answer["access_token"]
    assert answer["status"] == "SUBMITTED"

    # The agency's system gets one signed webhook with what it needs to act.
    wait_for(lambda: stack.agency.for_tracking(tracking_id), 30, what="agency webhook")
    [hook] = stack.agency.for_tracking(tracking_id)
    assert verify(SECRET, hook["headers"], hook["body"]), "signature must verify"
    payload = json.loads(hook["body"])
    assert payload["agency"]["code"] == "PUPR-13.03"
    assert payload["report"]["title"] == "Jalan rusak berlubang di Nagari Muaro"
    assert payload["report"]["reporter_name"] == "Rina Marlina"
    assert b"rina@contoh.id" not in hook["body"] and b"81234567890" not in hook["body"]

    # The reporter gets an email in Bahasa Indonesia naming the tracking id and the agency.
    [mail] = wait_for(lambda: stack.emails_to("rina@contoh.id"), 30, what="reporter email")
    text = mail.get_body(("plain",)).get_content()
    assert tracking_id in mail["Subject"] + text
    assert "Dinas Pekerjaan Umum dan Penataan Ruang Kabupaten Sijunjung" in text
    assert token not in text, "the access token never travels by email"

    # The citizen sees the new status, the agency and a deadline at 16:00 WIB.
    view = wait_for(lambda: (v := stack.report(tracking_id))["status"] == "DISPATCHED" and v,
                    30, what="status DISPATCHED")
    assert view["agency"]["code"] == "PUPR-13.03"
    assert view["deadline_zone"] == "WIB" and view["deadline"].endswith("T09:00:00Z")
    assert "Rina" not in json.dumps(view), "the public view never names the reporter"
    owner = stack.report(tracking_id, token)
    # The reporter's contacts went to notify only; the owner's view does not repeat them.
    assert owner["reporter"] == {"language": "id"}
    assert owner["title"] == "Jalan rusak berlubang di Nagari Muaro"
    assert [e["status"] for e in owner["timeline"]][:2] == ["SUBMITTED", "DISPATCHED"]
    # notify's outcome of the email reaches the reporter's own timeline; that of the agency's
    # webhook does not, nor does anything of notify's reach the public view.
    notices = wait_for(lambda: [e["note"] for e in stack.report(tracking_id, token)["timeline"]
                                if e["status"] == "NOTIFICATION"], 15,
                       what="the email's outcome on the reporter's timeline")
    assert notices == ["Pemberitahuan terkirim lewat email"]
    assert "NOTIFICATION" not in [e["status"] for e in stack.report(tracking_id)["timeline"]]


def test_anonymous_reporter_is_never_named_to_the_agency(stack):
    for service in ("routing", "notify", "intake"):
        stack.start(service)
    answer = stack.submit(anonymous=True)
    hooks = wait_for(lambda: stack.agency.for_tracking(answer["tracking_id"]), 30)
    raw = hooks[0]["body"]
    for secret_part in (b"Rina", b"Marlina", b"rina@contoh.id", b"81234567890"):
        assert secret_part not in raw
    # ...yet the platform still reaches them.
    wait_for(lambda: stack.emails_to("rina@contoh.id"), 30, what="email to anonymous reporter")
    assert "Rina" not in stack.log("routing") + stack.log("notify") + stack.log("intake")


def test_report_accepted_while_broker_down_is_delivered_when_it_returns(amqp_url, tmp_path):
    proxy = TcpProxy().start()
    stack = Stack(amqp_url, tmp_path, intake_amqp_url=proxy.url(amqp_url))
    try:
        stack.setup()
        for service in ("routing", "notify", "intake"):
            stack.start(service)
        proxy.stop()  # intake's broker is gone: connections cut, new ones refused

        answer = stack.submit()
        tracking_id = answer["tracking_id"]
        time.sleep(2)
        assert stack.report(tracking_id)["status"] == "SUBMITTED"
        assert not stack.agency.for_tracking(tracking_id)

        proxy.start()  # the broker is back
        wait_for(lambda: stack.agency.for_tracking(tracking_id), 60, what="webhook after outage")
        wait_for(lambda: stack.report(tracking_id)["status"] == "DISPATCHED", 60,
                 what="status after outage")
        assert len(stack.agency.for_tracking(tracking_id)) == 1
    finally:
        stack.close()
        proxy.stop()


def test_sigterm_drains_every_service_without_losing_or_duplicating(stack):
    for service in ("routing", "notify", "intake"):
        stack.start(service)
    # Twelve different road reports (near-identical ones would be linked as duplicates).
    reports = [{"title": title, "body": body} for title, body in ROAD_TEXTS]
    submitted = [stack.submit(**report) for report in reports[:6]]
    # Stop routing while it is working through them, then intake right after accepting.
    assert stack.stop("routing") == 0
    submitted += [stack.submit(**report) for report in reports[6:12]]
    assert stack.stop("intake") == 0
    assert "intake stopped" in stack.log("intake")
    stack.start("routing")
    # Stop notify mid-delivery, then bring it back.
    wait_for(lambda: len(stack.agency.requests) >= 3, 30, what="first webhooks")
    assert stack.stop("notify") == 0
    stack.start("notify")
    stack.start("intake")

    ids = [s["tracking_id"] for s in submitted]
    wait_for(lambda: all(stack.agency.for_tracking(t) for t in ids), 60,
             what="every report at the agency")
    wait_for(lambda: len(stack.emails_to("rina@contoh.id")) >= len(ids), 60,
             what="every reporter email")
    time.sleep(1.5)  # room for a duplicate to show up, if the system made one
    for tracking_id in ids:
        assert len(stack.agency.for_tracking(tracking_id)) == 1, tracking_id
    subjects = [m["Subject"] for m in stack.emails_to("rina@contoh.id")]
    for tracking_id in ids:
        assert sum(tracking_id in s for s in subjects) == 1, tracking_id
    wait_for(lambda: all(stack.report(t)["status"] == "DISPATCHED" for t in ids), 30,
             what="every status DISPATCHED")
