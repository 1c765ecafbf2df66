"""Who is calling routing, and may they call this method: the server interceptor that
authenticates every RoutingService call (a bearer token in the `authorization` metadata, or,
when routing requires client certificates, the certificate's common name) and checks
principal.may_call. The servicer reads the caller with current_principal() for the checks
that need the ticket (is it the caller's agency's?).

Health and reflection stay open: probes carry no credentials. Denials say only what the
caller must fix, never echo the token, and are counted and logged by the TelemetryInterceptor
around this one."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import grpc

from services.routing.auth import (
    Authenticator,
    Check,
    Outcome,
    current_principal,
    serving_as,
)
from services.routing.principal import Principal, may_call

__all__ = ["AuthInterceptor", "current_principal"]

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/lapor.v1.RoutingService/"
_BEARER = re.compile(r"bearer[ \t]+([!-~]+)[ \t]*", re.IGNORECASE | re.ASCII)

NO_CREDENTIALS = ("send `authorization: Bearer <token>` metadata; an account's token comes "
                  "from `python -m services.routing accounts token USERNAME`")
NOT_BEARER = "the authorization metadata must be `Bearer <token>`, once"
BAD_TOKEN = ("the token is unknown, expired or revoked, or its account is disabled: ask for "
             "a new one")
BAD_CERTIFICATE = ("no active account has this client certificate's common name as its TLS "
                   "subject")
DENIED = "your role may not call {method}"


def bearer_token(values: list[str]) -> str | None:
    """The token of the `authorization` metadata values, which must be exactly one
    `Bearer <token>`; None when they are not."""
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    match = _BEARER.fullmatch(values[0])
    return match.group(1) if match else None


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates and authorizes every RoutingService call before its servicer runs.

    `authenticator` is called per RPC (the engine exists only after the server is built).
    With `trust_client_certificates` (routing requires client certificates from its CA), a
    call without a token is the service whose certificate it presented."""

    def __init__(self, authenticator: Callable[[], Authenticator], *,
                 trust_client_certificates: bool = False):
        self._authenticator = authenticator
        self.trust_client_certificates = trust_client_certificates

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(SERVICE_PREFIX):
            return handler
        method = handler_call_details.method[len(SERVICE_PREFIX):]
        return _admitting(handler, lambda context: self.admit(method, context))

    def admit(self, method: str, context: grpc.ServicerContext) -> Principal:
        """The caller, if they may call `method`; otherwise aborts the call."""
        principal = self.authenticate(method, context)
        if not may_call(method, principal):
            log.info("rpc %s denied to role %s", method, principal.role.value,
                     extra={"username": principal.username, "agency": principal.agency_code})
            context.abort(grpc.StatusCode.PERMISSION_DENIED, DENIED.format(method=method))
        return principal

    def authenticate(self, method: str, context: grpc.ServicerContext) -> Principal:
        values = [value for key, value in context.invocation_metadata()
                  if key == "authorization"]
        if values:
            token = bearer_token(values)
            if token is None:
                self._refuse(method, context, NOT_BEARER, "authorization is not one Bearer")
            check = self._authenticator().by_token(token)
            return self._accepted(method, context, check, BAD_TOKEN)
        subject = self._certificate_subject(context)
        if subject is None:
            self._refuse(method, context, NO_CREDENTIALS, "no credentials")
        check = self._authenticator().by_tls_subject(subject)
        return self._accepted(method, context, check, BAD_CERTIFICATE)

    def _certificate_subject(self, context: grpc.ServicerContext) -> str | None:
        if not self.trust_client_certificates:
            return None
        names = context.auth_context().get("x509_common_name") or []
        return names[0].decode("utf-8", "replace") if names else None

    def _accepted(self, method: str, context: grpc.ServicerContext, check: Check,
                  message: str) -> Principal:
        if check.outcome != Outcome.OK or check.principal is None:
            self._refuse(method, context, message, f"credential {check.outcome.value}",
                         token_id=check.token_id)
        return check.principal

    @staticmethod
    def _refuse(method: str, context: grpc.ServicerContext, message: str, why: str,
                **extra) -> None:
        log.info("rpc %s unauthenticated: %s", method, why,
                 extra={k: v for k, v in extra.items() if v is not None})
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)


def _admitting(handler: grpc.RpcMethodHandler,
               admit: Callable[[grpc.ServicerContext], Principal]) -> grpc.RpcMethodHandler:
    """The same handler, admitting the caller first and serving with them as
    current_principal(); for every shape of call, so a streaming method added later is
    guarded too."""
    if handler.unary_unary:
        kind, inner = grpc.unary_unary_rpc_method_handler, handler.unary_unary
    elif handler.unary_stream:
        kind, inner = grpc.unary_stream_rpc_method_handler, handler.unary_stream
    elif handler.stream_unary:
        kind, inner = grpc.stream_unary_rpc_method_handler, handler.stream_unary
    else:
        kind, inner = grpc.stream_stream_rpc_method_handler, handler.stream_stream

    def behavior(request_or_iterator, context):
        with serving_as(admit(context)):
            return inner(request_or_iterator, context)

    return kind(behavior, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
