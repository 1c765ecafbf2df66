"""Routing's gRPC API: thin servicers that turn protobuf into domain calls and domain
problems into gRPC statuses with details, plus the interceptor that measures and logs
every call."""

from __future__ import annotations

import base64
import logging
import time

import grpc
import sqlalchemy as sa
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from lapor.v1 import common_pb2, routing_pb2, routing_pb2_grpc
from services.infra import events, logs
from services.infra.db import as_utc, reading
from services.routing import storage
from services.routing.rules import CATEGORIES, Draft, decide, valid_region_code
from services.routing.workflow import agency_proto

log = logging.getLogger(__name__)

RPC_HANDLED = Counter("lapor_grpc_server_handled_total", "RPCs completed, by status code",
                      ["method", "code"])
RPC_SECONDS = Histogram("lapor_grpc_server_handling_seconds", "RPC handling time", ["method"],
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
METHODS = [m.name for m in routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].methods]
for _method in METHODS:
    RPC_SECONDS.labels(_method)
    for _code in ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "INTERNAL", "UNAVAILABLE"):
        RPC_HANDLED.labels(_method, _code)


def invalid_argument(context: grpc.ServicerContext, violations: dict[str, str]) -> None:
    """Aborts with INVALID_ARGUMENT and a google.rpc.BadRequest naming each field to fix."""
    detail = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
        for f, d in violations.items()])
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT,
                               message="; ".join(f"{f}: {d}" for f, d in violations.items()))
    status.details.add().Pack(detail)
    context.abort_with_status(rpc_status.to_status(status))


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(self, engine):
        self.engine = engine

    def SuggestRoute(self, request, context):  # noqa: N802 (gRPC's naming)
        problems = {}
        if not valid_region_code(request.region_code):
            problems["region_code"] = "a Kemendagri code such as 13.03 (Kabupaten Sijunjung)"
        if request.category and request.category not in CATEGORIES:
            problems["category"] = "one of " + ", ".join(CATEGORIES)
        if not (request.title.strip() or request.body.strip()):
            problems["body"] = "give a title or a body to classify"
        if problems:
            invalid_argument(context, problems)
        with reading(self.engine) as conn:
            decision = decide(Draft(request.title, request.body, request.region_code,
                                    request.category), storage.SqlDirectory(conn))
        category = CATEGORIES.get(decision.category)
        return routing_pb2.SuggestRouteResponse(
            category=decision.category, category_name=category.name if category else "",
            confidence=decision.confidence, agency=agency_proto(decision.agency),
            needs_triage=not decision.auto_dispatch, explanation=decision.explanation)

    def GetTicket(self, request, context):  # noqa: N802
        if not request.tracking_id:
            invalid_argument(context, {"tracking_id": "required"})
        if "\x00" in request.tracking_id:  # PostgreSQL refuses NUL in text; never an id
            invalid_argument(context, {"tracking_id": "not a tracking id"})
        t, h, a = storage.tickets, storage.ticket_history, storage.agencies
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(t, a.c.name.label("agency_name"),
                                         a.c.level.label("agency_level"),
                                         a.c.region_code.label("agency_region"),
                                         a.c.parent_code.label("agency_parent"))
                               .join(a, a.c.code == t.c.agency_code, isouter=True)
                               .where(t.c.tracking_id == request.tracking_id)).first()
            if row is None:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"no ticket for {request.tracking_id} (yet): routing may still "
                              "be processing the report")
            history = conn.execute(sa.select(h).where(h.c.ticket_id == row.ticket_id)
                                   .order_by(h.c.at, h.c.id)).all()
        ticket = routing_pb2.Ticket(
            ticket_id=row.ticket_id, tracking_id=row.tracking_id,
            state=common_pb2.TicketState.Value("TICKET_STATE_" + row.state),
            agency=common_pb2.Agency(code=row.agency_code, name=row.agency_name or "",
                                     level=row.agency_level or "",
                                     region_code=row.agency_region or "",
                                     parent_code=row.agency_parent or ""),
            category=row.category, deadline_zone=row.deadline_zone,
            created_at=events.timestamp(as_utc(row.created_at)),
            updated_at=events.timestamp(as_utc(row.updated_at)), region_code=row.region_code)
        if row.deadline is not None:
            ticket.deadline.CopyFrom(events.timestamp(as_utc(row.deadline)))
        for entry in history:
            ticket.timeline.add(
                at=events.timestamp(as_utc(entry.at)),
                state=common_pb2.TicketState.Value("TICKET_STATE_" + entry.to_state),
                actor_role=entry.actor_role, agency_code=entry.agency_code, note=entry.note)
        return ticket

    def GetAgency(self, request, context):  # noqa: N802
        if "\x00" in request.code:  # PostgreSQL refuses NUL in text; never a code
            invalid_argument(context, {"code": "an agency code such as PUPR-13.03"})
        with reading(self.engine) as conn:
            agency = storage.SqlDirectory(conn).agency(request.code)
        if agency is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no active agency with code {request.code!r}")
        return agency_proto(agency)

    def ListAgencies(self, request, context):  # noqa: N802
        problems = {}
        if request.region_code and not valid_region_code(request.region_code):
            problems["region_code"] = "a Kemendagri code such as 13.03, or empty for all"
        if request.page_size < 0 or request.page_size > 500:
            problems["page_size"] = "between 1 and 500 (0 means 50)"
        offset = 0
        if request.page_token:
            try:
                offset = int(base64.urlsafe_b64decode(request.page_token.encode()).decode())
            except ValueError:
                offset = -1
            # Not a token we issued: a negative or huge offset would fail in the database.
            if not 0 <= offset < 2**31:
                problems["page_token"] = "pass next_page_token from the previous page unchanged"
        if problems:
            invalid_argument(context, problems)
        size = request.page_size or 50
        with reading(self.engine) as conn:
            found = storage.SqlDirectory(conn).list_agencies(request.region_code, offset, size + 1)
        response = routing_pb2.ListAgenciesResponse(
            agencies=[agency_proto(a) for a in found[:size]])
        if len(found) > size:
            response.next_page_token = base64.urlsafe_b64encode(
                str(offset + size).encode()).decode()
        return response


class TelemetryInterceptor(grpc.ServerInterceptor):
    """RED metrics and one log line per RPC; unexpected exceptions become INTERNAL without
    leaking their text to the caller."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler is None or handler.unary_unary is None or method not in METHODS:
            return handler
        inner = handler.unary_unary

        def measured(request, context):
            started = time.perf_counter()
            tracking_id = getattr(request, "tracking_id", "") or None
            with logs.bound(tracking_id=tracking_id):
                code = "OK"
                try:
                    return inner(request, context)
                except Exception:
                    code_obj = context.code()
                    if code_obj is None:
                        log.exception("%s failed", method)
                        code = "INTERNAL"
                        context.abort(grpc.StatusCode.INTERNAL,
                                      "internal error; it has been logged")
                    code = code_obj.name
                    raise
                finally:
                    elapsed = time.perf_counter() - started
                    RPC_SECONDS.labels(method).observe(elapsed)
                    RPC_HANDLED.labels(method, code).inc()
                    log.info("rpc %s %s", method, code,
                             extra={"duration_ms": round(elapsed * 1000, 2)})

        return grpc.unary_unary_rpc_method_handler(
            measured, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
