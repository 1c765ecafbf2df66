"""Routing's ticket metrics: how many tickets are in each state at each level of government,
how many missed a deadline, whether agencies follow up in time, and what the SLA clock did.

The ticket counts are read from the database at scrape time with one GROUP BY (no counter to
drift from the table, and a restart loses nothing). Every replica reports the same table, so
dashboards and alerts take `max` across instances, never `sum`. The counters count what this
process did (follow-ups it served, warnings and escalations its SLA job sent) and are summed.

Label values come from fixed sets and are all present from the first scrape."""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import UTC

import sqlalchemy as sa
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from services.infra.db import as_utc, is_postgres, reading
from services.routing import storage
from services.routing.tickets.statemachine import ACTIVE, State

log = logging.getLogger(__name__)

STATES = tuple(s.value for s in State)
# The directory's agency levels; anything else (a level a later import brings, or an agency
# missing from the directory) counts as "other".
LEVELS = ("triage", "national", "provincial", "regency", "other")
ESCALATION_KINDS = ("parent", "national", "verification", "oversight")
CLOCKS = ("verify", "respond", "auto_close")

FOLLOW_UPS = Counter(
    "lapor_followups_total",
    "Follow-ups by agencies, on_time=true when made before the ticket's deadline", ["on_time"])
ESCALATIONS = Counter(
    "lapor_ticket_escalations_total",
    "Tickets escalated by the SLA clock: to the parent agency, to the national admin, an "
    "overdue verification, or flagged for oversight after 60 days", ["kind"])
SLA_WARNINGS = Counter(
    "lapor_sla_warnings_total", "Warnings sent one working day before a deadline", ["clock"])
AUTO_CLOSED = Counter(
    "lapor_tickets_auto_closed_total",
    "Followed-up tickets closed because the reporter did not reply in time")

for _value in ("true", "false"):
    FOLLOW_UPS.labels(_value)
for _kind in ESCALATION_KINDS:
    ESCALATIONS.labels(_kind)
for _clock in CLOCKS:
    SLA_WARNINGS.labels(_clock)


def count_follow_up(before, after):
    """Counts a follow-up as on time or late (the deadline `before` it against the time it
    was made) and returns `after`, the ticket as the follow-up left it."""
    deadline, made = as_utc(before.deadline), as_utc(after.followed_up_at)
    on_time = deadline is None or made is None or made <= deadline
    FOLLOW_UPS.labels("true" if on_time else "false").inc()
    return after


# Clocks that run out (ON_HOLD is paused; CLOSED and ARCHIVED have none).
_CLOCKED = [s.value for s in ACTIVE if s != State.ON_HOLD]


class TicketCollector(Collector):
    """lapor_tickets{state,level} and lapor_tickets_overdue{level}, counted at scrape time.

    Registered once per process; a RoutingService points it at its tickets when it starts
    (tests start many services in one process: the latest one still running is counted).
    Overdue: an active ticket whose current deadline has passed (the SLA job escalates it
    within a minute), or one escalated because an earlier deadline passed and not resolved
    since."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sources: list[weakref.ref] = []
        self._failing = False

    def watch(self, tickets) -> None:
        with self._lock:
            self._sources = [r for r in self._sources if r() not in (None, tickets)]
            self._sources.append(weakref.ref(tickets))

    def forget(self, tickets) -> None:
        with self._lock:
            self._sources = [r for r in self._sources if r() not in (None, tickets)]

    def _source(self):
        with self._lock:
            for ref in reversed(self._sources):
                if ref() is not None:
                    return ref()
        return None

    def describe(self):
        return self._families()

    def collect(self):
        by_state, overdue = self._families()
        tickets = self._source()
        if tickets is None:
            return [by_state, overdue]
        try:
            counts = self._count(tickets)
        except Exception as exc:  # noqa: BLE001 - a scrape answers even without the database
            # Once per streak: Prometheus scrapes every few seconds.
            if not self._failing:
                log.warning("ticket metrics not collected: %s", type(exc).__name__)
            self._failing = True
            return [by_state, overdue]
        self._failing = False
        states = {(state, level): 0 for state in STATES for level in LEVELS}
        late = dict.fromkeys(LEVELS, 0)
        for state, level, total, missed in counts:
            level = level if level in LEVELS else "other"
            if state in STATES:
                states[state, level] += total
            late[level] += missed or 0
        for (state, level), value in states.items():
            by_state.add_metric([state, level], value)
        for level, value in late.items():
            overdue.add_metric([level], value)
        return [by_state, overdue]

    @staticmethod
    def _families():
        return (GaugeMetricFamily("lapor_tickets", "Tickets by state and by the level of the "
                                  "agency holding them", labels=["state", "level"]),
                GaugeMetricFamily("lapor_tickets_overdue", "Active tickets that missed a "
                                  "deadline, by the level of the agency holding them",
                                  labels=["level"]))

    @staticmethod
    def _count(tickets) -> list:
        t, a = storage.tickets, storage.agencies
        now = tickets.now().astimezone(UTC)
        # An appeal raises the escalation level too; only missed deadlines count here.
        missed_deadlines = t.c.escalation_level - sa.case((t.c.appealed_at.is_not(None), 1),
                                                          else_=0)
        late = sa.or_(sa.and_(t.c.state.in_(_CLOCKED), t.c.deadline.is_not(None),
                              t.c.deadline < now),
                      sa.and_(t.c.state.in_([s.value for s in ACTIVE]), missed_deadlines > 0))
        query = (sa.select(t.c.state, a.c.level, sa.func.count(),
                           sa.func.sum(sa.case((late, 1), else_=0)))
                 .select_from(t.outerjoin(a, a.c.code == t.c.agency_code))
                 .group_by(t.c.state, a.c.level))
        with reading(tickets.engine) as conn:
            if is_postgres(conn):
                # A scrape waits seconds, not the 15 s every statement may take.
                conn.exec_driver_sql("SET LOCAL statement_timeout = 3000")
            return conn.execute(query).all()


TICKETS = TicketCollector()
REGISTRY.register(TICKETS)
