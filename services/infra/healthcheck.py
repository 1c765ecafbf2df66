"""Container health probe: `python -m services.infra.healthcheck URL` exits 0 when healthy.

http(s)://host:port/path -> GET must answer 2xx; grpc://host:port -> grpc.health.v1 SERVING.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def check(target: str, timeout: float = 3.0) -> bool:
    if target.startswith("grpc://"):
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(target.removeprefix("grpc://")) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout)
            except grpc.RpcError:
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m services.infra.healthcheck http://host:port/path|grpc://host:port",
              file=sys.stderr)
        return 2
    return 0 if check(args[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
