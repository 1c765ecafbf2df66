"""`make bench`: throughput of the paths every report takes, each printed beside a bare
baseline measured in the same run on the same machine, with the ratio.

1. Outbox relay (read rows, publish a batch with confirms + mandatory, mark sent) against
   bare confirmed publishes of the same bytes on one pika channel, a batch in flight at a
   time (and, for reference, one at a time); the relay packs a round's events of one type
   into few messages (decision 74), so beside it also the same packed messages published
   bare, which says what the relay costs beyond the packing.
2. Intake accept (bench/intake_accept.py): durable submissions/s and p50/p99 at 16
   concurrent connections through the real intake process, against a bare endpoint on the
   same server that parses the same JSON and commits one row, the two loaded in turn for
   three rounds (the median round's ratio), on SQLite and PostgreSQL.
3. The classifier (bench/classifier.py): held-out accuracy, macro-F1, worst-confused pairs,
   build, load time and memory, prediction latency; then SuggestRoute through a real gRPC
   channel with a token and report.submitted handling (ticket creation), each against a
   bare unary gRPC call, on SQLite and PostgreSQL.
4. Notify (bench/notify_bench.py): deliveries/s to a local SMTP server and webhook receiver
   against bare sends of the same bytes, with a per-stage profile (BENCH_NOTIFY_PROFILE=0
   skips it).
5. The pipeline (bench/pipeline.py): a national traffic mix from POST to the agency webhook
   and the reporter's email, its sustained rate, p50/p99 at half of it, loss and duplicate
   counts and peak RSS per service, against a bare HTTP -> confirmed publish -> consume
   chain; SQLite and PostgreSQL (BENCH_PIPELINE_SECONDS, default 60).
6. Scale-out (bench/scale_out.py): the pipeline on PostgreSQL with 1 and with 2 replicas of
   each service, steps taken in turn, the ratio and where reports wait (per-process CPU,
   queue and outbox backlogs).
7. CPU a report (bench/cpu_per_report.py): the pipeline held at a fixed rate, every
   process's CPU divided by the reports it carried, against the bare chain's CPU a message
   at the same rate; SQLite and PostgreSQL.

Uses a throwaway RabbitMQ vhost and temporary SQLite files; prints, never asserts.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pika

from bench import classifier, cpu_per_report, intake_accept, notify_bench, pipeline, scale_out
from bench.settings import env_int
from lapor.v1 import events_pb2
from services.infra import db, events, messaging
from services.infra.outbox import Outbox
from services.intake import storage as intake_storage

N_EVENTS = env_int("BENCH_EVENTS", 2000, minimum=1)
AMQP_HOST = os.environ.get("BENCH_AMQP_HOST", "127.0.0.1:5672")
RELAY_BATCH = 100  # Outbox's default batch

def _vhost():
    name = f"lapor-bench-{uuid.uuid4().hex[:8]}"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "rabbitmqctl", "-q", "add_vhost", name], check=True)
    subprocess.run([*sudo, "rabbitmqctl", "-q", "set_permissions", "-p", name, "guest",
                    ".*", ".*", ".*"], check=True)
    return name, f"amqp://guest:guest@{AMQP_HOST}/{name}", sudo


def _report(name: str, n: int, baseline: float, measured: float) -> None:
    print(f"{name}: {n / measured:,.0f}/s (baseline {n / baseline:,.0f}/s); "
          f"time ratio {measured / baseline:.2f}x the baseline")


def bench_outbox(url: str, workdir: Path) -> None:
    envelope = events.new("ticket.sla_warning", "LPR-BEN-CHM-ARK",
                          events_pb2.TicketSlaWarning(tracking_id="LPR-BEN-CHM-ARK"), "bench")
    body = envelope.SerializeToString()

    baseline = _bare_publishes(url, envelope.type, [body], window=RELAY_BATCH)
    one_by_one = _bare_publishes(url, envelope.type, [body], window=1)
    # The relay packs a round's events of one type (decision 74): 100 rows go out as two
    # messages. The same messages published bare say what the relay costs beyond packing.
    round_of = messaging._outgoing([(envelope.type, body, envelope.event_id)] * RELAY_BATCH,
                                   pack=True)
    packed = _bare_publishes(url, envelope.type, [m.body for m in round_of],
                             window=len(round_of),
                             total=len(round_of) * -(-N_EVENTS // RELAY_BATCH),
                             content_type=events.BATCH_CONTENT_TYPE)

    engine = db.make_engine(f"sqlite:///{workdir / 'outbox.db'}")
    db.migrate(engine, "intake", intake_storage.MIGRATIONS)
    outbox = Outbox(engine, intake_storage.outbox, "bench",
                    lambda: messaging.Publisher(url, "bench-outbox"))
    with engine.begin() as conn:
        for _ in range(N_EVENTS):
            outbox.add(conn, events.new("ticket.sla_warning", "LPR-BEN-CHM-ARK",
                                        events_pb2.TicketSlaWarning(), "bench"))
    started = time.perf_counter()
    left = outbox.flush(timeout=300)
    measured = time.perf_counter() - started
    outbox.stop(flush_timeout=1)
    assert left == 0, f"{left} events left unsent"
    _report(f"outbox relay, {N_EVENTS} events", N_EVENTS, baseline, measured)
    print(f"  (bare confirmed publishes awaited one by one: {N_EVENTS / one_by_one:,.0f}/s; "
          f"the relay's own messages, {len(round_of)} for each {RELAY_BATCH} events, "
          f"published bare: {N_EVENTS / packed:,.0f} events/s, the relay "
          f"{packed / measured:.0%} of it)")


def _bare_publishes(url: str, event_type: str, bodies: list[bytes], window: int,
                    total: int = N_EVENTS, content_type: str | None = None) -> float:
    """Seconds for `total` confirmed, mandatory, persistent publishes on one channel of
    `bodies` in turn, `window` at a time with their confirms awaited together (as the relay
    sends a batch)."""
    connection = pika.BlockingConnection(messaging.connection_parameters(url, "bench"))
    channel = messaging.declare_topology(connection.channel())
    confirmed = [0]

    def on_confirm(frame) -> None:
        confirmed[0] = max(confirmed[0], frame.method.delivery_tag)

    selected = []
    channel._impl.confirm_delivery(ack_nack_callback=on_confirm, callback=selected.append)
    channel._flush_output(lambda: bool(selected))
    properties = pika.BasicProperties(delivery_mode=2, content_type=content_type)
    started = time.perf_counter()
    for first in range(0, total, window):
        last = min(total, first + window)
        for n in range(first, last):
            channel._impl.basic_publish(messaging.EXCHANGE, event_type,
                                        bodies[n % len(bodies)], properties=properties,
                                        mandatory=True)
        channel._flush_output(lambda last=last: confirmed[0] >= last)
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


@contextlib.contextmanager
def _throwaway_vhost(given: str | None = None):
    """A vhost of its own for one part, deleted after it: the events one part leaves in the
    services' queues (intake accept leaves thousands of report.submitted) would otherwise
    be consumed while the next part measures (routing's, during SuggestRoute). With
    `given`, that URL as it is (a caller that chose the vhost), nothing made or deleted."""
    if given:
        yield given
        return
    name, url, sudo = _vhost()
    try:
        yield url
    finally:
        subprocess.run([*sudo, "rabbitmqctl", "-q", "delete_vhost", name], check=False)


def main() -> None:
    classifier.main()
    with _throwaway_vhost() as url, tempfile.TemporaryDirectory() as tmp:
        bench_outbox(url, Path(tmp))
    with _throwaway_vhost() as url:
        intake_accept.main(url)
    with _throwaway_vhost() as url, tempfile.TemporaryDirectory() as tmp:
        classifier.main_suggest(url, Path(tmp))
    notify_bench.main()  # on its own vhost: it publishes thousands of events
    pipeline.main()      # the three services end to end, on throwaway vhosts
    scale_out.main()     # the pipeline with 1 and 2 replicas of each (PostgreSQL)
    cpu_per_report.main()  # the pipeline and the chain held at one rate, CPU a report


if __name__ == "__main__":
    main()
