"""Process lifecycle shared by the services: wait for SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


def wait_for_shutdown_signal() -> str:
    """Blocks the main thread until SIGTERM or SIGINT arrives; returns the signal's name."""
    received = threading.Event()
    name = {"value": ""}

    def _handler(signum, _frame):
        name["value"] = signal.Signals(signum).name
        received.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    while not received.wait(1.0):
        pass
    log.info("%s received: draining", name["value"])
    return name["value"]
