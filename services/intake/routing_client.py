"""Intake's client of routing's gRPC API. Every call carries a deadline; only UNAVAILABLE is
retried, by the channel's service config. Callers treat routing as optional."""

from __future__ import annotations

import json

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lapor.v1 import routing_pb2_grpc

SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "lapor.v1.RoutingService"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
}]})


class RoutingClient:
    def __init__(self, address: str, timeout: float):
        self.address = address
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address, options=[
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
