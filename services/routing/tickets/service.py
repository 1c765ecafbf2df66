"""The ticket RPCs: thin methods that check the request's shape, call tickets.commands with the
caller the auth interceptor resolved, and turn the result (or the refusal) into protobuf and
gRPC status codes. RoutingServicer inherits them."""

from __future__ import annotations

import base64
import json

import grpc

from lapor.v1 import common_pb2, routing_pb2
from services.infra import events
from services.infra.db import as_utc
from services.routing.principal import Principal
from services.routing.tickets import commands
from services.routing.tickets.commands import Invalid, NotFound, NotYours, Refused, Stale
from services.routing.tickets.statemachine import Complexity, Forbidden, NotAllowed, State
from services.routing.workflow import agency_proto

MAX_PAGE = 200
NOT_YOURS = "not a ticket of your agency, or no such ticket"


def _caller(context) -> Principal:
    from services.routing.auth import current_principal

    principal = current_principal()
    if principal is None:  # the interceptor always sets one; never answer without it
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "sign in with a bearer token")
    return principal


def _ts(value):
    return events.timestamp(as_utc(value))


def _state(value: str) -> int:
    return common_pb2.TicketState.Value("TICKET_STATE_" + value)


def _complexity(value: str) -> int:
    return routing_pb2.Complexity.Value("COMPLEXITY_" + value) if value else 0


class TicketRpcs:
    """Mixed into RoutingServicer; needs `self.tickets` (commands.Tickets) and the shape
    helpers `self.check_tracking_id(context, value)` and `invalid_argument`."""

    tickets: commands.Tickets

    # -- answers ---------------------------------------------------------------------------
    def _refusal(self, context, exc: Exception, principal: Principal):
        if isinstance(exc, Invalid):
            from services.routing.api import invalid_argument

            invalid_argument(context, exc.violations)
        if isinstance(exc, NotFound):
            if principal.sees_everything or principal.is_platform_service:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            context.abort(grpc.StatusCode.PERMISSION_DENIED, NOT_YOURS)
        if isinstance(exc, NotYours):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, NOT_YOURS)
        if isinstance(exc, Forbidden):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        if isinstance(exc, NotAllowed | Refused):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if isinstance(exc, Stale):
            context.abort(grpc.StatusCode.ABORTED, str(exc))
        raise exc

    def _run(self, context, principal: Principal, call):
        try:
            return call()
        except (commands.TicketError, Forbidden, NotAllowed) as exc:
            self._refusal(context, exc, principal)

    def _ticket(self, context, principal: Principal, tracking_id: str) -> routing_pb2.Ticket:
        view = self._run(context, principal, lambda: self.tickets.get(principal, tracking_id))
        return ticket_proto(view)

    # -- queries ---------------------------------------------------------------------------
    def ListTickets(self, request, context):  # noqa: N802 (gRPC's naming)
        principal = _caller(context)
        problems = {}
        if not 0 <= request.page_size <= MAX_PAGE:
            problems["page_size"] = f"between 1 and {MAX_PAGE} (0 means 50)"
        offset = 0
        if request.page_token:
            offset = _page_offset(request.page_token)
            if offset is None:
                problems["page_token"] = "pass next_page_token from the previous page unchanged"
        for name in ("category", "region_code", "agency_code"):
            if len(getattr(request, name)) > 40:
                problems[name] = "at most 40 characters"
        if len(request.text) > 200:
            problems["text"] = "at most 200 characters"
        if "\x00" in request.text:
            problems["text"] = "must not contain NUL characters"
        states = []
        for value in request.states:
            name = common_pb2.TicketState.Name(value) if value in \
                common_pb2.TicketState.values() else ""
            if not name or name.endswith("UNSPECIFIED"):
                problems["states"] = "ticket states such as TICKET_STATE_DISPATCHED"
            else:
                states.append(State(name.removeprefix("TICKET_STATE_")))
        if request.agency_code and not principal.sees_everything:
            problems["agency_code"] = "only national admins and oversight choose the agency"
        if problems:
            from services.routing.api import invalid_argument

            invalid_argument(context, problems)
        size = request.page_size or 50
        found = self.tickets.inbox(
            principal, states=states, overdue_only=request.overdue_only,
            category=request.category, region_code=request.region_code, text=request.text,
            agency_code=request.agency_code, offset=offset, limit=size + 1)
        response = routing_pb2.ListTicketsResponse()
        for row, agency, overdue in found[:size]:
            summary = response.tickets.add(
                tracking_id=row.tracking_id, state=_state(row.state),
                agency=agency_proto(agency), category=row.category, title=row.title,
                region_code=row.region_code, deadline_zone=row.deadline_zone,
                overdue=overdue, version=row.version, created_at=_ts(row.created_at),
                escalation_level=row.escalation_level, support_count=row.support_count)
            if row.deadline is not None:
                summary.deadline.CopyFrom(_ts(row.deadline))
        if len(found) > size:
            response.next_page_token = base64.urlsafe_b64encode(
                str(offset + size).encode()).decode()
        return response

    def GetTicket(self, request, context):  # noqa: N802
        self.check_tracking_id(context, request.tracking_id)
        return self._ticket(context, _caller(context), request.tracking_id)

    def GetAuditTrail(self, request, context):  # noqa: N802
        self.check_tracking_id(context, request.tracking_id)
        principal = _caller(context)
        entries = self._run(context, principal,
                            lambda: self.tickets.audit(principal, request.tracking_id))
        trail = routing_pb2.AuditTrail(tracking_id=request.tracking_id)
        for entry in entries:
            trail.entries.add(
                at=_ts(entry.at), actor=entry.actor or entry.actor_role,
                actor_role=entry.actor_role, action=entry.action,
                from_state=_state(entry.from_state) if entry.from_state else 0,
                to_state=_state(entry.to_state), from_agency=entry.from_agency,
                to_agency=entry.agency_code, reason=entry.reason, note=entry.note,
                version=entry.version)
        return trail

    # -- the national admin -----------------------------------------------------------------------
    def VerifyTicket(self, request, context):  # noqa: N802
        return self._act(request, context, lambda p: self.tickets.verify(
            p, request.tracking_id, expected_version=request.expected_version,
            agency_code=request.agency_code, category=request.category, note=request.note),
            codes={"agency_code": request.agency_code, "category": request.category})

    def HoldTicket(self, request, context):  # noqa: N802
        return self._act(request, context, lambda p: self.tickets.hold(
            p, request.tracking_id, question=request.question,
            expected_version=request.expected_version))

    def ArchiveTicket(self, request, context):  # noqa: N802
        return self._act(request, context, lambda p: self.tickets.archive(
            p, request.tracking_id, reason=request.reason, note=request.note,
            expected_version=request.expected_version), codes={"reason": request.reason})

    def LinkDuplicate(self, request, context):  # noqa: N802
        self._check_other_ticket(context, "master_tracking_id", request.master_tracking_id)
        return self._act(request, context, lambda p: self.tickets.link_duplicate(
            p, request.tracking_id, master_tracking_id=request.master_tracking_id,
            expected_version=request.expected_version))

    def DismissDuplicate(self, request, context):  # noqa: N802
        self._check_other_ticket(context, "candidate", request.candidate)
        return self._act(request, context, lambda p: self.tickets.dismiss_duplicate(
            p, request.tracking_id, candidate=request.candidate,
            expected_version=request.expected_version))

    @staticmethod
    def _check_other_ticket(context, field: str, value: str) -> None:
        from services.routing.api import _identifier_problem, invalid_argument

        problem = _identifier_problem(value, "tracking_id",
                                      "a tracking id such as LPR-7K2-M9Q-XD4")
        if problem:
            invalid_argument(context, {field: problem})

    # -- the agency -------------------------------------------------------------------------
    def AcceptTicket(self, request, context):  # noqa: N802
        complexity = Complexity.SIMPLE
        if request.complexity:
            name = routing_pb2.Complexity.Name(request.complexity) if request.complexity in \
                routing_pb2.Complexity.values() else ""
            if not name:
                from services.routing.api import invalid_argument

                invalid_argument(context, {"complexity": "SIMPLE, DISPUTE or FIELD"})
            complexity = Complexity(name.removeprefix("COMPLEXITY_"))
        return self._act(request, context, lambda p: self.tickets.accept(
            p, request.tracking_id, complexity=complexity,
            expected_version=request.expected_version))

    def ForwardTicket(self, request, context):  # noqa: N802
        return self._act(request, context, lambda p: self.tickets.forward(
            p, request.tracking_id, unit_code=request.unit_code, note=request.note,
            expected_version=request.expected_version), codes={"unit_code": request.unit_code})

    def DeclineTicket(self, request, context):  # noqa: N802
        return self._act(request, context, lambda p: self.tickets.decline(
            p, request.tracking_id, reason=request.reason,
            suggested_agency_code=request.suggested_agency_code,
            expected_version=request.expected_version),
            codes={"suggested_agency_code": request.suggested_agency_code})

    def FollowUpTicket(self, request, context):  # noqa: N802
        return self._act(request, context, lambda p: self.tickets.follow_up(
            p, request.tracking_id, response=request.response,
            expected_version=request.expected_version))

    def CloseTicket(self, request, context):  # noqa: N802
        return self._act(request, context, lambda p: self.tickets.close(
            p, request.tracking_id, note=request.note,
            expected_version=request.expected_version))

    def MessageReporter(self, request, context):  # noqa: N802
        return self._act(request, context, lambda p: self.tickets.message_reporter(
            p, request.tracking_id, text=request.text,
            expected_version=request.expected_version))

    def _act(self, request, context, command, codes: dict[str, str] | None = None):
        self.check_tracking_id(context, request.tracking_id)
        problems = {name: "at most 40 characters" for name, value in (codes or {}).items()
                    if len(value) > 40 or "\x00" in value}
        if problems:
            from services.routing.api import invalid_argument

            invalid_argument(context, problems)
        principal = _caller(context)
        self._run(context, principal, lambda: command(principal))
        view = self._run(context, principal, lambda: self.tickets.get(
            principal, request.tracking_id, after_acting=True))
        return ticket_proto(view)

    # -- the reporter, through intake ------------------------------------------------------------
    def ReporterReply(self, request, context):  # noqa: N802
        return self._reporter(request, context, lambda: self.tickets.reporter_reply(
            request.tracking_id, request.message))

    def ReporterConfirm(self, request, context):  # noqa: N802
        return self._reporter(request, context, lambda: (
            "closed", self.tickets.reporter_confirm(request.tracking_id, request.comment)))

    def RateTicket(self, request, context):  # noqa: N802
        return self._reporter(request, context, lambda: (
            "rated", self.tickets.rate(request.tracking_id, request.rating, request.comment)))

    def AppealTicket(self, request, context):  # noqa: N802
        return self._reporter(request, context, lambda: (
            "appealed", self.tickets.appeal(request.tracking_id, request.reason)))

    def _reporter(self, request, context, command):
        self.check_tracking_id(context, request.tracking_id)
        principal = _caller(context)
        outcome, row = self._run(context, principal, command)
        agency = self.tickets.agency_of(row)
        response = routing_pb2.ReporterActionResponse(
            outcome=outcome, state=_state(row.state), version=row.version,
            agency=common_pb2.Agency(code=agency.code, name=agency.name),
            deadline_zone=row.deadline_zone)
        if row.deadline is not None:
            response.deadline.CopyFrom(_ts(row.deadline))
        return response


def _page_offset(token: str) -> int | None:
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return offset if 0 <= offset < 100_000 else None


def _decision_detail(raw: str) -> dict:
    try:
        detail = json.loads(raw or "{}")
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {}


def ticket_proto(view: commands.TicketView) -> routing_pb2.Ticket:
    """The staff view of a ticket: built field by field (the report content is the same
    allow-list agencies get by webhook: no contacts, no name when anonymous)."""
    row = view.row
    ticket = routing_pb2.Ticket(
        ticket_id=row.ticket_id, tracking_id=row.tracking_id, state=_state(row.state),
        agency=agency_proto(view.agency), category=row.category,
        deadline_zone=row.deadline_zone, created_at=_ts(row.created_at),
        updated_at=_ts(row.updated_at), region_code=row.region_code, version=row.version,
        report=view.content, decision=row.decision, confidence=row.confidence,
        complexity=_complexity(row.complexity), clock=row.clock, overdue=view.overdue,
        escalation_level=row.escalation_level,
        oversight_flagged=row.oversight_flagged_at is not None,
        support_count=row.support_count, rating=row.rating or 0,
        rating_comment=row.rating_comment, allowed_actions=view.allowed,
        duplicate_of=row.duplicate_of, subcategory=row.subcategory,
        model_version=row.model_version)
    detail = _decision_detail(row.decision_detail)
    ticket.rule = str(detail.get("rule", ""))
    for entry in detail.get("top", [])[:3]:
        code = str(entry.get("category", ""))
        # Decisions taken before names were stored show the code in the name's place.
        ticket.top_categories.add(category=str(entry.get("name") or code), category_code=code,
                                  confidence=float(entry.get("confidence", 0.0)))
    for candidate in view.candidates:
        ticket.duplicate_candidates.add(tracking_id=candidate.tracking_id,
                                        similarity=candidate.similarity,
                                        resolution=candidate.resolution)
    if row.deadline is not None:
        ticket.deadline.CopyFrom(_ts(row.deadline))
    if row.accepted_at is not None:
        ticket.accepted_at.CopyFrom(_ts(row.accepted_at))
    for entry in view.history:
        ticket.timeline.add(at=_ts(entry.at), state=_state(entry.to_state),
                            actor_role=entry.actor_role, agency_code=entry.agency_code,
                            note=entry.note, action=entry.action)
    for agency, reason, at in view.chain:
        ticket.chain.add(agency=agency_proto(agency), reason=reason, at=_ts(at))
    for message in view.messages:
        ticket.messages.add(at=_ts(message.at), direction=message.direction,
                            author_role=message.author_role, text=message.text)
    for delivery in view.deliveries:
        ticket.deliveries.add(at=_ts(delivery.at), channel=delivery.channel,
                              audience=delivery.audience, outcome=delivery.outcome,
                              reason=delivery.reason)
    return ticket

