"""Intake's client of routing's gRPC API. Every call carries a deadline; only UNAVAILABLE is
retried, by the channel's service config. Callers treat routing as optional.

Plaintext by default (local development); ROUTING_TLS_CA switches the channel to TLS, and
ROUTING_TLS_CLIENT_CERT/ROUTING_TLS_CLIENT_KEY add the client certificate a routing with
mutual TLS requires."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lapor.v1 import routing_pb2_grpc
from services.infra.config import ConfigError, Env

SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "lapor.v1.RoutingService"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
}]})


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


class RoutingClient:
    def __init__(self, address: str, timeout: float,
                 tls: ClientTLS | None | Literal["env"] = "env"):
        """`tls` "env" reads ClientTLS.from_env() (the ROUTING_TLS_* variables) now, at start."""
        self.address = address
        self.timeout = timeout
        if tls == "env":
            tls = ClientTLS.from_env()
        self.channel = open_channel(address, tls, [
            ("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1)])
        self.stub = routing_pb2_grpc.RoutingServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def suggest(self, request):
        return self.stub.SuggestRoute(request, timeout=self.timeout)

    def healthy(self) -> bool:
        try:
            response = self._health.Check(health_pb2.HealthCheckRequest(), timeout=self.timeout)
        except grpc.RpcError:
            return False
        return response.status == health_pb2.HealthCheckResponse.SERVING

    def close(self) -> None:
        self.channel.close()
