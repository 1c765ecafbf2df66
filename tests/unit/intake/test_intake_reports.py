"""Privacy allow-lists where report data leaves intake: the report.submitted event routing
and the handling agency read, the public view anyone can GET, and the reporter's own view.
A leak here is a release blocker (DESIGN §2)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from lapor.v1 import common_pb2, events_pb2
from services.infra import events
from services.intake import storage
from services.intake.reports import (
    STATUS_LABELS,
    owner_view,
    public_view,
    report_content,
    reporter_actions,
    request_fingerprint,
)
from services.intake.validation import parse_new_report

NAME = "Siti Rahmawati"
EMAIL = "siti.rahma@contoh.id"
PHONE_TYPED = "0812-3456-7890"
PHONE = "+6281234567890"
TITLE = "Puskesmas Muaro tutup saat jam pelayanan"
BODY = "Puskesmas Muaro tutup pukul 10 pagi padahal jadwal pelayanan sampai 14.00 WIB."
SUBMITTED_AT = datetime(2025, 3, 3, 2, 15, tzinfo=UTC)

# Every form of the reporter's identity that must not leak, as text and as bytes.
IDENTITY = [NAME, EMAIL, PHONE, "81234567890", "Rahmawati", "siti.rahma"]


def request(**changes) -> dict:
    data = {
        "kind": "PENGADUAN", "title": TITLE, "body": BODY, "region_code": "13.03",
        "location": {"latitude": -0.6886, "longitude": 100.9527},
        "address": "Jl. Prof. M. Yamin, Muaro Sijunjung",
        "reporter": {"name": NAME, "email": EMAIL, "phone": PHONE_TYPED},
    }
    data.update(changes)
    return data


def submitted_event_bytes(content: common_pb2.ReportContent) -> bytes:
    """The report.submitted message exactly as the broker carries it."""
    envelope = events.new("report.submitted", "LPR-ABC-DEF-GHJ", events_pb2.ReportSubmitted(
        tracking_id="LPR-ABC-DEF-GHJ", report=content), producer="intake")
    return envelope.SerializeToString()


def assert_no_identity(blob: bytes | str, *, name_allowed: bool = False):
    if isinstance(blob, str):
        blob = blob.encode()
    for secret in IDENTITY:
        if name_allowed and secret in NAME:
            continue
        assert secret.encode() not in blob, f"{secret!r} leaked"


# --- report.submitted: what routing and the agency receive ------------------


def test_anonymous_report_carries_no_identity_at_all():
    report = parse_new_report(request(anonymous=True))
    content = report_content(report, SUBMITTED_AT)
    assert content.anonymous is True
    assert content.reporter_name == ""
    assert_no_identity(content.SerializeToString())
    assert_no_identity(submitted_event_bytes(content))
    assert_no_identity(str(content))  # what a debug log of the message would show


def test_named_report_carries_the_name_for_the_agency_but_no_contact():
    report = parse_new_report(request(anonymous=False))
    content = report_content(report, SUBMITTED_AT)
    assert content.reporter_name == NAME
    wire = submitted_event_bytes(content)
    assert NAME.encode() in wire
    assert_no_identity(wire, name_allowed=True)


def test_report_content_schema_has_no_field_for_contact_details():
    # The allow-list is also the schema: a field added for email or phone would be a leak
    # waiting for someone to fill it.
    fields = {f.name for f in common_pb2.ReportContent.DESCRIPTOR.fields}
    for forbidden in ("email", "phone", "reporter_email", "reporter_phone", "access_token"):
        assert forbidden not in fields


def test_report_content_keeps_what_the_agency_needs_to_act():
    report = parse_new_report(request(anonymous=True, confidential=True,
                                      incident_date="2025-03-01", target_agency="DINKES-13.03"))
    content = report_content(report, SUBMITTED_AT)
    assert content.kind == common_pb2.REPORT_KIND_PENGADUAN
    assert (content.title, content.body, content.region_code) == (TITLE, BODY, "13.03")
    assert content.confidential is True
    assert content.incident_date == "2025-03-01"
    assert content.target_agency == "DINKES-13.03"
    assert content.address.startswith("Jl. Prof. M. Yamin")
    assert content.HasField("location")
    assert (content.location.latitude, content.location.longitude) == (-0.6886, 100.9527)
    assert content.submitted_at.ToDatetime(tzinfo=UTC) == SUBMITTED_AT


def test_report_without_a_point_has_no_location_in_the_event():
    data = request()
    del data["location"]
    content = report_content(parse_new_report(data), SUBMITTED_AT)
    assert not content.HasField("location")


@pytest.mark.parametrize("kind", ["PENGADUAN", "ASPIRASI", "PERMINTAAN_INFORMASI"])
def test_every_kind_reaches_routing_as_itself(kind):
    content = report_content(parse_new_report(request(kind=kind)), SUBMITTED_AT)
    assert common_pb2.ReportKind.Name(content.kind) == f"REPORT_KIND_{kind}"


# --- the HTTP views ---------------------------------------------------------

T0 = datetime(2025, 3, 3, 2, 15)  # naive, as SQLite returns it


def row(**changes) -> SimpleNamespace:
    """A reports row with every column of the real table."""
    values = {column.name: None for column in storage.reports.columns}
    values.update(
        tracking_id="LPR-7K2-M9Q-4TX", kind="PENGADUAN", title=TITLE, body=BODY,
        region_code="13.03", category="KESEHATAN", target_agency="", incident_date="2025-03-01",
        latitude=-0.6886, longitude=100.9527, address="Jl. Prof. M. Yamin, Muaro Sijunjung",
        channel="mobile", anonymous=False, confidential=False, language="id",
        access_token_hash="ab" * 32, status="SUBMITTED", status_at=T0, agency_code="",
        agency_name="", deadline=None, deadline_zone="", created_at=T0, updated_at=T0,
        support_count=0, appealed=False)
    values.update(changes)
    assert set(values) == {column.name for column in storage.reports.columns}
    return SimpleNamespace(**values)


def entry(status: str, note: str, *, private: bool = False, minutes: int = 0,
          agency_name: str = "") -> SimpleNamespace:
    values = {column.name: None for column in storage.timeline.columns}
    values.update(id=minutes + 1, tracking_id="LPR-7K2-M9Q-4TX",
                  at=T0 + timedelta(minutes=minutes), status=status, note=note,
                  agency_name=agency_name, private=private, source_event_id=None,
                  private_note="")
    return SimpleNamespace(**values)


DISPATCHED = dict(status="DISPATCHED", agency_code="DINKES-13.03",
                  agency_name="Dinas Kesehatan Kabupaten Sijunjung",
                  deadline=datetime(2025, 3, 10, 10, 0, tzinfo=UTC), deadline_zone="WIB")

TIMELINE = [
    entry("SUBMITTED", "Laporan diterima"),
    entry("SUBMITTED", "SMS terkirim ke pelapor", private=True, minutes=1),
    entry("DISPATCHED", "Terdisposisi ke Dinas Kesehatan Kabupaten Sijunjung", minutes=5,
          agency_name="Dinas Kesehatan Kabupaten Sijunjung"),
]


@pytest.mark.parametrize("anonymous", [False, True], ids=["named", "anonymous"])
@pytest.mark.parametrize("confidential", [False, True], ids=["open", "confidential"])
@pytest.mark.parametrize("state", [{}, DISPATCHED], ids=["submitted", "dispatched"])
def test_public_view_never_shows_the_reporter(anonymous, confidential, state):
    view = public_view(row(anonymous=anonymous, confidential=confidential, **state), TIMELINE)
    assert_no_identity(json.dumps(view))
    assert "reporter" not in view
    assert "access_token_hash" not in json.dumps(view)
    assert "ab" * 32 not in json.dumps(view)


def test_public_view_of_a_confidential_report_shows_no_content():
    view = public_view(row(confidential=True, **DISPATCHED), TIMELINE)
    dumped = json.dumps(view)
    assert "title" not in view and "body" not in view
    for content in (TITLE, BODY, "Puskesmas", "Jl. Prof. M. Yamin", "-0.6886", "100.9527"):
        assert content not in dumped
    # ... but the public can still follow its progress.
    assert view["status"] == "DISPATCHED"
    assert view["agency"]["name"] == "Dinas Kesehatan Kabupaten Sijunjung"
    assert view["confidential"] is True


def test_public_view_of_an_open_report_shows_title_and_body_but_not_where_the_reporter_is():
    view = public_view(row(), TIMELINE)
    assert (view["title"], view["body"]) == (TITLE, BODY)
    dumped = json.dumps(view)
    # Address and exact point can identify the reporter's home; they stay with the owner.
    assert "Jl. Prof. M. Yamin" not in dumped
    assert "100.9527" not in dumped


def test_private_timeline_entries_are_hidden_from_the_public():
    view = public_view(row(**DISPATCHED), TIMELINE)
    notes = [e["note"] for e in view["timeline"]]
    assert notes == ["Laporan diterima", "Terdisposisi ke Dinas Kesehatan Kabupaten Sijunjung"]
    assert "SMS" not in json.dumps(view)


def test_owner_view_shows_everything_the_reporter_sent_and_the_whole_timeline():
    view = owner_view(row(anonymous=True, confidential=True, **DISPATCHED), TIMELINE)
    assert (view["title"], view["body"]) == (TITLE, BODY)
    # Contacts are notify's alone: intake has none to show, only the language of messages.
    assert view["reporter"] == {"language": "id"}
    assert_no_identity(json.dumps(view))
    assert view["anonymous"] is True and view["confidential"] is True
    assert view["location"] == {"latitude": -0.6886, "longitude": 100.9527}
    assert view["address"] == "Jl. Prof. M. Yamin, Muaro Sijunjung"
    assert view["incident_date"] == "2025-03-01"
    assert [e["note"] for e in view["timeline"]] == [e.note for e in TIMELINE]
    assert "access_token_hash" not in view
    assert "ab" * 32 not in json.dumps(view)


def test_owner_view_without_optional_parts_shows_nulls_not_blanks():
    view = owner_view(row(latitude=None, longitude=None, address="", incident_date=""), [])
    assert view["location"] is None and view["address"] is None
    assert view["incident_date"] is None


def test_views_are_json_with_utc_timestamps():
    view = public_view(row(**DISPATCHED), TIMELINE)
    json.dumps(view)  # jsonify would fail on a datetime
    assert view["created_at"] == "2025-03-03T02:15:00Z"
    assert view["deadline"] == "2025-03-10T10:00:00Z"
    assert view["deadline_zone"] == "WIB"
    assert view["timeline"][0]["at"] == "2025-03-03T02:15:00Z"


def test_a_report_without_agency_or_deadline_says_so_with_nulls():
    view = public_view(row(category=""), [])
    assert view["agency"] is None
    assert view["deadline"] is None and view["deadline_zone"] is None
    assert view["category"] is None
    assert view["timeline"] == []


# --- status labels ----------------------------------------------------------

# DESIGN §2, the labels citizens see.
DESIGN_LABELS = {
    "SUBMITTED": "Belum terverifikasi",
    "ON_HOLD": "Ditunda (butuh kelengkapan)",
    "FOLLOWED_UP": "Ditindaklanjuti",
    "REPORTER_REPLIED": "Ditanggapi pelapor",
    "CLOSED": "Selesai",
    "ARCHIVED": "Diarsipkan",
}


def test_every_ticket_state_has_an_indonesian_label():
    states = {name.removeprefix("TICKET_STATE_") for name in common_pb2.TicketState.keys()}
    states.discard("UNSPECIFIED")
    assert states <= set(STATUS_LABELS)


@pytest.mark.parametrize("status,label", sorted(DESIGN_LABELS.items()))
def test_status_labels_follow_the_design(status, label):
    view = public_view(row(status=status), [entry(status, "")])
    assert view["status_label"] == label
    assert view["timeline"][0]["status_label"] == label


def test_dispatched_label_names_the_agency():
    view = public_view(row(**DISPATCHED), [])
    assert view["status_label"] == "Terdisposisi ke Dinas Kesehatan Kabupaten Sijunjung"


# --- idempotency fingerprint ------------------------------------------------


def test_a_retried_request_has_the_same_fingerprint():
    first = request()
    retry = dict(reversed(list(request().items())))  # same JSON, keys in another order
    retry["reporter"] = {"phone": "+62 812 3456 7890", "email": EMAIL, "name": NAME}
    assert request_fingerprint(parse_new_report(first)) == \
        request_fingerprint(parse_new_report(retry))


@pytest.mark.parametrize("change", [
    {"title": "Puskesmas Muaro tutup lagi hari ini"},
    {"anonymous": True},
    {"confidential": True},
    {"region_code": "13.03.01"},
    {"reporter": {"name": NAME, "email": EMAIL, "phone": "0813-0000-1111"}},
])
def test_a_different_request_has_a_different_fingerprint(change):
    assert request_fingerprint(parse_new_report(request())) != \
        request_fingerprint(parse_new_report(request(**change)))


@pytest.mark.parametrize("change", [
    {},
    {"anonymous": True, "reporter": {}},
    {"title": "Lampu jalan mati di Jl. Sudirman — sejak 3 hari", "location": None},
    {"reporter": {"name": "Ñoman Ärif", "email": EMAIL, "language": "en"}},
])
def test_the_fingerprint_is_the_one_keys_stored_before_were_sealed_with(change):
    """Stored Idempotency-Keys were sealed with the fingerprint of asdict(report): a retry
    after an upgrade must get its answer, not a conflict."""
    report = parse_new_report(request(**change))
    sealed_with = hashlib.sha256(json.dumps(dataclasses.asdict(report),
                                            sort_keys=True).encode()).hexdigest()
    assert request_fingerprint(report) == sealed_with


# --- what the reporter may do, and what only they see ---------------------------------------

@pytest.mark.parametrize(("status", "rated", "appealed", "actions"), [
    ("SUBMITTED", False, False, ["reply"]),
    ("ON_HOLD", False, False, ["reply"]),
    ("DISPATCHED", False, False, ["reply"]),
    ("FOLLOWED_UP", False, False, ["reply", "confirm"]),
    ("REPORTER_REPLIED", False, False, ["reply"]),
    ("CLOSED", False, False, ["rate", "appeal"]),
    ("CLOSED", True, False, ["appeal"]),
    ("CLOSED", True, True, []),
    ("CLOSED", False, True, ["rate"]),
    ("ARCHIVED", False, False, []),
])
def test_the_owner_is_offered_what_the_lifecycle_allows_them(status, rated, appealed, actions):
    assert reporter_actions(status, rated=rated, appealed=appealed) == actions
    view = owner_view(row(status=status, rating=4 if rated else None, appealed=appealed,
                          support_count=0), [])
    assert view["actions"] == actions
    assert view["rating"] == (4 if rated else None)


def test_the_owner_and_only_the_owner_sees_the_private_note():
    question = "Mohon lampirkan foto lokasi jalan yang rusak"
    held = entry("ON_HOLD", "Ditunda: menunggu kelengkapan dari pelapor", minutes=3)
    held.private_note = question
    view_row = row(status="ON_HOLD", support_count=2, appealed=False)
    public = public_view(view_row, [*TIMELINE, held])
    assert question not in json.dumps(public)
    assert all("private_note" not in e for e in public["timeline"])
    own = owner_view(view_row, [*TIMELINE, held])
    assert own["timeline"][-1]["note"] == "Ditunda: menunggu kelengkapan dari pelapor"
    assert own["timeline"][-1]["private_note"] == question
    assert own["support_count"] == public["support_count"] == 2
