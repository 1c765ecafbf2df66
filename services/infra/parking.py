"""Operator tool for parking-lot queues: messages that failed every retry or were
malformed. `python -m services.infra.parking list <consumer>` shows them (ids and reasons,
never contents); `replay <consumer> [--limit N]` sends them back to the consumer's queue.
Consumers dedupe on the event id, so replaying a message already handled is harmless."""

from __future__ import annotations

import argparse
import sys

import pika

from services.infra.config import Env
from services.infra.messaging import (
    ATTEMPT_HEADER,
    QUEUES,
    REASON_HEADER,
    connection_parameters,
    declare_topology,
)


def _open(url: str):
    connection = pika.BlockingConnection(connection_parameters(url, "lapor-parking"))
    channel = declare_topology(connection.channel())
    channel.confirm_delivery()
    return connection, channel


def list_parked(url: str, consumer: str, limit: int) -> list[dict]:
    """Peeks at up to `limit` parked messages; they stay parked."""
    spec = QUEUES[consumer]
    connection, channel = _open(url)
    found = []
    try:
        for method, properties, _body in channel.consume(spec.parking_queue,
                                                         inactivity_timeout=1):
            if method is None or len(found) >= limit:
                break
            headers = properties.headers or {}
            found.append({"event_id": properties.message_id, "type": properties.type,
                          "reason": headers.get(REASON_HEADER, "delivery limit reached")})
        channel.cancel()  # unacked messages go back to the parking lot
    finally:
        connection.close()
    return found


def replay(url: str, consumer: str, limit: int) -> int:
    """Moves up to `limit` parked messages back to the consumer's queue; returns how many."""
    spec = QUEUES[consumer]
    connection, channel = _open(url)
    moved = 0
    try:
        while moved < limit:
            method, properties, body = channel.basic_get(spec.parking_queue)
            if method is None:
                break
            headers = {k: v for k, v in (properties.headers or {}).items()
                       if k not in (ATTEMPT_HEADER, REASON_HEADER)}
            properties.headers = headers
            channel.basic_publish("", spec.name, body, properties=properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            moved += 1
    finally:
        connection.close()
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.infra.parking")
    parser.add_argument("action", choices=("list", "replay"))
    parser.add_argument("consumer", choices=sorted(QUEUES))
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)
    url = Env().amqp_url()
    if args.action == "list":
        for row in list_parked(url, args.consumer, args.limit):
            print(f"{row['event_id']}  {row['type']}  {row['reason']}")
    else:
        print(f"replayed {replay(url, args.consumer, args.limit)} message(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
