"""The SLA clock: a supervised loop in every routing replica that, every
`ROUTING_SLA_INTERVAL` seconds, warns one working day before a deadline
(`ticket.sla_warning`), acts when one passes (auto-close of a followed-up ticket, or
`ticket.escalated`: to the agency's parent, then to the national admin; an overdue
verification reminds the national admin) and flags tickets unresolved after 60 calendar days
for oversight.

Replicas run it side by side. Each action is one transaction on one ticket that re-checks its
condition under the ticket's lock (PostgreSQL `FOR UPDATE`, SQLite's write lock), so the
replica that comes second finds nothing left to do: nothing is warned or escalated twice.

`FileClock` is the clock tests and demos move (`ROUTING_CLOCK_FILE`) instead of waiting for
working days to pass."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.infra.config import ConfigError, Env
from services.infra.db import reading, utcnow
from services.infra.lifecycle import SupervisedLoop
from services.routing import metrics
from services.routing.tickets.commands import TicketError, Tickets
from services.routing.tickets.statemachine import NotAllowed

log = logging.getLogger(__name__)

LOOP_NAME = "sla-routing"
DEFAULT_INTERVAL = 60.0
# The loop shows it is alive at least this often while it waits for its next pass.
_BEAT = 5.0


class SlaJob:
    """One pass: what `Tickets.due` lists, each ticket in its own transaction; then it waits
    `interval` seconds (a full batch is followed by the next pass at once)."""

    def __init__(self, tickets: Tickets, interval: float = DEFAULT_INTERVAL):
        if not interval > 0:
            raise ValueError(f"the SLA interval must be above 0 seconds, got {interval!r}")
        self.tickets = tickets
        self.interval = interval
        self.loop = SupervisedLoop(LOOP_NAME, self._iteration, backoff_base=1.0,
                                   backoff_cap=60.0, stall_after=max(60.0, 3 * _BEAT))

    def start(self) -> SlaJob:
        # The ticket gauges count this service's tickets from now on.
        metrics.TICKETS.watch(self.tickets)
        self.loop.start()
        return self

    def stop(self, timeout: float) -> bool:
        metrics.TICKETS.forget(self.tickets)
        return self.loop.stop(timeout)

    def run_once(self) -> dict[str, int]:
        """One pass over what is due now; returns how many of each action were taken."""
        done = {"warned": 0, "auto_closed": 0, "escalated": 0, "flagged": 0}
        with reading(self.tickets.engine) as conn:
            due = self.tickets.due(conn, self.tickets.now())
        full = any(len(ids) >= self.tickets.DUE_BATCH for ids in due.values())
        # Deadlines first: a ticket both overdue and unresolved for 60 days is escalated
        # before it is flagged.
        for tracking_id in due["overdue"]:
            outcome = self._act(self.tickets.expire, tracking_id)
            if outcome == "auto_closed":
                metrics.AUTO_CLOSED.inc()
                done["auto_closed"] += 1
            elif outcome and outcome.startswith("escalated_"):
                metrics.ESCALATIONS.labels(outcome.removeprefix("escalated_")).inc()
                done["escalated"] += 1
        for tracking_id in due["warn"]:
            clock = self._act(self.tickets.warn, tracking_id)
            if clock:
                metrics.SLA_WARNINGS.labels(clock).inc()
                done["warned"] += 1
        for tracking_id in due["unresolved"]:
            if self._act(self.tickets.flag_oversight, tracking_id):
                metrics.ESCALATIONS.labels("oversight").inc()
                done["flagged"] += 1
        acted = any(done.values())
        if acted:
            log.info("SLA pass", extra=done)
        # More is due than one pass takes: the next pass goes on at once (unless this one
        # got nowhere, which would spin).
        done["full"] = int(full and acted)
        return done

    def _act(self, action: Callable[[str], object], tracking_id: str):
        """One ticket's action. A ticket that moved on since it was listed (another replica
        or a person acted first) is skipped; a database failure ends the pass (the loop backs
        off and the next pass picks up where this one stopped)."""
        if self.loop.stopping:
            return None  # shutting down: the rest waits for the next pass, here or elsewhere
        self.loop.beat()
        try:
            return action(tracking_id)
        except (TicketError, NotAllowed) as exc:
            log.info("SLA clock skipped a ticket: %s", exc,
                     extra={"tracking_id": tracking_id})
            return None

    def _iteration(self, loop: SupervisedLoop) -> None:
        done = self.run_once()
        if done["full"]:
            return
        # Waiting in short slices keeps the loop's sign of life fresh, so a long interval
        # never reads as a wedged loop.
        until = time.monotonic() + self.interval
        while (left := until - time.monotonic()) > 0:
            if loop.wait(min(left, _BEAT)):
                return


# -- the injectable clock ----------------------------------------------------------------------
_OFFSET = re.compile(r"\+\s*(\d+(?:\.\d+)?)\s*([dh])", re.ASCII)


def parse_clock(text: str, real_now: datetime) -> datetime:
    """What the clock file says "now" is: an ISO-8601 timestamp with its offset, or `+<N>d` /
    `+<N>h` ahead of the real time. Raises ValueError saying what to write."""
    text = text.strip()
    match = _OFFSET.fullmatch(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return real_now + (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is neither an ISO-8601 timestamp with an offset "
                         "(2026-03-02T16:00:00+07:00) nor an offset from now (+3d, +12h)"
                         ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{text[:40]!r} has no UTC offset: add one, e.g. "
                         "2026-03-02T16:00:00+07:00 or ...Z")
    return moment.astimezone(UTC)


class FileClock:
    """"now" as `ROUTING_CLOCK_FILE` says: for tests and demos, never for production. The
    file is read again whenever it changes (write a new file and rename it over the old one);
    while it holds something unreadable the last good reading stands."""

    def __init__(self, path: Path, real_now: Callable[[], datetime] = utcnow):
        self.path = Path(path)
        self.real_now = real_now
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._text = ""
        try:
            self._text = self.path.read_text(encoding="utf-8")
            parse_clock(self._text, real_now())
            self._seen = self._stamp()
        except OSError as exc:
            raise ConfigError(f"ROUTING_CLOCK_FILE: cannot read {path}: "
                              f"{exc.strerror or exc}") from None
        except ValueError as exc:
            raise ConfigError(f"ROUTING_CLOCK_FILE: {exc}") from None
        log.warning("ticket clocks read the time from ROUTING_CLOCK_FILE (%s); for tests and "
                    "demos only", self._text.strip()[:40])

    def _stamp(self) -> tuple:
        stat = os.stat(self.path)
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def __call__(self) -> datetime:
        with self._lock:
            try:
                stamp = self._stamp()
                if stamp != self._seen:
                    text = self.path.read_text(encoding="utf-8")
                    parse_clock(text, self.real_now())
                    self._seen, self._text = stamp, text
                    log.info("ticket clock now reads %s", text.strip()[:40])
            except (OSError, ValueError) as exc:
                if self._seen is not None:
                    log.warning("ROUTING_CLOCK_FILE unreadable, keeping the last time it "
                                "gave: %s", exc)
                self._seen = None
            return parse_clock(self._text, self.real_now())


def clock_from_env(env: Env) -> Callable[[], datetime]:
    """ROUTING_CLOCK_FILE's clock when set, else the real time."""
    path = env.str("ROUTING_CLOCK_FILE", "")
    return FileClock(Path(path)) if path else utcnow


def interval_from_env(env: Env) -> float:
    interval = env.float("ROUTING_SLA_INTERVAL", DEFAULT_INTERVAL)
    if not 0 < interval <= 3600:
        raise ConfigError(f"ROUTING_SLA_INTERVAL must be a number of seconds above 0 and at "
                          f"most 3600, got {interval!r}")
    return interval
