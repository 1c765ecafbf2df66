"""A report's deadline passes, with real processes: routing's SLA job warns the agency one
working day before and hands the ticket to the parent agency when the deadline passes; notify
tells the agencies (signed webhooks) and the reporter (email). Time is moved with routing's
clock file (ROUTING_CLOCK_FILE), not waited for."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta

import pytest

from services.notify.signing import verify
from services.routing.workdays import WIB, WorkCalendar
from tests.e2e.harness import SECRET
from tests.integration.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PUPR, PEMDA = "PUPR-13.03", "PEMDA-13.03"
PEMDA_NAME = "Pemerintah Kabupaten Sijunjung"


def set_clock(stack, value: str) -> None:
    """Replaces routing's clock file in one step, as the operations guide says to."""
    path = stack.workdir / "clock"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value)
    os.replace(tmp, path)


def hooks(stack, tracking_id: str, event: str) -> list[dict]:
    found = []
    for request in stack.agency.for_tracking(tracking_id):
        assert verify(SECRET, request["headers"], request["body"]), "signature must verify"
        payload = json.loads(request["body"])
        if payload["event"] == event:
            found.append(payload)
    return found


def mail_text(message) -> str:
    parts = [message["Subject"] or ""]
    for kind in ("plain", "html"):
        body = message.get_body((kind,))
        if body is not None:
            parts.append(body.get_content())
    return "\n".join(parts)


def test_missed_deadline_warns_the_agency_then_escalates_to_the_parent(stack):
    set_clock(stack, "+0h")  # the real time, until the test moves it
    for service in ("routing", "notify", "intake"):
        stack.start(service)

    tracking_id = stack.submit()["tracking_id"]
    wait_for(lambda: hooks(stack, tracking_id, "ticket.dispatched"), 30,
             what="the ticket at the agency")
    view = wait_for(lambda: (v := stack.report(tracking_id))["status"] == "DISPATCHED" and v,
                    30, what="status DISPATCHED")
    assert view["agency"]["code"] == PUPR
    deadline = datetime.fromisoformat(view["deadline"].replace("Z", "+00:00"))
    # One working day before the deadline, at the same time of day (Friday for a Monday).
    warning_at = WorkCalendar().working_days_before(deadline, 1, WIB)
    assert warning_at.hour == 16 and deadline - warning_at >= timedelta(days=1)

    set_clock(stack, (warning_at - timedelta(minutes=5)).isoformat())
    time.sleep(2)  # a few passes of the SLA job: too early to warn
    assert hooks(stack, tracking_id, "ticket.sla_warning") == []
    set_clock(stack, (warning_at + timedelta(minutes=1)).isoformat())
    [warning] = wait_for(lambda: hooks(stack, tracking_id, "ticket.sla_warning"), 30,
                         what="the SLA warning webhook")
    assert warning["agency"]["code"] == PUPR
    assert datetime.fromisoformat(warning["deadline"]) == deadline

    mails_before = len(stack.emails_to("rina@contoh.id"))
    set_clock(stack, (deadline + timedelta(minutes=1)).isoformat())
    # The parent agency gets the ticket with the report, and is told why.
    [handed] = wait_for(lambda: [h for h in hooks(stack, tracking_id, "ticket.dispatched")
                                 if h["agency"]["code"] == PEMDA], 30,
                        what="the ticket at the parent agency")
    assert handed["report"]["title"] == "Jalan rusak berlubang di Nagari Muaro"
    [escalated] = wait_for(lambda: hooks(stack, tracking_id, "ticket.escalated"), 30,
                           what="the escalation webhook")
    assert escalated["to_agency"]["code"] == PEMDA
    assert escalated["from_agency"]["code"] == PUPR

    # The reporter hears that the report went up to the parent agency.
    wait_for(lambda: any(PEMDA_NAME in mail_text(m)
                         for m in stack.emails_to("rina@contoh.id")[mails_before:]), 30,
             what="an email to the reporter naming the parent agency")
    view = wait_for(lambda: (v := stack.report(tracking_id))["agency"]["code"] == PEMDA and v,
                    30, what="the public view showing the parent agency")
    assert view["status"] == "DISPATCHED"
    assert len(hooks(stack, tracking_id, "ticket.sla_warning")) == 1, "warned once"
    assert len(hooks(stack, tracking_id, "ticket.escalated")) == 1, "escalated once"
