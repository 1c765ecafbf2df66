"""`python -m services.intake`: the HTTP server (waitress), the outbox relay and the
read-model consumer in one process, drained together on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from waitress import wasyncore
from waitress.server import create_server

from services.infra import logs
from services.infra.config import Env
from services.infra.lifecycle import wait_for_shutdown_signal
from services.intake.app import create_app, settings_from_env
from services.intake.reports import purge_idempotency_keys

log = logging.getLogger("services.intake")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake",
                                     description="LAPOR intake: the HTTP edge")
    parser.parse_args(argv)
    env = Env()
    logs.setup("intake", env.str("LAPOR_LOG_LEVEL", "INFO"))
    host, port = env.str("INTAKE_HOST", "127.0.0.1"), env.int("INTAKE_PORT", 8080)
    threads = env.int("INTAKE_THREADS", 8)
    drain = env.float("INTAKE_DRAIN_SECONDS", 10.0)
    app = create_app(settings_from_env(env))
    ctx = app.extensions["lapor"]
    server = create_server(app, host=host, port=port, threads=threads,
                           channel_timeout=30, ident="lapor-intake")
    serving = threading.Thread(target=server.run, name="http", daemon=True)
    serving.start()
    purger = threading.Event()
    threading.Thread(target=_purge_loop, args=(ctx.engine, purger), daemon=True).start()
    log.info("intake listening on http://%s:%s", host, port)

    wait_for_shutdown_signal()
    # Stop accepting, let requests in flight finish, then the consumer, then flush.
    _drain_http(server, drain)
    serving.join(5)
    purger.set()
    left = ctx.stop_workers(drain)
    ctx.engine.dispose()
    log.info("intake stopped", extra={"outbox_left": left})
    return 0


def _drain_http(server, timeout: float) -> None:
    """Stops accepting connections and waits until every request in flight has been
    answered and its response written out, then closes all sockets."""
    server.accepting = False  # waitress only polls the listening socket while accepting
    dispatcher = server.task_dispatcher
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        writing = any(getattr(channel, "total_outbufs_len", 0)
                      for channel in list(server._map.values()))
        if not (dispatcher.active_count or dispatcher.queue or writing):
            break
        time.sleep(0.05)
    dispatcher.shutdown(cancel_pending=True, timeout=1)
    wasyncore.close_all(server._map)


def _purge_loop(engine, stop: threading.Event) -> None:
    while not stop.wait(600):
        try:
            purge_idempotency_keys(engine)
        except Exception:
            log.exception("purging old idempotency keys failed")


if __name__ == "__main__":
    sys.exit(main())
