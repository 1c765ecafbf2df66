"""Container health probe: `python -m services.infra.healthcheck URL` exits 0 when healthy.

http(s)://host:port/path -> GET must answer 2xx; grpc://host:port[/service] -> grpc.health.v1
SERVING (for that service name, the whole server when none) over plaintext;
grpcs://host:port[/service] -> the same over TLS, trusting the CA in ROUTING_TLS_CA
(the system's CAs when unset) and presenting ROUTING_TLS_CLIENT_CERT/ROUTING_TLS_CLIENT_KEY
when set (mutual TLS); ROUTING_TLS_SERVER_NAME overrides the name expected in the server's
certificate (probing 127.0.0.1 a certificate issued for "routing", for instance).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

USAGE = ("usage: python -m services.infra.healthcheck "
         "http(s)://host:port/path | grpc://host:port[/service] | grpcs://host:port[/service]")


def _grpc_serving(channel, service: str, timeout: float) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def check(target: str, timeout: float = 3.0) -> bool:
    if target.startswith(("grpc://", "grpcs://")):
        import grpc

        from services.intake.routing_client import ClientTLS, open_channel

        address, _, service = target.split("://", 1)[1].partition("/")
        if target.startswith("grpc://"):
            channel = open_channel(address, None)
        else:
            tls = ClientTLS.from_env()  # a ConfigError names the variable to fix
            channel = (open_channel(address, tls) if tls is not None
                       else grpc.secure_channel(address, grpc.ssl_channel_credentials()))
        with channel:
            return _grpc_serving(channel, service, timeout)
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    return 0 if check(args[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
