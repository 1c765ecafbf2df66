"""Routing's gRPC API: thin servicers that turn protobuf into domain calls and domain
problems into gRPC statuses with details, plus the interceptor that measures and logs
every call and turns undecodable requests and a busy database into clear statuses."""

from __future__ import annotations

import base64
import logging
import re
import time

import grpc
import sqlalchemy as sa
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from lapor.v1 import routing_pb2, routing_pb2_grpc
from services.infra import logs
from services.infra.db import reading
from services.routing import storage
from services.routing.rules import AUTO_DISPATCH_CONFIDENCE, Draft, decide, valid_region_code
from services.routing.tickets.service import TicketRpcs
from services.routing.workflow import agency_proto

log = logging.getLogger(__name__)

RPC_HANDLED = Counter("lapor_grpc_server_handled_total", "RPCs completed, by status code",
                      ["method", "code"])
RPC_SECONDS = Histogram("lapor_grpc_server_handling_seconds", "RPC handling time", ["method"],
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
SERVICE_NAME = routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name
METHODS = [m.name for m in routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].methods]
for _method in METHODS:
    RPC_SECONDS.labels(_method)
    for _code in ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "INTERNAL", "UNAVAILABLE",
                  "UNAUTHENTICATED", "PERMISSION_DENIED", "FAILED_PRECONDITION", "ABORTED"):
        RPC_HANDLED.labels(_method, _code)

# A SuggestRoute within the field limits below is a few tens of KiB; anything much larger is
# refused by gRPC itself (RESOURCE_EXHAUSTED) before a worker thread or the classifier sees
# it. Answers may be larger (a long timeline, a page of 500 agencies), up to what clients
# accept by default.
MAX_REQUEST_BYTES = 256 * 1024
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

# The longest value each request field may carry, in characters: intake's own limits for
# what citizens type, the directory's and tickets' column sizes for identifiers. Checked
# first, so nothing longer reaches the classifier, the database or an error message.
MAX_CHARS = {"title": 200, "body": 10_000, "region_code": 16, "category": 40,
             "tracking_id": 32, "code": 40, "page_token": 64}
# Tracking ids (LPR-7K2-M9Q-XD4) and agency codes (PUPR-13.03): safe to quote back.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)


def too_long(request, *fields: str) -> dict[str, str]:
    """A violation for each of `fields` longer than its limit in MAX_CHARS."""
    return {f: f"at most {MAX_CHARS[f]:,} characters" for f in fields
            if len(getattr(request, f)) > MAX_CHARS[f]}


def _identifier_problem(value: str, field: str, hint: str) -> str | None:
    if not value:
        return f"required: {hint}"
    if len(value) > MAX_CHARS[field]:
        return f"at most {MAX_CHARS[field]:,} characters: {hint}"
    if not _IDENTIFIER.fullmatch(value):
        return hint
    return None


def invalid_argument(context: grpc.ServicerContext, violations: dict[str, str]) -> None:
    """Aborts with INVALID_ARGUMENT and a google.rpc.BadRequest naming each field to fix."""
    detail = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
        for f, d in violations.items()])
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT,
                               message="; ".join(f"{f}: {d}" for f, d in violations.items()))
    status.details.add().Pack(detail)
    context.abort_with_status(rpc_status.to_status(status))


def _page_offset(token: str) -> int | None:
    """The offset a next_page_token we issued stands for (0 for none), or None when the
    token is not one of ours: a negative or huge offset would fail in the database."""
    if not token:
        return 0
    if len(token) > MAX_CHARS["page_token"]:
        return None
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError:  # not base64, not UTF-8, not a number
        return None
    return offset if 0 <= offset < 2**31 else None


class RoutingServicer(TicketRpcs, routing_pb2_grpc.RoutingServiceServicer):
    def __init__(self, engine, tickets=None, classifier=None,
                 threshold: float = AUTO_DISPATCH_CONFIDENCE):
        self.engine = engine
        self.tickets = tickets
        self.classifier = classifier
        self.threshold = threshold

    def SuggestRoute(self, request, context):  # noqa: N802 (gRPC's naming)
        problems = too_long(request, "title", "body", "region_code", "category")
        if "region_code" not in problems and not valid_region_code(request.region_code):
            problems["region_code"] = "a Kemendagri code such as 13.03 (Kabupaten Sijunjung)"
        if not (request.title.strip() or request.body.strip()):
            problems["body"] = "give a title or a body to classify"
        with storage.reading_directory(self.engine) as directory:
            taxonomy = directory.categories()
            if "category" not in problems and request.category and \
                    request.category not in taxonomy:
                problems["category"] = ("a category or subcategory code of the directory, "
                                        "such as KESEHATAN or KESEHATAN.PUSKESMAS")
            if problems:
                invalid_argument(context, problems)
            prediction = self.classifier.predict(request.title, request.body)
            decision = decide(Draft(request.title, request.body, request.region_code,
                                    request.category), directory, prediction,
                              threshold=self.threshold)
        agency = decision.suggested or decision.agency
        return routing_pb2.SuggestRouteResponse(
            category=taxonomy.name(decision.category), category_code=decision.category,
            confidence=decision.confidence, agency=agency_proto(agency),
            needs_triage=not decision.auto_dispatch, explanation=decision.explanation,
            subcategory=decision.subcategory,
            subcategory_name=taxonomy.name(decision.subcategory),
            alternatives=[routing_pb2.CategoryScore(category=taxonomy.name(code),
                                                    category_code=code, confidence=confidence)
                          for code, confidence in decision.top[1:]],
            model_version=decision.model_version, rule=decision.rule)

    def check_tracking_id(self, context: grpc.ServicerContext, value: str) -> None:
        """Aborts unless `value` has a tracking id's shape. The check also keeps NUL (which
        PostgreSQL refuses in text) out of queries, and anything long or unprintable out of
        the messages that name the ticket."""
        problem = _identifier_problem(value, "tracking_id",
                                      "a tracking id such as LPR-7K2-M9Q-XD4")
        if problem:
            invalid_argument(context, {"tracking_id": problem})

    def GetAgency(self, request, context):  # noqa: N802
        problem = _identifier_problem(request.code, "code", "an agency code such as PUPR-13.03")
        if problem:
            invalid_argument(context, {"code": problem})
        with reading(self.engine) as conn:
            agency = storage.SqlDirectory(conn).agency(request.code)
        if agency is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no active agency with code {request.code!r}")
        return agency_proto(agency)

    def ListAgencies(self, request, context):  # noqa: N802
        problems = too_long(request, "region_code")
        if "region_code" not in problems and request.region_code and \
                not valid_region_code(request.region_code):
            problems["region_code"] = "a Kemendagri code such as 13.03, or empty for all"
        if request.page_size < 0 or request.page_size > 500:
            problems["page_size"] = "between 1 and 500 (0 means 50)"
        offset = _page_offset(request.page_token)
        if offset is None:
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

    def ListCategories(self, request, context):  # noqa: N802
        """The active categories and their subcategories, as the directory orders them."""
        with storage.reading_directory(self.engine) as directory:
            taxonomy = directory.categories()
        return routing_pb2.ListCategoriesResponse(categories=[
            routing_pb2.DirectoryCategory(
                code=c.code, name=c.name, subcategories=[
                    routing_pb2.DirectorySubcategory(code=s.code, name=s.name)
                    for s in taxonomy.subcategories(c.code)])
            for c in taxonomy.top_level()])

    def WhoAmI(self, request, context):  # noqa: N802
        """Who routing takes the caller to be: a way to check a token or certificate."""
        from services.routing.auth import current_principal

        principal = current_principal()
        if principal is None:  # the auth interceptor admits every call; never answer without
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "sign in with a bearer token")
        answer = routing_pb2.Principal(username=principal.username,
                                       display_name=principal.display_name,
                                       role=principal.role.value)
        if principal.agency_code:
            with reading(self.engine) as conn:
                agency = storage.SqlDirectory(conn).agency(principal.agency_code)
            if agency is not None:
                answer.agency.CopyFrom(agency_proto(agency))
            else:  # no longer active in the directory: the code is all there is to say
                answer.agency.code = principal.agency_code
        return answer


class Undecodable:
    """What the guarded deserializer hands on instead of raising: grpc would log a
    traceback and answer INTERNAL for what is the caller's mistake."""

    def __init__(self, message_type: str, reason: str):
        self.message_type = message_type
        self.reason = reason


def _guarded(deserializer):
    if deserializer is None:
        return None

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except DecodeError as exc:
            # "Error parsing message with type 'X': String field had bad UTF-8": the text
            # names the type and the fault, never the bytes.
            message_type, _, reason = str(exc).partition(": ")
            return Undecodable(message_type.removeprefix("Error parsing message with type "),
                               reason or "not a valid protobuf message")

    return deserialize


def _refuse_undecodable(request: Undecodable, context: grpc.ServicerContext) -> None:
    invalid_argument(context, {"request": f"cannot be read as {request.message_type} "
                               f"({request.reason}); send a serialized protobuf message, "
                               "with UTF-8 text in string fields"})


def _checked_stream(requests, context):
    for request in requests:
        if isinstance(request, Undecodable):
            _refuse_undecodable(request, context)
        yield request


def _guard_requests(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The same handler, answering INVALID_ARGUMENT to requests that do not decode; for every
    service on the server (health and reflection too), whatever the call's shape."""
    deserializer = _guarded(handler.request_deserializer)
    serializer = handler.response_serializer
    if handler.unary_unary or handler.unary_stream:
        behavior = handler.unary_unary or handler.unary_stream
        factory = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                   else grpc.unary_stream_rpc_method_handler)

        def unary(request, context):
            if isinstance(request, Undecodable):
                _refuse_undecodable(request, context)
            return behavior(request, context)

        return factory(unary, request_deserializer=deserializer,
                       response_serializer=serializer)
    behavior = handler.stream_unary or handler.stream_stream
    factory = (grpc.stream_unary_rpc_method_handler if handler.stream_unary
               else grpc.stream_stream_rpc_method_handler)
    return factory(lambda requests, context: behavior(_checked_stream(requests, context),
                                                       context),
                   request_deserializer=deserializer, response_serializer=serializer)


DATABASE_BUSY = (sa.exc.TimeoutError, sa.exc.OperationalError)


class TelemetryInterceptor(grpc.ServerInterceptor):
    """RED metrics and one log line per RPC; requests that do not decode become
    INVALID_ARGUMENT, a database that cannot serve the call in time UNAVAILABLE (which
    clients retry), other unexpected exceptions INTERNAL without leaking their text."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        handler = _guard_requests(handler)
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is None or not handler_call_details.method.startswith(
                f"/{SERVICE_NAME}/") or method not in METHODS:
            return handler
        inner = handler.unary_unary

        def measured(request, context):
            started = time.perf_counter()
            tracking_id = getattr(request, "tracking_id", "") or None
            with logs.bound(tracking_id=tracking_id):
                code = "OK"
                try:
                    return inner(request, context)
                except DATABASE_BUSY as exc:
                    # No free pooled connection within ROUTING_DB_POOL_TIMEOUT, or the
                    # database refused one: worth a retry, maybe on another replica.
                    log.warning("%s: database unavailable (%s)", method, type(exc).__name__)
                    code = "UNAVAILABLE"
                    context.abort(grpc.StatusCode.UNAVAILABLE, "database busy, retry")
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
