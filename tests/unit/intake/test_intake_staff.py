"""The pure parts of the staff API and of intake's calls to routing: routing's refusals as the
problems staff and citizens get, the inbox's query parameters, tickets turned into JSON field
by field, and intake's service token file."""

from __future__ import annotations

import json
import os
import stat

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from werkzeug.datastructures import MultiDict

from lapor.v1 import common_pb2, routing_pb2
from services.infra.config import ConfigError
from services.intake import models, staff
from services.intake.problems import Problem, from_citizen_call, from_staff_call
from services.intake.routing_client import TOKEN_FILE_VARIABLE, read_token_file


class Refusal(grpc.RpcError):
    """What a stub raises when routing refuses a call."""

    def __init__(self, code: grpc.StatusCode, details: str = "", violations=None):
        self._code, self._details = code, details
        self._trailers = ()
        if violations:
            status = status_pb2.Status(code=code.value[0], message=details)
            status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations.items()]))
            self._trailers = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers


S = grpc.StatusCode


# -- routing's refusals -------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "status", "problem_code"), [
    (S.UNAUTHENTICATED, 401, "unauthenticated"),
    (S.PERMISSION_DENIED, 403, "forbidden"),
    (S.NOT_FOUND, 404, "ticket_not_found"),
    (S.FAILED_PRECONDITION, 409, "not_allowed_in_state"),
    (S.ABORTED, 409, "stale_version"),
    (S.INVALID_ARGUMENT, 422, "validation_failed"),
    (S.RESOURCE_EXHAUSTED, 429, "rate_limited"),
    (S.UNAVAILABLE, 503, "routing_unavailable"),
    (S.DEADLINE_EXCEEDED, 503, "routing_unavailable"),
    (S.UNIMPLEMENTED, 503, "routing_unavailable"),
    (S.INTERNAL, 503, "routing_unavailable"),
])
def test_each_refusal_of_a_staff_call_has_its_http_answer(code, status, problem_code):
    problem = from_staff_call(Refusal(code, "routing's words"))
    assert (problem.status, problem.code) == (status, problem_code)
    if status == 401:
        assert problem.headers["WWW-Authenticate"].startswith("Bearer ")
    if status in (429, 503):
        assert int(problem.headers["Retry-After"]) > 0


def test_a_state_conflict_passes_routing_words_on_naming_the_state():
    message = "cannot follow up a ticket that is CLOSED; possible only when it is DISPATCHED"
    problem = from_staff_call(Refusal(S.FAILED_PRECONDITION, message))
    assert problem.detail == message


def test_a_stale_version_says_to_reload():
    problem = from_staff_call(Refusal(S.ABORTED, "the ticket changed since version 3"))
    assert "version 3" in problem.detail and "Reload" in problem.detail


def test_routing_field_violations_become_the_api_fields():
    problem = from_staff_call(Refusal(
        S.INVALID_ARGUMENT, "agency_code: only national admins choose the agency",
        {"agency_code": "only national admins and oversight choose the agency"}),
        staff.LIST_FIELDS)
    assert problem.errors == [{"field": "agency",
                               "message": "only national admins and oversight choose the "
                                          "agency"}]


def test_a_message_too_large_for_routing_is_413():
    problem = from_staff_call(Refusal(S.RESOURCE_EXHAUSTED,
                                      "Received message larger than max (300000 vs. 262144)"))
    assert (problem.status, problem.code) == (413, "payload_too_large")


@pytest.mark.parametrize("code", [S.UNAUTHENTICATED, S.PERMISSION_DENIED])
def test_intake_own_token_refused_is_not_the_citizens_fault(code, caplog):
    problem = from_citizen_call(Refusal(code, "the token is unknown"))
    assert (problem.status, problem.code) == (503, "routing_unavailable")
    assert "WWW-Authenticate" not in problem.headers


def test_a_report_routing_does_not_know_yet_is_a_conflict_to_retry():
    problem = from_citizen_call(Refusal(S.NOT_FOUND, "no ticket LPR-…"))
    assert (problem.status, problem.code) == (409, "not_routed_yet")
    assert problem.headers["Retry-After"]


# -- the inbox's query ------------------------------------------------------------------------
def test_the_inbox_query_becomes_routings_request():
    query = staff.inbox_query(MultiDict([
        ("state", "DISPATCHED"), ("state", "reporter_replied"), ("overdue", "true"),
        ("category", "PUPR"), ("region_code", " 13.03 "), ("q", "  jalan rusak "),
        ("agency", "PUPR-13.03"), ("page_size", "20"), ("page_token", "NTA=")]))
    assert list(query.states) == [common_pb2.TICKET_STATE_DISPATCHED,
                                  common_pb2.TICKET_STATE_REPORTER_REPLIED]
    assert query.overdue_only is True
    assert (query.category, query.region_code, query.text, query.agency_code) == (
        "PUPR", "13.03", "jalan rusak", "PUPR-13.03")
    assert (query.page_size, query.page_token) == (20, "NTA=")
    assert staff.inbox_query(MultiDict()) == routing_pb2.ListTicketsRequest()


def test_a_bad_inbox_query_names_every_parameter_to_fix():
    with pytest.raises(Problem) as refused:
        staff.inbox_query(MultiDict([
            ("state", "DONE"), ("overdue", "yes please"), ("category", "jalan"),
            ("region_code", "13.3"), ("q", "x" * 201), ("agency", "pupr 13"),
            ("page_size", "500"), ("page_token", "../../etc")]))
    assert refused.value.status == 422
    fields = [e["field"] for e in refused.value.errors]
    assert fields == ["state", "overdue", "category", "region_code", "agency", "q",
                      "page_size", "page_token"]
    assert all(e["message"] for e in refused.value.errors)


@pytest.mark.parametrize("size", ["0", "-1", "1.5", "٣", "abc"])
def test_page_size_is_a_whole_number_from_1_to_200(size):
    with pytest.raises(Problem):
        staff.inbox_query(MultiDict([("page_size", size)]))


# -- tickets as JSON ----------------------------------------------------------------------------
def _ts(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


AGENCY = common_pb2.Agency(code="PUPR-13.03", name="Dinas PUPR Kabupaten Sijunjung",
                           level="regency", region_code="13.03", parent_code="PEMDA-13.03")


def ticket(**changes) -> routing_pb2.Ticket:
    t = routing_pb2.Ticket(
        ticket_id="t-1", tracking_id="LPR-7K2-M9Q-4TX",
        state=common_pb2.TICKET_STATE_FOLLOWED_UP, agency=AGENCY, category="PUPR",
        deadline=_ts(1_900_000_000), deadline_zone="WIB", created_at=_ts(1_800_000_000),
        updated_at=_ts(1_800_000_500), region_code="13.03", version=5,
        report=common_pb2.ReportContent(
            kind=common_pb2.REPORT_KIND_PENGADUAN, title="Jalan rusak", body="Berlubang",
            region_code="13.03", anonymous=True, reporter_name="", channel="web"),
        decision="PUPR di 13.03", confidence=0.8123, complexity=2,
        clock="auto_close", allowed_actions=["close", "not_our_authority", "follow_up"])
    t.timeline.add(at=_ts(1_800_000_000), state=common_pb2.TICKET_STATE_SUBMITTED,
                   actor_role="citizen", note="Laporan diterima", action="submit")
    t.chain.add(agency=AGENCY, reason="dispatched", at=_ts(1_800_000_100))
    t.messages.add(at=_ts(1_800_000_200), direction="to_reporter", author_role="agency_officer",
                   text="Mohon foto lokasi")
    t.deliveries.add(at=_ts(1_800_000_300), channel="webhook", audience="agency",
                     outcome="delivered")
    for name, value in changes.items():
        setattr(t, name, value)
    return t


def test_a_ticket_is_json_with_enum_names_and_the_api_action_paths():
    view = staff.ticket_json(ticket())
    assert view["state"] == "FOLLOWED_UP" and view["state_label"] == "Ditindaklanjuti"
    assert view["complexity"] == "DISPUTE"
    assert view["report"]["kind"] == "PENGADUAN"
    assert view["deadline"] == "2030-03-17T17:46:40Z"
    assert view["accepted_at"] is None and view["rating"] is None
    assert view["allowed_actions"] == ["close", "decline", "follow-up"]
    assert set(view["allowed_actions"]) <= set(models.STAFF_ACTIONS)
    assert view["timeline"][0] == {"at": "2027-01-15T08:00:00Z", "state": "SUBMITTED",
                                   "action": "submit", "actor_role": "citizen",
                                   "agency_code": None, "note": "Laporan diterima"}
    assert view["chain"][0]["agency"]["parent_code"] == "PEMDA-13.03"
    assert view["messages"][0]["text"] == "Mohon foto lokasi"
    # Exactly the documented fields, each valid.
    models.StaffTicket.model_validate_json(json.dumps(view))


def test_an_anonymous_reporters_name_never_shows_even_if_routing_sent_one():
    t = ticket()
    t.report.reporter_name = "Siti Rahayu"
    assert "Siti" not in json.dumps(staff.ticket_json(t))


def test_every_lifecycle_action_maps_to_a_staff_endpoint():
    from services.routing.tickets.statemachine import STAFF, TABLE, Role

    staff_roles = STAFF | {Role.NATIONAL_ADMIN}
    actions = {step.action.value for step in TABLE if step.roles & staff_roles}
    assert {staff.ACTION_PATHS.get(a, a) for a in actions} <= set(models.STAFF_ACTIONS)


def test_intake_archive_reasons_are_routings():
    from services.routing.tickets.statemachine import ARCHIVE_REASONS

    assert set(models.ARCHIVE_REASONS) == set(ARCHIVE_REASONS)


def test_a_principal_and_a_summary_as_json():
    summary = routing_pb2.TicketSummary(
        tracking_id="LPR-7K2-M9Q-4TX", state=common_pb2.TICKET_STATE_DISPATCHED, agency=AGENCY,
        title="Jalan rusak", region_code="13.03", version=2, overdue=True)
    view = staff.summary_json(summary)
    assert (view["state"], view["deadline"], view["category"]) == ("DISPATCHED", None, None)
    models.TicketSummary.model_validate_json(json.dumps(view))
    assert staff.agency_json(common_pb2.Agency()) is None


# -- intake's service token ----------------------------------------------------------------------
def test_the_service_token_file_is_read_without_its_line_break(tmp_path):
    path = tmp_path / "token"
    path.write_text("lpr_abc-DEF_123\n", encoding="utf-8")
    assert read_token_file(str(path)) == "lpr_abc-DEF_123"


def test_a_missing_token_file_stops_intake_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=TOKEN_FILE_VARIABLE) as stopped:
        read_token_file(str(tmp_path / "absent"))
    assert "ensure-service" in str(stopped.value)


@pytest.mark.parametrize("content", ["", "   \n", "two words", "tok\x00en", "é" * 3])
def test_a_file_without_a_token_stops_intake_without_echoing_it(tmp_path, content):
    path = tmp_path / "token"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=TOKEN_FILE_VARIABLE) as stopped:
        read_token_file(str(path))
    if content.strip():
        assert content.strip() not in str(stopped.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_token_file_stops_intake(tmp_path):
    path = tmp_path / "token"
    path.write_text("lpr_x", encoding="utf-8")
    path.chmod(stat.S_IWUSR)
    with pytest.raises(ConfigError, match=TOKEN_FILE_VARIABLE):
        read_token_file(str(path))


def test_every_status_code_has_an_answer():
    # Every gRPC status has an answer (no 500 from an unexpected code).
    for code in S:
        if code == S.OK:
            continue
        assert 400 <= from_staff_call(Refusal(code, "x")).status < 600
        assert 400 <= from_citizen_call(Refusal(code, "x")).status < 600
