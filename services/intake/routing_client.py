"""Intake's client of routing's gRPC API. Every call carries a deadline and credentials; only
UNAVAILABLE is retried, by the channel's service config.

Two kinds of credentials, never mixed:
* citizen-side calls (route suggestions, and the reporter's reply, confirmation, rating and
  appeal, after intake has checked the report's access token) carry intake's own service
  token, read once at start from the file INTAKE_ROUTING_TOKEN_FILE names;
* staff calls carry the staff member's bearer token, passed through unchanged: routing
  decides who they are and what they may see, so intake's token never stands in for them.

Plaintext by default (local development); ROUTING_TLS_CA switches the channel to TLS, and
ROUTING_TLS_CLIENT_CERT/ROUTING_TLS_CLIENT_KEY add the client certificate a routing with
mutual TLS requires."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lapor.v1 import routing_pb2_grpc
from services.infra.config import ConfigError, Env

log = logging.getLogger(__name__)

SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "lapor.v1.RoutingService"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
}]})

TOKEN_FILE_VARIABLE = "INTAKE_ROUTING_TOKEN_FILE"
# What a bearer token may be: visible ASCII (gRPC metadata carries nothing else), bounded.
TOKEN = re.compile(r"[!-~]{1,512}", re.ASCII)

# The RPCs intake makes for citizens, with its own service token, and those it makes for
# staff members, with theirs. A method in neither set is never called.
CITIZEN_METHODS = frozenset({"SuggestRoute", "ReporterReply", "ReporterConfirm", "RateTicket",
                             "AppealTicket", "WhoAmI", "ListCategories"})
STAFF_METHODS = frozenset({"WhoAmI", "ListTickets", "GetTicket", "GetAuditTrail",
                           "VerifyTicket", "HoldTicket", "ArchiveTicket", "AcceptTicket",
                           "ForwardTicket", "DeclineTicket", "FollowUpTicket", "CloseTicket",
                           "MessageReporter", "LinkDuplicate", "DismissDuplicate"})
# How long /readyz trusts its last check of intake's service token.
TOKEN_CHECK_SECONDS = 30.0


class TokenStatus:
    """What /readyz says about intake's service token."""

    UNSET = "unset"            # INTAKE_ROUTING_TOKEN_FILE not set: routing refuses citizens
    ACCEPTED = "accepted"      # routing knows it
    REFUSED = "refused"        # unknown, expired or revoked, or its account is disabled
    UNCHECKED = "unchecked"    # routing did not answer


def read_token_file(path: str, variable: str = TOKEN_FILE_VARIABLE) -> str:
    """The token in the file `path` (surrounding white space ignored); ConfigError naming
    `variable` when the file cannot be read or holds no token. Never echoes the content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{variable}: no file {path}; create it with `python -m "
                          "services.routing accounts ensure-service intake --token-file "
                          f"{path}` or unset {variable}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{variable}: cannot read {path}: "
                          f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    token = text.strip()
    if not TOKEN.fullmatch(token):
        raise ConfigError(f"{variable}: {path} does not hold a token (one line of visible "
                          "ASCII characters, at most 512)")
    return token


def _read_pem(env: Env, name: str) -> bytes | None:
    """The PEM file the variable names, None when unset; unreadable or not PEM stops."""
    path = env.str(name, "")
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{name}: {path} is not a PEM file")
    return data


@dataclass(frozen=True)
class ClientTLS:
    """How to reach routing over TLS: the CA that signed its certificate, optionally a client
    certificate and key (mutual TLS) and the name to expect in routing's certificate when
    it differs from the address's host."""

    root_certificates: bytes
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_env(cls, env: Env | None = None) -> ClientTLS | None:
        """ROUTING_TLS_CA (file) turns TLS on; ROUTING_TLS_CLIENT_CERT and
        ROUTING_TLS_CLIENT_KEY (files, both or neither), ROUTING_TLS_SERVER_NAME. None when
        ROUTING_TLS_CA is unset: plaintext."""
        env = env or Env()
        ca = _read_pem(env, "ROUTING_TLS_CA")
        cert = _read_pem(env, "ROUTING_TLS_CLIENT_CERT")
        key = _read_pem(env, "ROUTING_TLS_CLIENT_KEY")
        server_name = env.str("ROUTING_TLS_SERVER_NAME", "") or None
        if (cert is None) != (key is None):
            raise ConfigError("ROUTING_TLS_CLIENT_CERT and ROUTING_TLS_CLIENT_KEY go together: "
                              "set both or neither")
        if ca is None:
            if cert is not None or server_name is not None:
                raise ConfigError("ROUTING_TLS_CA is required for TLS to routing: set it to the "
                                  "CA certificate that signed routing's certificate")
            return None
        return cls(ca, cert, key, server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates,
                                            private_key=self.private_key,
                                            certificate_chain=self.certificate_chain)

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def open_channel(address: str, tls: ClientTLS | None,
                 options: list[tuple[str, object]] = ()) -> grpc.Channel:
    """A channel to routing: TLS when `tls` is given, plaintext otherwise."""
    if tls is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, tls.credentials(), options=[*options, *tls.options()])


def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class RoutingClient:
    def __init__(self, address: str, timeout: float,
                 tls: ClientTLS | None | Literal["env"] = "env",
                 service_token: str | None = None, action_timeout: float | None = None):
        """`tls` "env" reads ClientTLS.from_env() (the ROUTING_TLS_* variables) now, at start.
        `service_token` is intake's own token (read_token_file), for citizen-side calls;
        without it routing refuses them. `timeout` bounds route suggestions and health
        checks (someone is typing); `action_timeout` (default: the larger of `timeout` and
        5 s) bounds staff and reporter calls, which change tickets: cutting one short
        answers 503 for an action routing then completes."""
        self.address = address
        self.timeout = timeout
        self.action_timeout = action_timeout if action_timeout is not None else max(5.0, timeout)
        self._service_token = service_token
        if tls == "env":
            tls = ClientTLS.from_env()
        self.channel = open_channel(address, tls, [
            ("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1)])
        self.stub = routing_pb2_grpc.RoutingServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self._token_checked: tuple[float, str] | None = None
        self._lock = threading.Lock()

    @property
    def has_service_token(self) -> bool:
        return self._service_token is not None

    def for_citizen(self, method: str, request):
        """`method` (e.g. "ReporterReply") with intake's own service token."""
        if method not in CITIZEN_METHODS:
            raise ValueError(f"{method} is not called for citizens")
        timeout = (self.timeout if method in ("SuggestRoute", "ListCategories")
                   else self.action_timeout)
        return getattr(self.stub, method)(request, timeout=timeout,
                                          metadata=_metadata(self._service_token))

    def for_staff(self, method: str, request, token: str):
        """`method` (e.g. "AcceptTicket") with the staff member's own bearer token."""
        if method not in STAFF_METHODS:
            raise ValueError(f"{method} is not called for staff")
        if not token:
            raise ValueError("a staff call needs the staff member's token")
        return getattr(self.stub, method)(request, timeout=self.action_timeout,
                                          metadata=_metadata(token))

    def suggest(self, request):
        return self.for_citizen("SuggestRoute", request)

    def categories(self):
        """The directory's active categories and subcategories (ListCategoriesResponse)."""
        return self.for_citizen("ListCategories", empty_pb2.Empty())

    def healthy(self) -> bool:
        try:
            response = self._health.Check(health_pb2.HealthCheckRequest(), timeout=self.timeout)
        except grpc.RpcError:
            return False
        return response.status == health_pb2.HealthCheckResponse.SERVING

    def service_token_status(self) -> str:
        """Whether routing accepts intake's service token (TokenStatus), checked at most
        every TOKEN_CHECK_SECONDS: /readyz is public and may be asked often."""
        if self._service_token is None:
            return TokenStatus.UNSET
        now = time.monotonic()
        with self._lock:
            if self._token_checked and now - self._token_checked[0] < TOKEN_CHECK_SECONDS:
                return self._token_checked[1]
        try:
            self.for_citizen("WhoAmI", empty_pb2.Empty())
            status = TokenStatus.ACCEPTED
        except grpc.RpcError as exc:
            status = (TokenStatus.REFUSED if exc.code() in (
                grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
                else TokenStatus.UNCHECKED)
        if status != TokenStatus.UNCHECKED:
            with self._lock:
                self._token_checked = (now, status)
        return status

    def close(self) -> None:
        self.channel.close()
