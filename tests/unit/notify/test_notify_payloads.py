"""Agency webhook bodies come from an allow-list: the name only for a reporter who is not
anonymous, never an email address or phone number, whatever the inputs carry."""

import json
from datetime import UTC, datetime

from lapor.v1 import common_pb2, events_pb2
from services.infra import events
from services.notify import payloads
from services.notify.store import Contact

DELIVERY_ID = "6f1c1d1e-8a43-4e1b-9f57-3f2e51a0c0de"
NAME = "Siti Rahayu"
EMAIL = "siti.rahayu@example.id"
PHONE = "+6281234567890"


def dispatched(anonymous=False, reporter_name=NAME, location=True):
    report = common_pb2.ReportContent(
        kind=common_pb2.REPORT_KIND_PENGADUAN, title="Jalan berlubang di Muaro",
        body="Jalan nasional di depan pasar berlubang besar.", region_code="13.03",
        region_name="Kabupaten Sijunjung", category="infrastruktur-jalan",
        anonymous=anonymous, confidential=False, reporter_name=reporter_name, channel="web",
        incident_date="2026-07-01", address="Jl. Lintas Sumatera, Muaro",
        target_agency="PUPR-13.03",
        submitted_at=events.timestamp(datetime(2026, 7, 8, 2, 30, tzinfo=UTC)))
    if location:
        report.location.CopyFrom(common_pb2.GeoPoint(latitude=-0.6612, longitude=100.9421))
    return events_pb2.TicketDispatched(
        tracking_id="LPR-7K3QX9M2", ticket_id="TCK-1", deadline_zone="WIB", working_days=5,
        agency=common_pb2.Agency(code="PUPR-13.03", name="Dinas PUPR Kabupaten Sijunjung",
                                 level="regency", region_code="13.03", parent_code="PUPR-13"),
        deadline=events.timestamp(datetime(2026, 7, 17, 9, 0, tzinfo=UTC)),
        category="infrastruktur-jalan", confidence=0.9, decision="kategori jalan, wilayah 13.03",
        report=report, actor_role="system")


def contact(anonymous):
    return Contact("LPR-7K3QX9M2", NAME, EMAIL, PHONE, "id", anonymous)


def test_body_is_exactly_the_allow_list():
    body = payloads.dispatched_webhook("ticket.dispatched", dispatched(), DELIVERY_ID)
    assert set(body) == {"event", "delivery_id", "tracking_id", "ticket_id", "agency",
                         "category", "confidence", "decision", "deadline", "deadline_zone",
                         "working_days", "report"}
    assert set(body["report"]) == {"kind", "title", "body", "region_code", "region_name",
                                   "incident_date", "location", "address", "submitted_at",
                                   "anonymous", "confidential", "reporter_name"}
    assert body["agency"] == {"code": "PUPR-13.03", "name": "Dinas PUPR Kabupaten Sijunjung"}
    assert body["deadline"] == "2026-07-17T16:00:00+07:00"
    assert body["report"]["submitted_at"] == "2026-07-08T09:30:00+07:00"
    assert body["report"]["kind"] == "PENGADUAN"
    assert body["report"]["location"] == {"latitude": -0.6612, "longitude": 100.9421}
    assert body["report"]["reporter_name"] == NAME
    assert body["confidence"] == 0.9


def test_no_location_key_when_the_reporter_gave_none():
    body = payloads.dispatched_webhook("ticket.dispatched", dispatched(location=False),
                                       DELIVERY_ID)
    assert "location" not in body["report"]


def test_anonymous_report_carries_no_name_even_if_the_event_does():
    body = payloads.dispatched_webhook("ticket.dispatched", dispatched(anonymous=True),
                                       DELIVERY_ID, contact(anonymous=True))
    raw = payloads.encode(body)
    assert "reporter_name" not in body["report"]
    assert body["report"]["anonymous"] is True
    assert "Siti" not in raw and "Rahayu" not in raw


def test_anonymous_registration_withholds_a_name_the_event_should_not_have_carried():
    # Defence in depth: intake said anonymous when it registered the reporter, but the
    # dispatched event claims otherwise; the agency still gets no name.
    body = payloads.dispatched_webhook("ticket.dispatched", dispatched(anonymous=False),
                                       DELIVERY_ID, contact(anonymous=True))
    assert "reporter_name" not in body["report"]
    assert body["report"]["anonymous"] is True
    assert NAME not in payloads.encode(body)


def test_never_email_or_phone_even_when_notify_holds_them():
    body = payloads.dispatched_webhook("ticket.dispatched", dispatched(), DELIVERY_ID,
                                       contact(anonymous=False))
    raw = payloads.encode(body)
    assert EMAIL not in raw and PHONE not in raw
    assert "email" not in raw and "phone" not in raw


def test_fields_outside_the_allow_list_do_not_leak():
    msg = dispatched()
    raw = payloads.encode(payloads.dispatched_webhook("ticket.dispatched", msg, DELIVERY_ID))
    assert "target_agency" not in raw and msg.actor_role not in json.loads(raw).values()
    assert '"channel"' not in raw


def test_status_change_webhook_names_states_plainly():
    msg = events_pb2.TicketStatusChanged(
        tracking_id="LPR-7K3QX9M2", ticket_id="TCK-1",
        from_state=common_pb2.TICKET_STATE_FOLLOWED_UP,
        to_state=common_pb2.TICKET_STATE_REPORTER_REPLIED, actor_role="reporter",
        deadline_zone="WITA", public_note="Pelapor menanggapi.",
        deadline=events.timestamp(datetime(2026, 7, 17, 9, 0, tzinfo=UTC)),
        agency=common_pb2.Agency(code="PUPR-73.71", name="Dinas PUPR Kota Makassar"))
    body = payloads.status_changed_webhook("ticket.status_changed", msg, DELIVERY_ID)
    assert body["from_state"] == "FOLLOWED_UP" and body["to_state"] == "REPORTER_REPLIED"
    assert body["deadline"] == "2026-07-17T17:00:00+08:00"


def test_email_fields_hold_no_address():
    fields = payloads.email_fields("dispatched", "LPR-7K3QX9M2", agency_name="Dinas PUPR",
                                   deadline=datetime(2026, 7, 17, 9, tzinfo=UTC),
                                   deadline_zone="WIB")
    assert set(fields) == {"template", "tracking_id", "agency_name", "deadline",
                           "deadline_zone", "ticket_version"}
    assert fields["deadline"] == "2026-07-17T09:00:00+00:00"


AGENCY = common_pb2.Agency(code="PUPR-13.03", name="Dinas PUPR Kabupaten Sijunjung",
                           level="regency", region_code="13.03", parent_code="PUPR-13")
PARENT = common_pb2.Agency(code="PUPR-13", name="Dinas PUPR Provinsi Sumatera Barat",
                           level="provincial", region_code="13")


def test_status_change_webhook_says_which_action_and_keeps_the_reporters_note_out():
    msg = events_pb2.TicketStatusChanged(
        tracking_id="LPR-7K3QX9M2", ticket_id="TCK-1", agency=AGENCY,
        from_state=common_pb2.TICKET_STATE_FOLLOWED_UP, to_state=common_pb2.TICKET_STATE_CLOSED,
        actor_role="national_admin", action="close", public_note="Selesai",
        reporter_note="Catatan khusus untuk pelapor", confidential=True, ticket_version=7)
    body = payloads.status_changed_webhook("ticket.status_changed", msg, DELIVERY_ID)
    assert set(body) == {"event", "delivery_id", "tracking_id", "ticket_id", "agency",
                         "action", "from_state", "to_state", "actor_role", "deadline",
                         "deadline_zone", "public_note"}
    assert body["action"] == "close" and body["deadline"] is None
    assert "Catatan khusus" not in payloads.encode(body)


def test_message_webhook_carries_the_text_and_nobody_behind_it():
    msg = events_pb2.TicketMessage(
        tracking_id="LPR-7K3QX9M2", ticket_id="TCK-1", agency=AGENCY, direction="to_agency",
        text="Lubangnya sudah 2 meter, mohon segera.", ticket_version=5, confidential=True)
    body = payloads.message_webhook("ticket.message", msg, DELIVERY_ID)
    assert body == {"event": "ticket.message", "delivery_id": DELIVERY_ID,
                    "tracking_id": "LPR-7K3QX9M2", "ticket_id": "TCK-1",
                    "agency": {"code": "PUPR-13.03", "name": "Dinas PUPR Kabupaten Sijunjung"},
                    "direction": "to_agency", "text": "Lubangnya sudah 2 meter, mohon segera.",
                    "confidential": True}


def test_escalation_and_warning_bodies_carry_kind_clock_and_their_zone():
    escalated = events_pb2.TicketEscalated(
        tracking_id="LPR-7K3QX9M2", ticket_id="TCK-1", stage=common_pb2.TICKET_STATE_DISPATCHED,
        level=1, from_agency=AGENCY, to_agency=PARENT, reason="batas waktu respond terlewati",
        kind="parent", deadline_zone="WITA",
        deadline=events.timestamp(datetime(2026, 7, 24, 8, 0, tzinfo=UTC)))
    body = payloads.escalated_webhook("ticket.escalated", escalated, DELIVERY_ID)
    assert (body["kind"], body["stage"], body["deadline"], body["deadline_zone"]) == (
        "parent", "DISPATCHED", "2026-07-24T16:00:00+08:00", "WITA")
    assert body["to_agency"] == {"code": "PUPR-13", "name": "Dinas PUPR Provinsi Sumatera Barat"}
    # From before kinds existed: an escalation went to the parent.
    assert payloads.escalated_webhook("ticket.escalated", events_pb2.TicketEscalated(),
                                      DELIVERY_ID)["kind"] == "parent"
    warning = events_pb2.TicketSlaWarning(
        tracking_id="LPR-7K3QX9M2", ticket_id="TCK-1", stage=common_pb2.TICKET_STATE_FOLLOWED_UP,
        agency=AGENCY, clock="auto_close", deadline_zone="WIT",
        deadline=events.timestamp(datetime(2026, 7, 24, 7, 0, tzinfo=UTC)))
    body = payloads.sla_warning_webhook("ticket.sla_warning", warning, DELIVERY_ID)
    assert set(body) == {"event", "delivery_id", "tracking_id", "ticket_id", "clock", "stage",
                         "agency", "deadline", "deadline_zone"}
    assert (body["clock"], body["deadline"]) == ("auto_close", "2026-07-24T16:00:00+09:00")
