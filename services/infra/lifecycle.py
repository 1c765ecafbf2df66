"""Process lifecycle shared by the services: supervised background loops, one shutdown
budget, and waiting for SIGTERM/SIGINT.

Every background loop (event consumer, outbox relay, notify's senders, retention, SLA job)
runs inside `SupervisedLoop`: it catches everything its body raises, logs the cause once per
failure, backs off with jitter and tries again, and reports whether it is alive and still
making progress, so a dead or wedged loop makes the process unhealthy instead of leaving it
up and idle."""

from __future__ import annotations

import gc
import logging
import random
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger(__name__)

LOOP_FAILURES = Counter("lapor_loop_failures_total",
                        "Iterations of a background loop that raised (it backs off and retries)",
                        ["loop"])


@dataclass(frozen=True)
class LoopStatus:
    name: str
    alive: bool             # the thread runs and was not stopped
    stalled: bool           # no sign of life for longer than the loop's stall limit
    failures: int           # consecutive failed iterations (0 after a good one)
    last_error: str         # type and message of the latest failure, "" when none
    since_beat: float       # seconds since the loop last showed it was not stuck

    @property
    def healthy(self) -> bool:
        return self.alive and not self.stalled

    def as_dict(self) -> dict:
        return {"alive": self.alive, "stalled": self.stalled, "failures": self.failures,
                "last_error": self.last_error, "seconds_since_progress": round(self.since_beat, 1)}


class SupervisedLoop:
    """Runs `body(loop)` again and again in a daemon thread until `stop()`.

    The body does one unit of work and returns; it waits with `loop.wait(seconds)` (which
    returns True once stop was asked) and calls `loop.beat()` during long work so the
    supervisor knows it is not stuck. Whatever it raises is caught, logged with its cause and
    followed by a capped exponential backoff with jitter; a body that returns normally resets
    the backoff. `stall_after` seconds without a beat mark the loop stalled (unhealthy).
    `extra_stall` lets the owner add its own sign of being wedged (a handler running too long).
    """

    def __init__(self, name: str, body: Callable[[SupervisedLoop], object], *,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 stall_after: float = 60.0,
                 extra_stall: Callable[[], bool] | None = None,
                 on_exit: Callable[[SupervisedLoop], None] | None = None):
        self.name = name
        self.body = body
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stall_after = stall_after
        self.extra_stall = extra_stall
        self.on_exit = on_exit
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = time.monotonic()
        self._waiting = False
        self.failures = 0
        self.last_error = ""
        LOOP_FAILURES.labels(name)
        _LOOPS.add(self)

    # -- owner's side ---------------------------------------------------------------------
    def start(self) -> SupervisedLoop:
        if self._thread is not None:
            raise RuntimeError(f"loop {self.name} already started")
        self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Asks the loop to finish its iteration and exit, without waiting for it."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Asks the loop to finish its iteration and exit; True when it did within timeout."""
        self.request_stop()
        if self._thread is None:
            return True
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():
            log.warning("loop %s did not stop within %.1fs", self.name, timeout)
            return False
        return True

    def wake(self) -> None:
        """Cuts the current `wait` short (new work arrived)."""
        self._wake.set()

    def status(self) -> LoopStatus:
        since = time.monotonic() - self._last_beat
        alive = (self._thread is not None and self._thread.is_alive()
                 and not self._stop.is_set())
        stalled = alive and ((since > self.stall_after and not self._waiting)
                             or (self.extra_stall is not None and bool(self.extra_stall())))
        return LoopStatus(self.name, alive, stalled, self.failures, self.last_error, since)

    def healthy(self) -> bool:
        return self.status().healthy

    # -- body's side ----------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def beat(self) -> None:
        """The body is busy but not stuck."""
        self._last_beat = time.monotonic()

    def ok(self) -> None:
        """The body got going again (e.g. a consumer is connected): ends a failure streak
        without waiting for a long-running iteration to return."""
        if self.failures:
            log.info("loop %s recovered after %d failure(s)", self.name, self.failures)
        self.failures = 0
        self.last_error = ""

    def pause(self, seconds: float) -> bool:
        """Sleeps `seconds` unless stopped, whatever wakes come meanwhile (they are kept for
        the next wait); True when stop was asked."""
        self._idle(self._stop, seconds)
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds` unless woken or stopped; True when stop was asked. A loop
        waiting here is idle, not stuck, however long it waits."""
        self._idle(self._wake, seconds)
        self._wake.clear()
        return self._stop.is_set()

    def _idle(self, until: threading.Event, seconds: float) -> None:
        """Sleeps up to `seconds` or until `until` is set (a stop sets both events), counted
        as idle rather than stuck."""
        self.beat()
        if seconds > 0 and not self._stop.is_set():
            self._waiting = True
            try:
                until.wait(seconds)
            finally:
                self._waiting = False
        self.beat()

    # -- the supervisor -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.beat()
                try:
                    self.body(self)
                except Exception as exc:  # noqa: BLE001 - the whole point: nothing kills it
                    self._failed(exc)
                    continue
                self.ok()
        finally:
            if self.on_exit is not None:
                try:
                    self.on_exit(self)
                except Exception:
                    log.exception("loop %s failed while finishing", self.name)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        LOOP_FAILURES.labels(self.name).inc()
        delay = min(self.backoff_cap, self.backoff_base * 2 ** min(self.failures - 1, 16))
        delay *= random.uniform(0.5, 1.0)
        # The traceback once per streak of failures; after that one line each, so an outage
        # does not flood the log.
        log.warning("loop %s failed (%s); retrying in %.1fs", self.name, self.last_error, delay,
                    exc_info=self.failures == 1, extra={"loop": self.name,
                                                        "failures": self.failures})
        self.wait(delay)


_LOOPS: weakref.WeakSet[SupervisedLoop] = weakref.WeakSet()


class _LoopCollector(Collector):
    """lapor_loop_healthy{loop} and lapor_loop_seconds_since_progress{loop}, read at scrape."""

    def collect(self):
        healthy = GaugeMetricFamily("lapor_loop_healthy",
                                    "1 while a background loop runs and makes progress",
                                    labels=["loop"])
        since = GaugeMetricFamily("lapor_loop_seconds_since_progress",
                                  "Seconds since a background loop last showed progress",
                                  labels=["loop"])
        by_name: dict[str, list[LoopStatus]] = {}
        for loop in list(_LOOPS):
            if loop._thread is not None:
                by_name.setdefault(loop.name, []).append(loop.status())
        for name, statuses in sorted(by_name.items()):
            live = [s for s in statuses if s.alive or s.stalled]
            considered = live or statuses
            healthy.add_metric([name], float(all(s.healthy for s in considered)))
            since.add_metric([name], max(s.since_beat for s in considered))
        yield healthy
        yield since


REGISTRY.register(_LoopCollector())


def loops_healthy(loops: Iterable[SupervisedLoop]) -> Callable[[], bool]:
    """A health check that is true while every given loop is alive and not stalled."""
    loops = list(loops)
    return lambda: all(loop.healthy() for loop in loops)


class Budget:
    """One time budget for an ordered shutdown: each step gets what is left."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds

    def left(self, floor: float = 0.0) -> float:
        return max(floor, self._deadline - time.monotonic())

    def share(self, fraction: float, floor: float = 0.1) -> float:
        """A fraction of what is left, for a step that must leave time to the ones after it."""
        return max(floor, self.left() * fraction)


def freeze_start_up_heap() -> None:
    """Takes what the process built to start (modules, the app, the region list, the
    directory, the classifier, caches filled once) out of the cyclic collector's reach
    (gc.freeze). A full collection walks every object it tracks with the interpreter lock
    held: in the pipeline at 100 reports/s one took about 100 ms in intake and in routing,
    during which none of the process's threads ran. Objects made later are collected as
    ever, and what start-up made and later drops still goes by reference counting; only a
    reference cycle among those would stay (the classifier model, replaced on reload, has
    none: tests/unit/routing/test_classifier.py)."""
    gc.collect()
    gc.freeze()


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
