"""notify through the ticket workflow: who hears of what, in which language, and that nobody
hears what is not theirs. The first tests hand events straight to the handler on a real
database (SQLite and PostgreSQL) and read the deliveries it wrote; the last ones run notify
against RabbitMQ, an SMTP server and agency receivers, with events as routing publishes them."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events
from services.notify import signing, store
from services.notify.handler import EventHandler
from tests.integration import test_notify as base
from tests.integration.helpers import wait_for

# test_notify's fixtures: a real SMTP server, agency receivers, notify replicas, the broker.
smtp, agency, start_notify, publish, outcomes = (
    base.smtp, base.agency, base.start_notify, base.publish, base.outcomes)
registered, rows, subscribe = base.registered, base.rows, base.subscribe
NAME, EMAIL, PHONE, SECRET = base.NAME, base.EMAIL, base.PHONE, base.SECRET

pytestmark = pytest.mark.integration

S = common_pb2
AGENCY = S.Agency(code="PUPR-13.03", name="Dinas PUPR Kabupaten Sijunjung", level="regency",
                  region_code="13.03", parent_code="PUPR-13")
PARENT = S.Agency(code="PUPR-13", name="Dinas PUPR Provinsi Sumatera Barat",
                  level="provincial", region_code="13")
TRIAGE = S.Agency(code="ADMIN-NASIONAL", name="Admin Nasional SP4N-LAPOR!", level="triage")
DEADLINE = datetime(2026, 7, 17, 9, 0, tzinfo=UTC)  # Jumat 17 Juli 2026 16.00 WIB
TOKEN = "tok-" + uuid.uuid4().hex  # the report's access token: intake's, never notify's
BODY = "Jalan nasional di depan pasar berlubang besar."
HOSTILE = '<script>alert("lapor")</script>'


def new_tracking_id() -> str:
    return "LPR-" + uuid.uuid4().hex[:8].upper()


# -- events as routing publishes them ---------------------------------------------------------
def changed(tid, action, from_state, to_state, *, version, agency=AGENCY, actor="system",
            reporter_note="", public_note="", deadline=DEADLINE):
    msg = events_pb2.TicketStatusChanged(
        tracking_id=tid, ticket_id="TCK-" + tid[4:], from_state=from_state, to_state=to_state,
        actor_role=actor, deadline_zone="WIB", public_note=public_note, agency=agency,
        ticket_version=version, action=action, reporter_note=reporter_note)
    if deadline is not None:
        msg.deadline.CopyFrom(events.timestamp(deadline))
    return events.new("ticket.status_changed", tid, msg, "routing")


def dispatched(tid, *, version, agency=AGENCY, anonymous=False):
    report = S.ReportContent(
        kind=S.REPORT_KIND_PENGADUAN, title="Jalan berlubang di Muaro", body=BODY,
        region_code="13.03", region_name="Kabupaten Sijunjung", anonymous=anonymous,
        reporter_name="" if anonymous else NAME, channel="web")
    return events.new("ticket.dispatched", tid, events_pb2.TicketDispatched(
        tracking_id=tid, ticket_id="TCK-" + tid[4:], agency=agency,
        deadline=events.timestamp(DEADLINE), deadline_zone="WIB", working_days=5,
        category="infrastruktur-jalan", confidence=0.9, decision="kategori jalan",
        report=report, actor_role="national_admin", ticket_version=version), "routing")


def escalated(tid, kind, *, version, to_agency=PARENT, from_agency=AGENCY,
              stage=S.TICKET_STATE_DISPATCHED):
    return events.new("ticket.escalated", tid, events_pb2.TicketEscalated(
        tracking_id=tid, ticket_id="TCK-" + tid[4:], stage=stage, level=1,
        from_agency=from_agency, to_agency=to_agency, deadline=events.timestamp(DEADLINE),
        reason="batas waktu respond terlewati", ticket_version=version, kind=kind,
        deadline_zone="WIB"), "routing")


def warning(tid, clock, *, agency=AGENCY, stage=S.TICKET_STATE_FOLLOWED_UP, version=9):
    return events.new("ticket.sla_warning", tid, events_pb2.TicketSlaWarning(
        tracking_id=tid, ticket_id="TCK-" + tid[4:], stage=stage,
        deadline=events.timestamp(DEADLINE), agency=agency, ticket_version=version,
        clock=clock, deadline_zone="WIB"), "routing")


def message(tid, direction, text, *, agency=AGENCY, version=6):
    return events.new("ticket.message", tid, events_pb2.TicketMessage(
        tracking_id=tid, ticket_id="TCK-" + tid[4:], agency=agency, direction=direction,
        text=text, ticket_version=version), "routing")


# -- the handler on a real database -----------------------------------------------------------
@pytest.fixture
def handler(database_url):
    engine = db.make_engine(database_url)
    db.migrate(engine, "notify", store.MIGRATIONS)
    yield EventHandler(engine)
    engine.dispose()


def deliveries(handler, event):
    with handler.engine.connect() as conn:
        found = conn.execute(sa.select(store.deliveries).where(
            store.deliveries.c.trigger_event_id == event.event_id)
            .order_by(store.deliveries.c.id)).all()
    return [(r.channel, r.audience, r.target, json.loads(r.payload)) for r in found]


def templates_of(handler, event):
    return [(audience, payload.get("template") or payload["event"])
            for _, audience, _, payload in deliveries(handler, event)]


SUB, HOLD, DISP, FUP, REPL, CLOSED, ARCH = (
    S.TICKET_STATE_SUBMITTED, S.TICKET_STATE_ON_HOLD, S.TICKET_STATE_DISPATCHED,
    S.TICKET_STATE_FOLLOWED_UP, S.TICKET_STATE_REPORTER_REPLIED, S.TICKET_STATE_CLOSED,
    S.TICKET_STATE_ARCHIVED)
WEBHOOK = "ticket.status_changed"


@pytest.mark.parametrize("action, source, target, holder, actor, told", [
    ("", S.TICKET_STATE_UNSPECIFIED, SUB, TRIAGE, "system", [("reporter", "received")]),
    ("hold", SUB, HOLD, TRIAGE, "national_admin", [("reporter", "held")]),
    ("add_info", HOLD, SUB, TRIAGE, "citizen", []),
    ("archive", HOLD, ARCH, TRIAGE, "national_admin", [("reporter", "archived")]),
    # Verification comes with ticket.dispatched, which tells both.
    ("verify", SUB, DISP, AGENCY, "national_admin", []),
    ("accept", DISP, DISP, AGENCY, "agency_officer", [("reporter", "accepted")]),
    ("forward", DISP, DISP, AGENCY, "agency_admin", []),
    ("not_our_authority", DISP, DISP, PARENT, "agency_officer", []),
    ("not_our_authority", DISP, SUB, TRIAGE, "agency_officer", [("reporter", "status")]),
    ("follow_up", DISP, FUP, AGENCY, "agency_officer", [("reporter", "followed_up")]),
    ("reply", FUP, REPL, AGENCY, "citizen", [("agency", WEBHOOK)]),
    ("close", FUP, CLOSED, AGENCY, "agency_officer", [("reporter", "closed")]),
    ("close", FUP, CLOSED, AGENCY, "national_admin", [("reporter", "closed"),
                                                     ("agency", WEBHOOK)]),
    ("confirm", FUP, CLOSED, AGENCY, "citizen", [("reporter", "closed"), ("agency", WEBHOOK)]),
    ("auto_close", FUP, CLOSED, AGENCY, "system", [("reporter", "closed"),
                                                   ("agency", WEBHOOK)]),
    ("appeal", CLOSED, DISP, PARENT, "citizen", []),
    ("appeal", CLOSED, SUB, TRIAGE, "citizen", []),
    # The escalation has its own event (ticket.escalated), for the reporter and the agency.
    ("escalate", REPL, REPL, PARENT, "system", []),
    ("escalate", DISP, SUB, TRIAGE, "system", []),
])
def test_each_action_tells_whom_it_concerns_once(handler, action, source, target, holder,
                                                 actor, told):
    tid = new_tracking_id()
    event = changed(tid, action, source, target, version=4, agency=holder, actor=actor,
                    reporter_note="Mohon lampirkan foto lokasi.", public_note="Catatan publik")
    handler(event)
    assert templates_of(handler, event) == told
    for channel, audience, _, payload in deliveries(handler, event):
        if audience == "agency":
            assert channel == "webhook" and payload["action"] == action
            assert "Mohon lampirkan" not in json.dumps(payload)  # the reporter's note


def test_the_reporters_text_goes_to_the_field_its_email_shows(handler):
    tid = new_tracking_id()
    hold = changed(tid, "hold", SUB, HOLD, version=2, agency=TRIAGE, deadline=None,
                   reporter_note="Di mana tepatnya lokasinya?", public_note="Ditunda")
    follow_up = changed(tid, "follow_up", DISP, FUP, version=5, actor="agency_officer",
                        reporter_note="Jalan sudah ditambal.", public_note="Ditindaklanjuti")
    archive = changed(tid, "archive", HOLD, ARCH, version=3, agency=TRIAGE, deadline=None,
                      reporter_note="Duplikat laporan lain", public_note="Diarsipkan")
    for event in (hold, follow_up, archive):
        handler(event)
    [(_, _, _, held)] = deliveries(handler, hold)
    [(_, _, _, answered)] = deliveries(handler, follow_up)
    [(_, _, _, archived)] = deliveries(handler, archive)
    assert held["question"] == "Di mana tepatnya lokasinya?" and held["deadline"] is None
    assert answered["response"] == "Jalan sudah ditambal."
    assert answered["deadline"] == DEADLINE.isoformat()
    assert archived["reason"] == "Duplikat laporan lain"


@pytest.mark.parametrize("order", ["dispatched first", "escalated first"])
def test_an_escalation_to_the_parent_emails_the_reporter_once(handler, order):
    tid = new_tracking_id()
    pair = [dispatched(tid, version=7, agency=PARENT), escalated(tid, "parent", version=7)]
    if order == "escalated first":
        pair.reverse()
    for event in pair:
        handler(event)
    emails = [t for event in pair for t in templates_of(handler, event) if t[0] == "reporter"]
    assert len(emails) == 1
    # Both events reach the parent agency: the ticket with its content, and why it came.
    hooks = [t for event in pair for t in templates_of(handler, event) if t[0] == "agency"]
    assert sorted(hooks) == [("agency", "ticket.dispatched"), ("agency", "ticket.escalated")]
    # A later change (another version) is news again.
    later = dispatched(tid, version=9, agency=AGENCY)
    handler(later)
    assert ("reporter", "dispatched") in templates_of(handler, later)


def test_agency_webhooks_for_messages_warnings_and_escalations(handler):
    tid = new_tracking_id()
    to_agency = message(tid, "to_agency", "Lubangnya makin besar.")
    in_triage = message(tid, "to_agency", "Lokasinya di depan pasar.", agency=TRIAGE)
    to_reporter = message(tid, "to_reporter", "Mohon kirim foto terbaru.")
    respond = warning(tid, "respond", stage=DISP)
    verify = warning(tid, "verify", agency=TRIAGE, stage=SUB)
    auto_close = warning(tid, "auto_close")
    parent = escalated(tid, "parent", version=8)
    for event in (to_agency, in_triage, to_reporter, respond, verify, auto_close, parent):
        handler(event)
    assert templates_of(handler, to_agency) == [("agency", "ticket.message")]
    assert templates_of(handler, in_triage) == []  # the national admin reads it on the ticket
    assert templates_of(handler, to_reporter) == [("reporter", "message")]
    assert templates_of(handler, respond) == [("agency", "ticket.sla_warning")]
    assert templates_of(handler, verify) == []
    assert templates_of(handler, auto_close) == [("reporter", "auto_close_warning"),
                                                 ("agency", "ticket.sla_warning")]
    assert templates_of(handler, parent) == [("reporter", "escalated"),
                                             ("agency", "ticket.escalated")]
    [(_, _, target, body)] = deliveries(handler, to_agency)
    assert target == AGENCY.code and body["text"] == "Lubangnya makin besar."
    assert deliveries(handler, auto_close)[1][3]["clock"] == "auto_close"
    assert deliveries(handler, parent)[1][2] == PARENT.code


@pytest.mark.parametrize("kind, to_agency, expected", [
    ("national", TRIAGE, [("reporter", "email", "reporter"),
                          ("national_admin", "email", "national_admin"),
                          ("national_admin", "webhook", "ADMIN-NASIONAL")]),
    ("oversight", AGENCY, [("reporter", "email", "reporter"),
                           ("agency", "webhook", AGENCY.code),
                           ("national_admin", "email", "national_admin"),
                           ("national_admin", "webhook", "ADMIN-NASIONAL")]),
    ("verification", TRIAGE, [("national_admin", "email", "national_admin"),
                              ("national_admin", "webhook", "ADMIN-NASIONAL")]),
    ("parent", PARENT, [("reporter", "email", "reporter"), ("agency", "webhook", PARENT.code)]),
])
def test_escalations_to_national_level_reach_the_national_admin(handler, kind, to_agency,
                                                                expected):
    tid = new_tracking_id()
    handler(registered(tid))
    event = escalated(tid, kind, version=11, to_agency=to_agency)
    handler(event)
    found = deliveries(handler, event)
    assert [(audience, channel, target) for channel, audience, target, _ in found] == expected
    for channel, audience, _, payload in found:
        if audience == "national_admin":
            raw = json.dumps(payload, ensure_ascii=False)
            for private in (NAME, EMAIL, PHONE, BODY):
                assert private not in raw
            if channel == "email":
                assert (payload["template"], payload["kind"]) == ("national_escalated", kind)


def test_a_message_in_no_known_direction_is_parked_not_guessed(handler):
    with pytest.raises(events.BadEvent, match="direction"):
        handler(message(new_tracking_id(), "sideways", "?"))


# -- through the broker, to an SMTP server and agency receivers -------------------------------
def emails_to(smtp, address):
    return smtp.to(address)


def plain(mail):
    return mail.get_body(("plain",)).get_content()


def html(mail):
    return mail.get_body(("html",)).get_content()


def hooks_for(receiver, tid, path=None):
    return [(r["headers"]["X-Lapor-Event"], json.loads(r["body"]))
            for r in receiver.delivered(path) if json.loads(r["body"])["tracking_id"] == tid]


def test_an_anonymous_reporter_hears_every_step_in_english_and_the_agency_never_learns_who(
        start_notify, publish, smtp, agency, outcomes):
    service = start_notify()
    subscribe(service, AGENCY.code, agency.url + "/pupr")
    subscribe(service, TRIAGE.code, agency.url + "/admin", secret="admin-secret-0123456789")
    tid = new_tracking_id()
    publish(registered(tid, anonymous=True, language="en"))
    steps = [
        changed(tid, "", S.TICKET_STATE_UNSPECIFIED, SUB, version=1, agency=TRIAGE),
        changed(tid, "hold", SUB, HOLD, version=2, agency=TRIAGE, actor="national_admin",
                deadline=None, reporter_note="Where exactly is it?"),
        message(tid, "to_agency", "In front of the market.", agency=TRIAGE, version=3),
        changed(tid, "add_info", HOLD, SUB, version=3, agency=TRIAGE, actor="citizen"),
        changed(tid, "verify", SUB, DISP, version=4, actor="national_admin"),
        dispatched(tid, version=4, anonymous=True),
        changed(tid, "accept", DISP, DISP, version=5, actor="agency_officer"),
        message(tid, "to_reporter", "Please send a recent photo.", version=6),
        changed(tid, "follow_up", DISP, FUP, version=7, actor="agency_officer",
                reporter_note="Patched on 20 July. " + HOSTILE),
        changed(tid, "reply", FUP, REPL, version=8, actor="citizen"),
        message(tid, "to_agency", "It is broken again.", version=8),
        changed(tid, "follow_up", REPL, FUP, version=9, actor="agency_officer",
                reporter_note="Repaired properly now."),
        warning(tid, "auto_close", version=9),
        changed(tid, "auto_close", FUP, CLOSED, version=10, deadline=None,
                public_note="Closed automatically"),
    ]
    for event in steps:
        publish(event)

    expected_subjects = Counter({
        f"[LAPOR!] Report {tid} received, awaiting verification": 1,
        f"[LAPOR!] Report {tid} on hold: more information needed": 1,
        f"[LAPOR!] Report {tid} forwarded to {AGENCY.name}": 1,
        f"[LAPOR!] Report {tid} accepted by {AGENCY.name}": 1,
        f"[LAPOR!] Message from {AGENCY.name} about report {tid}": 1,
        f"[LAPOR!] Report {tid} followed up by {AGENCY.name}": 2,
        f"[LAPOR!] Report {tid} will close automatically": 1,
        f"[LAPOR!] Report {tid} closed": 1,
    })
    mails = wait_for(lambda: (lambda m: m if len(m) >= 9 else None)(emails_to(smtp, EMAIL)),
                     timeout=20, what="nine emails")
    expected_hooks = Counter({"ticket.dispatched": 1, "ticket.message": 1,
                              "ticket.status_changed": 2, "ticket.sla_warning": 1})
    wait_for(lambda: len(hooks_for(agency, tid, "/pupr")) >= 5, timeout=20, what="five hooks")
    # Everything that was due has been tried once: nothing more will come.
    wait_for(lambda: not rows(service, store.deliveries, tracking_id=tid, status="pending"),
             what="every delivery to end")
    mails = emails_to(smtp, EMAIL)
    assert Counter(m["Subject"] for m in mails) == expected_subjects
    hooks = hooks_for(agency, tid, "/pupr")
    assert Counter(kind for kind, _ in hooks) == expected_hooks
    assert hooks_for(agency, tid, "/admin") == []  # the triage queue is read, not pushed

    by_subject = {m["Subject"]: m for m in mails}
    held = by_subject[f"[LAPOR!] Report {tid} on hold: more information needed"]
    assert "Where exactly is it?" in plain(held) and "Where exactly is it?" in html(held)
    relayed = by_subject[f"[LAPOR!] Message from {AGENCY.name} about report {tid}"]
    assert "Please send a recent photo." in plain(relayed)
    answered = [m for m in mails if "followed up" in m["Subject"]]
    first = next(m for m in answered if "Patched on 20 July" in plain(m))
    assert HOSTILE in plain(first)  # plain text shows it as it was written...
    assert "<script" not in html(first)  # ...HTML never runs it
    assert "&lt;script&gt;" in html(first)
    for mail in mails:
        assert mail.get_content_type() == "multipart/alternative"
        assert "\n" not in mail["Subject"]
        assert TOKEN not in mail.as_string() and "tok-" not in mail.as_string()

    for kind, body in hooks:
        raw = json.dumps(body, ensure_ascii=False)
        for private in (NAME, "Siti", "Rahayu", EMAIL, PHONE, "6281234567890"):
            assert private not in raw, kind
    replies = {body["text"] for kind, body in hooks if kind == "ticket.message"}
    assert replies == {"It is broken again."}
    actions = sorted(body["action"] for kind, body in hooks if kind == "ticket.status_changed")
    assert actions == ["auto_close", "reply"]
    for request in agency.delivered("/pupr"):
        assert signing.verify(SECRET, request["headers"], request["body"], tolerance_s=60)

    delivered = [o for kind, o in outcomes() if o.tracking_id == tid]
    assert all(o.outcome == "delivered" for o in delivered)


def test_an_escalation_to_national_level_reaches_the_national_admin_without_contacts(
        start_notify, publish, smtp, agency):
    service = start_notify(national_admin_emails=("admin@lapor.go.id", "piket@lapor.go.id"))
    subscribe(service, TRIAGE.code, agency.url + "/admin", secret="admin-secret-0123456789")
    # The default endpoint serves agencies; the national admin's webhooks never go there.
    subscribe(service, store.DEFAULT_AGENCY, agency.url + "/default",
              secret="default-secret-0123456")
    tid = new_tracking_id()
    publish(registered(tid))  # not anonymous: the agency may know the name, the admin email
    # does not need it
    publish(escalated(tid, "national", version=12, to_agency=TRIAGE,
                      stage=S.TICKET_STATE_SUBMITTED))

    [mail] = wait_for(lambda: emails_to(smtp, "admin@lapor.go.id"), what="the admin email")
    assert emails_to(smtp, "piket@lapor.go.id") == [mail]  # one message to both
    assert mail["Subject"] == f"[LAPOR!] Eskalasi ke admin nasional: laporan {tid}"
    text = plain(mail)
    assert "TCK-" + tid[4:] in text and AGENCY.name in text and TRIAGE.name in text
    assert "Jumat, 17 Juli 2026 pukul 16.00 WIB" in text
    for private in (NAME, EMAIL, PHONE, "6281234567890"):
        assert private not in mail.as_string()

    [(kind, body)] = wait_for(lambda: hooks_for(agency, tid, "/admin"), what="the admin hook")
    assert (kind, body["kind"], body["to_agency"]["code"]) == (
        "ticket.escalated", "national", "ADMIN-NASIONAL")
    [request] = agency.delivered("/admin")
    assert signing.verify("admin-secret-0123456789", request["headers"], request["body"], 60)
    reporter = wait_for(lambda: emails_to(smtp, EMAIL), what="the reporter's email")[0]
    assert "dikembalikan ke admin nasional" in reporter["Subject"]
    wait_for(lambda: not rows(service, store.deliveries, tracking_id=tid, status="pending"),
             what="every delivery to end")
    assert agency.delivered("/default") == []


def test_nobody_to_tell_is_announced_as_notification_skipped(start_notify, publish, smtp,
                                                             outcomes):
    service = start_notify()  # no endpoint at all, no national admin address
    tid = new_tracking_id()
    publish(registered(tid, email_address=""))  # reachable by phone only
    publish(dispatched(tid, version=4))
    publish(escalated(tid, "national", version=12, to_agency=TRIAGE))

    def skipped():
        return sorted((o.channel, o.audience, o.reason, o.trigger_type)
                      for kind, o in outcomes() if kind == "notification.skipped"
                      and o.tracking_id == tid)

    expected = sorted([
        ("webhook", "agency", "no endpoint", "ticket.dispatched"),
        # Reachable by phone only: by SMS, and no SMS gateway is configured.
        ("sms", "reporter", "no gateway", "ticket.dispatched"),
        ("sms", "reporter", "no gateway", "ticket.escalated"),
        ("email", "national_admin", "no national admin address", "ticket.escalated"),
        ("webhook", "national_admin", "no endpoint", "ticket.escalated"),
    ])
    wait_for(lambda: skipped() == expected, timeout=15, what="five notification.skipped")
    assert all(o.outcome == "skipped" for kind, o in outcomes() if o.tracking_id == tid)
    assert smtp.messages == []
    assert {r["status"] for r in rows(service, store.deliveries, tracking_id=tid)} == {
        "skipped"}
