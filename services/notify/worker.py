"""The delivery worker: threads that take due deliveries, send them outside any database
transaction, and record each attempt (the delivery log) with the outcome event.

Several notify replicas run at once. Deliveries are claimed by one UPDATE … RETURNING that
pushes their next_attempt_at forward by a lease and counts the attempt (FOR UPDATE SKIP
LOCKED on PostgreSQL; SQLite's write lock serialises claims), so no two workers send one at
the same time: a send ends within its time limit (channels.send_limit), and the lease
outlasts two of them by a margin (see below). Recording checks the attempt number, so a
worker whose lease ran out cannot overwrite the outcome of the one that took over.

An email whose reporter's contact has not arrived yet (events arrive out of order) is put
back for a short while without counting an attempt; reporter.registered wakes it.

Nobody to tell (no endpoint for the agency, no email address for the reporter, no national
admin address configured) ends the delivery `skipped`, announced as notification.skipped
like a delivered or failed one.

A reporter's notice goes on one channel (reach.py: the one they used, else email, else SMS).
Its first claim settles the channel from the contact as it is then; when the delivery fails
for good or is skipped (no gateway, opted out, no address), the same notice is created once
on the next channel they gave, in the transaction that records the failure (`replaces`
names the delivery it stands in for).

The database work is one thread's, the sending several threads' (decision 87). The claims
loop keeps every sending thread with a claim in hand and one waiting for it, and records the
outcomes they hand back a round at a time (when each thread has handed one back, when the
oldest has waited RECORD_WINDOW_S, or when a thread has nothing left to take), claiming the
next round in the same transaction; the sending threads only send. Under load one
transaction of a few statements records and claims for every thread at once, instead of one
transaction (on SQLite a turn of the write lock, on PostgreSQL a commit) and five statements
a delivery. A waiting claim starts once a thread finishes the send in its hand, so the lease
covers two sends. A stopping worker lets its sends in hand finish, records them, and puts
back what it claimed but did not send (due now, the attempt not counted); one that is killed
leaves its claims to their leases like any claim."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lapor.v1 import events_pb2
from services.infra import db, events, logs, randomness
from services.infra.lifecycle import SupervisedLoop
from services.infra.outbox import Outbox
from services.notify import channels, reach, retry, store, templates
from services.notify.channels import GatewaySettings, Result, SmtpSettings, sms
from services.notify.handler import NATIONAL_ADMIN, REPORTER, WAITING_FOR_CONTACT
from services.notify.metrics import (
    DELIVERIES,
    FALLBACKS,
    OLDEST_PENDING_AGE,
    PENDING,
    REPORTER_CHANNELS,
    SEND_SECONDS,
    SMS_PARTS,
)
from services.notify.templates import short

log = logging.getLogger(__name__)

# What the lease allows beyond the longest send: the claim's commit before the send starts,
# and the record after it ends.
LEASE_MARGIN_S = 30.0
# The claims loop records outcomes a round at a time; one waits at most this long for the
# rest of its round (the delivery's record, and its outcome event, that much later).
RECORD_WINDOW_S = 0.01
CONTACT_NEVER_ARRIVED = "contact never arrived"
NO_ADMIN_ADDRESS = "no national admin address"
NO_GATEWAY = "no gateway"
NO_PHONE = "no phone"
OPTED_OUT = "opted out"
# Outcomes announced on the bus (a retry is not an outcome yet).
ANNOUNCED = ("delivered", "failed", "skipped")


@dataclass(frozen=True)
class WorkerSettings:
    smtp: SmtpSettings
    mail_from: str
    public_url: str
    retry_delays: tuple[float, ...]
    webhook_timeout: float
    smtp_timeout: float
    poll_interval: float
    threads: int = 4
    # An email waiting for its reporter's contact is looked at again this often, and given
    # up (skipped) when the contact has not come this long after the delivery was created.
    contact_poll: float = 5.0
    contact_wait: float = 86400.0
    # Where escalations to national level are emailed (NOTIFY_NATIONAL_ADMIN_EMAILS).
    national_admin_emails: tuple[str, ...] = ()
    # SMS and WhatsApp gateways by channel (None or absent: not configured).
    gateways: dict[str, GatewaySettings | None] = field(default_factory=dict)
    gateway_timeout: float = 10.0
    sms_max_parts: int = 3

    @functools.cached_property  # read at every claim
    def send_limit(self) -> float:
        """The longest one send can take, webhook, email or gateway (timeouts are per
        operation)."""
        return max(channels.send_limit(self.webhook_timeout),
                   channels.send_limit(self.smtp_timeout),
                   channels.send_limit(self.gateway_timeout))

    @functools.cached_property
    def lease(self) -> timedelta:
        """How long a claimed delivery stays with its worker: two of the longest sends (it
        may wait for a thread to finish one before its own starts) plus a margin, so the
        delivery cannot be claimed again while a send of it is still going."""
        return timedelta(seconds=2 * self.send_limit + LEASE_MARGIN_S)


@dataclass(frozen=True)
class Claim:
    """A delivery taken by this worker, with what it needs to send it."""

    id: int
    delivery_id: str
    tracking_id: str
    channel: str
    audience: str
    target: str
    trigger_event_id: str
    trigger_type: str
    payload: str
    attempt: int
    contact: store.Contact | None = None
    endpoint: store.Subscription | None = None
    # Monotonic clock: when the lease began, then (once a sending thread takes the claim)
    # when its send began, which its time limit counts from.
    claimed_at: float = 0.0
    opted_out: bool = False  # the reporter's number sent STOP on this (phone) channel


def _in_order(claim: Claim) -> tuple:
    """What a delivery's order is kept within: one notice to one reporter or agency about one
    report. Claims with the same key are sent one after another, in the order claimed."""
    return (claim.tracking_id, claim.audience, claim.target, claim.channel)


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered | retry | failed | skipped
    detail: str


def _attempt_row(claim: Claim, outcome: Outcome, now) -> dict:
    """An attempt's row in the delivery log."""
    return {"delivery_id": claim.delivery_id, "attempt": claim.attempt, "at": now,
            "outcome": outcome.status, "detail": outcome.detail[:200]}


class _TakenOver(Exception):
    """A round's records found a lease gone: the round is rolled back and recorded again one
    by one."""


_PUT_BACK = object()  # _claim_next: a delivery was put back to wait; look at the next one
_UNREAD = object()  # _settle: an agency's endpoint not read yet in this claim
_MAX_PUT_BACK = 100  # per claim() call, so one call stays short


def _own_endpoint(conn, agency_code: str) -> store.Subscription | None:
    """The active endpoint registered for exactly this code: the national admin's webhooks
    never go to the default endpoint ('*'), which serves agencies."""
    s = store.subscriptions
    row = conn.execute(sa.select(s).where(s.c.agency_code == agency_code,
                                          s.c.active.is_(True))).first()
    if row is None:
        return None
    return store.Subscription(row.agency_code, row.url, row.secret, bool(row.active))


def _where(exc: BaseException) -> str:
    """file:line where `exc` was raised, for a log line that cannot quote its message."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"


# The statements of every claim and record, built once with their values bound when run
# (store.py says why).
_d = store.deliveries
# Up to b_limit of them (the sending threads waiting), the longest due first.
_DUE_ROW = (sa.select(_d)
            .where(store.PENDING, _d.c.next_attempt_at <= sa.bindparam("now"))
            .order_by(_d.c.next_attempt_at, _d.c.id).limit(sa.bindparam("b_limit")))
_DUE_ID = _DUE_ROW.with_only_columns(_d.c.id)
# What a claim changes: the attempt counted, the lease taken, and the wait for the contact
# over (reporter.registered must not wake, and so hand to a second worker, a delivery that
# is being sent).
_CLAIMED = {"attempts": _d.c.attempts + 1, "next_attempt_at": sa.bindparam("b_next"),
            "last_error": sa.case((_d.c.last_error == WAITING_FOR_CONTACT, sa.null()),
                                  else_=_d.c.last_error),
            "updated_at": sa.bindparam("now")}


_c, _s = store.contacts, store.subscriptions
# What a claim on PostgreSQL reads beside the row, in the same statement: the reporter's
# contact and the agency's endpoint (its own, else the default), NULL where there is none:
# two round trips a report fewer than reading them after. The claim's UPDATE is a CTE the
# statement's SELECT joins to the contact (one index lookup a row) and to the endpoint (a
# LATERAL subquery); a scalar subquery per column in RETURNING looked each up once per
# column, eleven lookups a row. SQLite reads them after: a function call each.
_CONTACT_FIELDS = ("tracking_id", "name", "email", "phone", "language", "anonymous",
                   "channel")
_ENDPOINT_FIELDS = ("agency_code", "url", "secret", "active")


def _claim_update(due_id: sa.Select) -> sa.Update:
    """The next due deliveries updated and read back as they now are (RETURNING:
    PostgreSQL, SQLite 3.35 and later); a new construct each time, as _record_update."""
    return _d.update().where(_d.c.id.in_(due_id)).values(**_CLAIMED).returning(*_d.c)


def _claiming(due_id: sa.Select) -> db.Statement:
    """The claim in one statement."""
    return db.Statement(_claim_update(due_id))


def _claiming_with_reads(due_id: sa.Select) -> db.Statement:
    """PostgreSQL: the claim, with each row's contact and endpoint (_CONTACT_FIELDS as
    contact_*, _ENDPOINT_FIELDS as endpoint_*)."""
    claimed = _claim_update(due_id).cte("claimed")
    endpoint = (sa.select(*(_s.c[name] for name in _ENDPOINT_FIELDS))
                .where(sa.or_(_s.c.agency_code == claimed.c.target,
                              _s.c.agency_code == store.DEFAULT_AGENCY),
                       _s.c.active.is_(True))
                .order_by(_s.c.agency_code == store.DEFAULT_AGENCY).limit(1)
                .lateral("endpoint"))
    return db.Statement(
        sa.select(*claimed.c,
                  *(_c.c[name].label(f"contact_{name}") for name in _CONTACT_FIELDS),
                  *(endpoint.c[name].label(f"endpoint_{name}") for name in _ENDPOINT_FIELDS))
        .select_from(claimed.outerjoin(_c, _c.c.tracking_id == claimed.c.tracking_id)
                     .outerjoin(endpoint, sa.true())))


def _contact_of(conn, row) -> store.Contact | None:
    """The reporter's contact: as the claim read it, or read now (a claim without
    RETURNING)."""
    if not hasattr(row, "contact_tracking_id"):
        return store.load_contact(conn, row.tracking_id)
    if row.contact_tracking_id is None:
        return None
    return store.Contact(row.contact_tracking_id, row.contact_name, row.contact_email,
                         row.contact_phone, row.contact_language, bool(row.contact_anonymous),
                         row.contact_channel)


def _endpoint_of(conn, row) -> store.Subscription | None:
    """The agency's endpoint (store.endpoint_for): as the claim read it, or read now."""
    if not hasattr(row, "endpoint_agency_code"):
        return store.endpoint_for(conn, row.target)
    if row.endpoint_agency_code is None:
        return None
    return store.Subscription(row.endpoint_agency_code, row.endpoint_url, row.endpoint_secret,
                              bool(row.endpoint_active))


_TAKE = _claiming(_DUE_ID)
# PostgreSQL: workers of several replicas claim side by side, each skipping the others' rows.
_TAKE_SKIP_LOCKED = _claiming_with_reads(_DUE_ID.with_for_update(skip_locked=True))
# SQLite before 3.35: the due row read, then claimed.
_DUE = db.Statement(_DUE_ROW)
_CLAIM = db.Statement(_d.update().where(_d.c.id == sa.bindparam("b_id")).values(**_CLAIMED))
# A reporter's notice whose contact has not come yet goes back to wait, its attempt uncounted.
_WAIT = db.Statement(_d.update().where(_d.c.id == sa.bindparam("b_id")).values(
    attempts=_d.c.attempts - 1, next_attempt_at=sa.bindparam("b_next"),
    last_error=WAITING_FOR_CONTACT, updated_at=sa.bindparam("now")))
# The delivery as this worker's claim left it: a lease taken over since bumped `attempts`.
_STILL_HELD = sa.and_(_d.c.id == sa.bindparam("b_id"),
                      _d.c.attempts == sa.bindparam("b_attempt"), _d.c.status == "pending")
# A claim undone (not sent: a stop, a claim that waited too long, or one committed on its own
# whose reads then failed): the attempt uncounted and due again now, unless another worker
# has taken it since.
_UNCLAIM = db.Statement(_d.update().where(_STILL_HELD).values(
    attempts=_d.c.attempts - 1, next_attempt_at=sa.bindparam("now"),
    updated_at=sa.bindparam("now")))
# The first send of a reporter's notice settles its channel.
_CHANNEL = db.Statement(_d.update().where(_d.c.id == sa.bindparam("b_id")).values(
    channel=sa.bindparam("b_channel")))


def _record_update() -> sa.Update:
    """The record of an attempt: only the worker holding it records it. A new construct
    each time: one that a Statement has run memoizes its columns, and a RETURNING derived
    from it would keep them."""
    return _d.update().where(_STILL_HELD).values(
        status=sa.bindparam("b_status"), next_attempt_at=sa.bindparam("b_next"),
        last_error=sa.bindparam("b_error"), updated_at=sa.bindparam("b_now"))


_RECORD = db.Statement(_record_update())
# PostgreSQL: a round's records as one UPDATE over arrays of their values. Run as an
# executemany, psycopg pipelines the round's UPDATEs, and its pipeline's bookkeeping took a
# third of the claims loop's time in the notify bench's sending.
_RECORD_ROUND = db.Statement(sa.text(
    "UPDATE deliveries SET status = r.status, next_attempt_at = r.next_attempt_at, "
    "last_error = r.last_error, updated_at = :b_now "
    "FROM unnest(CAST(:b_ids AS BIGINT[]), CAST(:b_attempts AS INTEGER[]), "
    "CAST(:b_statuses AS VARCHAR[]), CAST(:b_nexts AS TIMESTAMP WITH TIME ZONE[]), "
    "CAST(:b_errors AS VARCHAR[])) AS r(id, attempts, status, next_attempt_at, last_error) "
    "WHERE deliveries.id = r.id AND deliveries.attempts = r.attempts "
    "AND deliveries.status = 'pending'").bindparams(
        sa.bindparam("b_now", type_=_d.c.updated_at.type)))
_INSERT_ATTEMPT = db.Insert(store.delivery_attempts)


def _recording(outbox_table: sa.Table, announced: bool) -> db.Statement:
    """PostgreSQL: the record, its attempt row and (`announced`) its outcome event in one
    statement. The inserts take their row from the UPDATE's RETURNING, so they happen only
    when the UPDATE matched (the lease still this worker's), as in the three statements
    they replace; the statement's one row says whether it did."""
    a = store.delivery_attempts
    recorded = _record_update().returning(_d.c.delivery_id, _d.c.attempts).cte("recorded")
    attempt = a.insert().from_select(
        ["delivery_id", "attempt", "at", "outcome", "detail"],
        sa.select(recorded.c.delivery_id, recorded.c.attempts,
                  sa.bindparam("b_now", type_=a.c.at.type),
                  sa.bindparam("b_outcome", type_=a.c.outcome.type),
                  sa.bindparam("b_detail", type_=a.c.detail.type))).cte("attempt")
    statement = sa.select(sa.func.count()).select_from(recorded).add_cte(attempt)
    if announced:
        o = outbox_table
        event = o.insert().from_select(
            ["event_id", "event_type", "aggregate_id", "body", "created_at", "attempts"],
            sa.select(sa.bindparam("b_event_id", type_=o.c.event_id.type),
                      sa.bindparam("b_event_type", type_=o.c.event_type.type),
                      sa.bindparam("b_aggregate_id", type_=o.c.aggregate_id.type),
                      sa.bindparam("b_body", type_=o.c.body.type),
                      sa.bindparam("b_now", type_=o.c.created_at.type),
                      sa.literal(0)).select_from(recorded)).cte("event")
        statement = statement.add_cte(event)
    return db.Statement(statement)


class DeliveryWorker:
    def __init__(self, engine: Engine, outbox: Outbox, settings: WorkerSettings,
                 send_webhook: Callable[..., Result] = channels.send_webhook,
                 send_email: Callable[..., Result] = channels.send_email,
                 send_gateway: Callable[..., Result] = channels.send_gateway):
        self.engine = engine
        self.outbox = outbox
        self.settings = settings
        self.send_webhook = send_webhook
        self.send_email = send_email
        self.send_gateway = send_gateway
        # One lock for what the claims loop and the sending threads share: the claims made
        # and not yet taken (`_ready`), the outcomes sent and not yet recorded (`_done`), how
        # many sending threads wait for a claim (`_idle`), and the wakes (`_generation`).
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)      # sending threads wait for a claim
        self._dispatch = threading.Condition(self._lock)  # the claims loop waits for news
        self._ready: collections.deque[Claim] = collections.deque()
        self._sending: set[tuple] = set()  # _in_order of the claims being sent
        self._stale: list[Claim] = []      # waited past a send: to put back
        self._done: list[tuple[Claim, Outcome]] = []
        self._done_since = 0.0    # when the oldest outcome in `_done` was handed back
        self._idle = 0
        self._generation = 0
        self._seen = -1           # the wake the claims loop last looked after
        self._more_due = False    # the last look took all it asked for: look again
        self._looked_at = 0.0     # when the claims loop last looked (monotonic clock)
        self._last_gauges = 0.0
        # When the soonest retry this worker scheduled falls due (monotonic clock), so a short
        # retry delay is not rounded up to the poll interval.
        self._soonest_retry = float("inf")
        # Per thread: the loop it runs (`loop`), so a call from elsewhere (a test, a command)
        # uses a connection of the pool, and a sending thread's finished send (`finished`).
        self._local = threading.local()
        # The claims loop's database connection, kept while it has work.
        self._tx = db.KeptConnection(engine)
        # A claim is one statement where the database returns what it updated (SQLite 3.35
        # and later, PostgreSQL); an older SQLite reads the due rows, then claims them.
        self.claim_returning = engine.dialect.update_returning
        # PostgreSQL records an attempt of its own (a round of one, or a round redone one
        # by one) in one statement (_recording), with its outcome event or without; SQLite
        # runs the three, a function call each. A round of several is _record_round's.
        self._recordings = {announced: _recording(outbox.table, announced)
                            for announced in (False, True)} \
            if engine.dialect.name == "postgresql" else None
        # Checked here, so a broken template stops the process at start, not at a send.
        self.renderer = templates.default()
        # The claims loop: its transactions are short, and it waits for news at most a poll.
        self.claims_loop = SupervisedLoop("notify-claims", self._claims_iteration,
                                          backoff_base=0.5, backoff_cap=30.0,
                                          stall_after=settings.poll_interval + 60,
                                          on_exit=self._claims_exit)
        # One supervised loop per sending thread; a send in hand may take its whole limit
        # before the loop counts as wedged.
        self.senders = [SupervisedLoop("notify-worker", self._send_iteration, backoff_base=0.5,
                                       backoff_cap=30.0,
                                       stall_after=settings.send_limit + settings.poll_interval
                                       + 30, on_exit=self._sender_exit)
                        for _ in range(max(1, settings.threads))]

    @property
    def loops(self) -> list[SupervisedLoop]:
        return [self.claims_loop, *self.senders]

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> DeliveryWorker:
        for loop in self.loops:
            loop.start()
        return self

    def wake(self, count: int | None = None) -> None:
        """New deliveries are due (`count` of them, if known): the claims loop looks now
        rather than at the next poll."""
        with self._lock:
            self._generation += 1
            self._dispatch.notify()

    def stop(self, timeout: float | None = None) -> bool:
        """No new claims; attempts in hand finish and are recorded, claims not yet sent are
        put back. True when every thread finished within `timeout` (default: a whole
        send)."""
        limit = timeout if timeout is not None else self.settings.send_limit
        deadline = time.monotonic() + limit
        for loop in self.senders:
            loop.request_stop()
        with self._lock:
            self._work.notify_all()
        senders = all([loop.stop(deadline - time.monotonic()) for loop in self.senders])
        # The sends in hand are over (or given up on): their outcomes are recorded, and what
        # was claimed and not sent put back, as the claims loop exits.
        self.claims_loop.request_stop()
        with self._lock:
            self._dispatch.notify_all()
        return self.claims_loop.stop(max(1.0, deadline - time.monotonic())) and senders

    # -- the sending threads ---------------------------------------------------------------
    def _send_iteration(self, loop: SupervisedLoop) -> None:
        """Hands back the last send's outcome and waits for a claim (at most a poll), then
        sends it."""
        finished = getattr(self._local, "finished", None)
        self._local.finished = None
        with self._lock:
            if finished is not None:
                self._hand_back(finished)
            self._idle += 1
            self._dispatch.notify()
            try:
                claim = None if loop.stopping else self._next_ready()
                if claim is None and not loop.stopping:
                    self._work.wait(self.settings.poll_interval)
                    claim = None if loop.stopping else self._next_ready()
                if claim is None:
                    return
                self._sending.add(_in_order(claim))
            finally:
                self._idle -= 1
        claim = dataclasses.replace(claim, claimed_at=time.monotonic())
        with logs.bound(tracking_id=claim.tracking_id, event_id=claim.trigger_event_id):
            self._local.finished = (claim, self.attempt(claim))

    def _hand_back(self, finished: tuple[Claim, Outcome]) -> None:
        """(Under the lock) a send's outcome, for the claims loop to record."""
        if not self._done:
            self._done_since = time.monotonic()
        self._done.append(finished)
        self._sending.discard(_in_order(finished[0]))

    def _next_ready(self) -> Claim | None:
        """(Under the lock) the first claim waiting whose report's notice to the same
        recipient is not being sent now, taken; None when there is none. A claim that has
        waited longer than a send's limit goes back (its lease could not cover a whole
        send any more)."""
        now = time.monotonic()
        for index, claim in enumerate(self._ready):
            if _in_order(claim) in self._sending:
                continue
            del self._ready[index]
            if now - claim.claimed_at > self.settings.send_limit:
                self._stale.append(claim)
                self._dispatch.notify()
                return self._next_ready()
            return claim
        return None

    def _sender_exit(self, _loop: SupervisedLoop | None = None) -> None:
        """A stopping sending thread hands back its last outcome and closes its kept SMTP
        and webhook connections."""
        channels.smtp.close_kept()
        channels.webhook.close_kept()
        finished = getattr(self._local, "finished", None)
        self._local.finished = None
        if finished is not None:
            with self._lock:
                self._hand_back(finished)
                self._dispatch.notify()

    # -- the claims loop ----------------------------------------------------------------------
    def _claims_iteration(self, loop: SupervisedLoop) -> None:
        """Records the outcomes handed back and claims for the sending threads, in one
        transaction; waits (at most a poll) until there is reason to."""
        self._local.loop = loop
        with self._lock:
            finished, want = self._take_news(loop)
            if finished is None:
                self._dispatch.wait(self._wait_for_news())
                finished, want = self._take_news(loop)
            stale, self._stale = self._stale, []
        if stale:
            self.put_back(stale)
        if finished is None:
            if self._idle == len(self.senders) and not self._ready:
                # Nothing in hand anywhere: the connection goes back until there is news.
                self._update_gauges()
                self._tx.release()
            return
        try:
            claims = self.record_and_claim(finished, want)
        except BaseException:
            with self._lock:  # recorded at the next turn, after the loop's backoff
                self._done[:0] = finished
                self._done_since = min(self._done_since, time.monotonic())
                self._seen = -1
            raise
        with self._lock:
            if want:
                self._looked_at = time.monotonic()
                self._more_due = len(claims) >= want
            self._ready.extend(claims)
            self._work.notify(len(claims))

    def _may_be_due(self, now: float) -> bool:
        """(Under the lock) whether a look may find deliveries due: a wake since the last
        look, a look that took all it asked for, a retry falling due, or a poll's time."""
        return (self._more_due or self._seen != self._generation
                or self._soonest_retry <= now
                or now - self._looked_at >= self.settings.poll_interval)

    def _take_news(self, loop: SupervisedLoop) -> tuple[list | None, int]:
        """(Under the lock) what the claims loop does now: the outcomes to record (taken) and
        how many deliveries to claim, or (None, 0) to wait.

        It claims enough for every sending thread to have one in hand and one waiting, so a
        thread that finishes a send starts the next at once; and it records outcomes a round
        at a time: when every thread has handed one back, when the oldest has waited
        RECORD_WINDOW_S, or when a thread has nothing left to take. It claims only when
        deliveries may be due that its last look did not take (_may_be_due): a record
        after a look that found all there was claims nothing, a statement saved."""
        now = time.monotonic()
        if loop.stopping:
            finished, self._done = self._done, []
            return (finished or None), 0
        threads = len(self.senders)
        depth = threads + self._idle - len(self._ready)
        starving = self._idle > len(self._ready) and self._may_be_due(now)
        if self._done and (len(self._done) >= threads or starving
                           or now - self._done_since >= RECORD_WINDOW_S):
            finished, self._done = self._done, []
        elif starving:
            finished = []
        else:
            return None, 0
        if depth <= 0 or not self._may_be_due(now):
            return finished, 0  # nothing may be due that the last look did not take
        self._seen = self._generation
        if self._soonest_retry <= now:
            self._soonest_retry = float("inf")
        return finished, depth

    def _wait_for_news(self) -> float:
        """(Under the lock) how long the claims loop may wait: a poll, or until the oldest
        outcome's window closes, or, while a thread waits for a claim, until a retry or the
        next poll falls due."""
        now = time.monotonic()
        until = now + self.settings.poll_interval
        if self._done:
            until = min(until, self._done_since + RECORD_WINDOW_S)
        if self._idle > len(self._ready):
            until = min(until, self._soonest_retry, self._looked_at + self.settings.poll_interval)
        return max(0.0005, until - now)

    def _claims_exit(self, _loop: SupervisedLoop | None = None) -> None:
        """The stopping claims loop records the outcomes still to record and puts back the
        claims no thread took: due again now, the attempt not counted (if a lease ran out and
        another worker took one meanwhile, that one keeps it)."""
        with self._lock:
            finished, self._done = self._done, []
            unsent, self._ready = list(self._ready) + self._stale, collections.deque()
            self._stale = []
        try:
            if finished:
                self.record_and_claim(finished, 0)
            if unsent:
                self.put_back(unsent)
        finally:
            self._tx.release()

    def put_back(self, claims: list[Claim]) -> None:
        """Claims not sent, due again now with their attempt uncounted, unless their lease ran
        out and another worker took them meanwhile."""
        now = db.utcnow()
        with self._begin() as conn:
            _UNCLAIM.execute(conn, [{"b_id": claim.id, "b_attempt": claim.attempt, "now": now}
                                    for claim in claims])

    # -- one delivery, and the transactions ---------------------------------------------------
    def run_once(self) -> bool:
        """Claims, sends and records one due delivery in this thread; False when none is
        due (for commands and tests: the service's threads use the claims loop)."""
        claim = self.claim()
        if claim is None:
            return False
        with logs.bound(tracking_id=claim.tracking_id, event_id=claim.trigger_event_id):
            self.record(claim, self.attempt(claim))
        return True

    def _begin(self):
        """A write transaction: on the claims loop's kept connection in its loop, else (a
        call from elsewhere) on one from the pool."""
        if getattr(self._local, "loop", None) is None:
            return self.engine.begin()
        return self._tx.begin()

    @contextlib.contextmanager
    def _each_committed(self):
        """db.each_committed on the claims loop's kept connection in its loop, else on one
        from the pool."""
        if getattr(self._local, "loop", None) is not None:
            with self._tx.begin(each_statement=True) as conn:
                yield conn
            return
        with self.engine.connect() as conn, db.each_committed(conn) as conn:
            yield conn

    def claim(self) -> Claim | None:
        """Takes the next due delivery that can be sent now, or None (see claim_many)."""
        claims = self.claim_many(1)
        return claims[0] if claims else None

    def claim_many(self, limit: int) -> list[Claim]:
        """Takes up to `limit` due deliveries that can be sent now, the longest due first.
        Emails still waiting for their contact are put back on the way, without counting an
        attempt.

        Claims made without a record are correct statement by statement, so on PostgreSQL
        each statement commits as it runs (db.each_committed): the look that finds nothing,
        which an idle worker makes each poll, is one round trip instead of three, and a
        claim that takes deliveries saves BEGIN and COMMIT. A failure after the claim's
        UPDATE is undone by a statement of its own (_UNCLAIM), as the rollback did; what is
        given up is that a reporter.registered whose wake runs between the claim and the
        put-back of a notice still waiting for that contact misses it, so the notice goes at
        its next look (contact_poll) rather than at once."""
        with self._each_committed() as conn:
            return self._claim_some(conn, limit, committed_alone=db.is_postgres(conn))

    def record_and_claim(self, finished: list[tuple[Claim, Outcome]],
                         want: int) -> list[Claim]:
        """Records each attempt in `finished` (with its outcome event, and a fallback), then
        claims up to `want` due deliveries, in one transaction; the claims. Without records
        to make the claim is claim_many's."""
        if not finished:
            return self.claim_many(want) if want else []
        now = db.utcnow()
        try:
            with self._begin() as conn:
                recorded = self._record_round(conn, finished, now)
                claims = self._claim_some(conn, want) if want else []
        except _TakenOver:
            # A lease ran out and another worker took a delivery over: the round is written
            # again one record at a time, each checking its own lease.
            with self._begin() as conn:
                recorded = [self._record_in(conn, claim, outcome, now)
                            for claim, outcome in finished]
                claims = self._claim_some(conn, want) if want else []
        for (claim, outcome), result in zip(finished, recorded, strict=True):
            with logs.bound(tracking_id=claim.tracking_id, event_id=claim.trigger_event_id):
                self._recorded(claim, outcome, now, *result)
        return claims

    def _claim_some(self, conn, limit: int, committed_alone: bool = False) -> list[Claim]:
        """claim_many() inside the caller's transaction, or with `committed_alone` on a
        connection where each statement commits on its own. Fewer than `limit` either when
        no more are due or after a burst of emails put back to wait."""
        claims: list[Claim] = []
        for _ in range(_MAX_PUT_BACK):
            found, put_back = self._claim_next(conn, limit - len(claims), committed_alone)
            claims.extend(found)
            if not put_back or len(claims) >= limit:
                break
        return claims

    def _claim_next(self, conn, limit: int, committed_alone: bool = False):
        """One claim statement for up to `limit` deliveries: (the claims, how many of the
        rows were put back to wait)."""
        now = db.utcnow()
        claimed_at = time.monotonic()
        # The rows as claimed: their attempt counted, their lease taken.
        rows = self._take(conn, now, limit)
        claims: list[Claim] = []
        put_back = 0
        endpoints: dict = {}  # by agency, for the rows of this claim
        try:
            for row in rows:
                claim = self._settle(conn, row, now, claimed_at, endpoints)
                if claim is _PUT_BACK:
                    put_back += 1
                else:
                    claims.append(claim)
        except BaseException:
            if committed_alone:
                # The claim committed on its own (claim_many()): undo it as a rollback
                # would, so the failure costs neither an attempt nor the lease's wait, nor
                # the first send's choice of channel (made at attempt 1).
                with contextlib.suppress(Exception):
                    for claim in claims:
                        _UNCLAIM.execute(conn, {"b_id": claim.id, "b_attempt": claim.attempt,
                                                "now": db.utcnow()})
                    for row in rows[len(claims) + put_back:]:
                        _UNCLAIM.execute(conn, {"b_id": row.id, "b_attempt": row.attempts,
                                                "now": db.utcnow()})
            raise
        return claims, put_back

    def _settle(self, conn, row, now, claimed_at: float, endpoints: dict | None = None):
        """The claimed row made a Claim: its contact or endpoint read, a notice still waiting
        for its contact put back (_PUT_BACK), a first notice's channel settled."""
        contact = endpoint = None
        channel, opted_out = row.channel, False
        if row.channel in REPORTER_CHANNELS and row.audience == REPORTER:
            contact = _contact_of(conn, row)
            waited = (now - db.as_utc(row.created_at)).total_seconds()
            if contact is None and waited < self.settings.contact_wait:
                # Not an attempt: nothing was tried. reporter.registered wakes it sooner.
                _WAIT.execute(conn, {"b_id": row.id, "now": now, "b_next": now + timedelta(
                    seconds=self.settings.contact_poll)})
                return _PUT_BACK
            if contact is not None and row.attempts == 1 and row.replaces is None:
                # The first send of a notice goes on the reporter's channel as the
                # contact says now (it may have come after the event).
                channel = reach.first_channel(contact)
                if channel != row.channel:
                    _CHANNEL.execute(conn, {"b_id": row.id, "b_channel": channel})
            if contact is not None and channel in reach.PHONE_CHANNELS:
                opted_out = store.opted_out(conn, channel, contact.phone)
        elif row.channel == "webhook" and row.audience == NATIONAL_ADMIN:
            endpoint = _own_endpoint(conn, row.target)
        elif row.channel == "webhook":
            if endpoints is None:
                endpoint = _endpoint_of(conn, row)
            elif (endpoint := endpoints.get(row.target, _UNREAD)) is _UNREAD:
                endpoint = endpoints[row.target] = _endpoint_of(conn, row)
        return Claim(row.id, row.delivery_id, row.tracking_id, channel, row.audience,
                     row.target, row.trigger_event_id, row.trigger_type, row.payload,
                     row.attempts, contact, endpoint, claimed_at, opted_out)

    def _take(self, conn, now, limit: int) -> list:
        """Up to `limit` due deliveries claimed, as they now are, the longest due first."""
        params = {"now": now, "b_next": now + self.settings.lease, "b_limit": limit}
        if self.claim_returning:
            statement = _TAKE_SKIP_LOCKED if db.is_postgres(conn) else _TAKE
            return sorted(statement.all(conn, params), key=lambda r: (r.next_attempt_at, r.id))
        rows = _DUE.all(conn, params)
        if rows:
            _CLAIM.execute(conn, [{**params, "b_id": row.id} for row in rows])
        return [row._replace(attempts=row.attempts + 1, next_attempt_at=params["b_next"],
                             last_error=None if row.last_error == WAITING_FOR_CONTACT
                             else row.last_error, updated_at=now) for row in rows]

    def attempt(self, claim: Claim) -> Outcome:
        started = time.monotonic()
        try:
            if claim.channel == "webhook":
                result = self._webhook(claim)
            elif claim.channel == "email":
                result = self._email(claim)
            elif claim.channel in reach.PHONE_CHANNELS:
                result = self._phone(claim)
            else:
                result = Outcome("failed", f"unknown channel {claim.channel}")
        except Exception as exc:  # a bug must not kill the worker or leave the row leased
            # Not the exception's text nor a traceback: either may quote an address.
            log.error("delivery %s crashed: %s at %s", claim.delivery_id, type(exc).__name__,
                      _where(exc))
            result = Outcome("retry", f"internal {type(exc).__name__}")
        SEND_SECONDS.labels(claim.channel).observe(time.monotonic() - started)
        if result.status == "retry" and retry.next_attempt_at(
                self.settings.retry_delays, claim.attempt, db.utcnow()) is None:
            return Outcome("failed", result.detail)
        return result

    def _time_left(self, claim: Claim, timeout: float) -> float:
        """The send's time limit, counted from the send's start (a sending thread stamps
        `claimed_at` when it takes the claim; a claim sent where it was made, from the
        claim)."""
        elapsed = time.monotonic() - claim.claimed_at if claim.claimed_at else 0.0
        return max(0.0, channels.send_limit(timeout) - elapsed)

    def _webhook(self, claim: Claim) -> Outcome:
        if claim.endpoint is None:
            return Outcome("skipped", "no endpoint")
        body = claim.payload.encode()
        headers = channels.webhook_headers(claim.trigger_type, claim.delivery_id,
                                           claim.endpoint.secret, body)
        timeout = self.settings.webhook_timeout
        result = self.send_webhook(claim.endpoint.url, headers, body, timeout,
                                   limit=self._time_left(claim, timeout))
        return self._outcome(result)

    def _email(self, claim: Claim) -> Outcome:
        if claim.audience == NATIONAL_ADMIN:
            recipients, language = self.settings.national_admin_emails, "id"
            if not recipients:
                return Outcome("skipped", NO_ADMIN_ADDRESS)
        else:
            if claim.contact is None:  # claim() hands it over only once the wait is over
                return Outcome("skipped", CONTACT_NEVER_ARRIVED)
            if not claim.contact.email:
                return Outcome("skipped", "no email")
            recipients, language = (claim.contact.email,), claim.contact.language
        stored = json.loads(claim.payload)
        email = self.renderer.render(stored, language, self.settings.public_url)
        try:
            message = channels.build_email(self.settings.mail_from, recipients, email,
                                           claim.delivery_id)
        except channels.AddressError as exc:  # its text never holds the address
            return Outcome("failed", str(exc))
        timeout = self.settings.smtp_timeout
        result = self.send_email(self.settings.smtp, message, timeout,
                                 limit=self._time_left(claim, timeout))
        return self._outcome(result)

    def _phone(self, claim: Claim) -> Outcome:
        """An SMS or WhatsApp message to the reporter through the channel's gateway."""
        if claim.contact is None:
            return Outcome("skipped", CONTACT_NEVER_ARRIVED)
        to = store.e164(claim.contact.phone)
        if not to:
            return Outcome("skipped", NO_PHONE)
        gateway = self.settings.gateways.get(claim.channel)
        if gateway is None:
            return Outcome("skipped", NO_GATEWAY)
        if claim.opted_out:
            return Outcome("skipped", OPTED_OUT)
        text = short.render(json.loads(claim.payload), claim.contact.language,
                            self.settings.public_url, claim.channel,
                            self.settings.sms_max_parts)
        body = channels.gateway_body(gateway.body, to, text, claim.delivery_id)
        timeout = self.settings.gateway_timeout
        result = self.send_gateway(gateway, body, claim.delivery_id, timeout,
                                   limit=self._time_left(claim, timeout))
        if result.ok and claim.channel == reach.SMS:
            SMS_PARTS.inc(sms.parts(text))
        return self._outcome(result)

    def _usable(self, conn, channel: str, contact: store.Contact) -> bool:
        """Whether a fallback on `channel` can be sent at all now."""
        if channel == reach.EMAIL:
            return bool(contact.email)
        return bool(store.e164(contact.phone)) and \
            self.settings.gateways.get(channel) is not None and \
            not store.opted_out(conn, channel, contact.phone)

    def _fallback(self, conn, claim: Claim, now) -> str | None:
        """Creates the notice on the reporter's next channel after a delivery that failed for
        good or could not be made; the channel, or None when there is no other."""
        if claim.audience != REPORTER or claim.contact is None or \
                claim.channel not in REPORTER_CHANNELS:
            return None
        d = store.deliveries
        tried = set(conn.execute(sa.select(d.c.channel).where(
            d.c.trigger_event_id == claim.trigger_event_id, d.c.audience == claim.audience,
        )).scalars()) | {claim.channel}
        channel = reach.next_channel(claim.contact, tried,
                                     lambda ch: self._usable(conn, ch, claim.contact))
        if channel is None:
            return None
        conn.execute(sa.insert(d).values(
            delivery_id=randomness.uuid4(), tracking_id=claim.tracking_id, channel=channel,
            audience=claim.audience, target=claim.target,
            trigger_event_id=claim.trigger_event_id, trigger_type=claim.trigger_type,
            payload=claim.payload, status="pending", attempts=0, next_attempt_at=now,
            created_at=now, updated_at=now, replaces=claim.delivery_id))
        return channel

    @staticmethod
    def _outcome(result: Result) -> Outcome:
        if result.ok:
            return Outcome("delivered", result.detail)
        return Outcome("failed" if result.permanent else "retry", result.detail)

    def record(self, claim: Claim, outcome: Outcome) -> None:
        """Records one attempt (and its outcome event, and a fallback) in a transaction of
        its own."""
        self.record_and_claim([(claim, outcome)], 0)

    def _record_round(self, conn, finished: list[tuple[Claim, Outcome]], now) -> list[tuple]:
        """_record_in for several attempts in a few statements: the records in one
        executemany, the attempt rows and outcome events in one insert (one statement on
        PostgreSQL). _TakenOver, for the caller to roll back, when a record found its lease
        gone (the UPDATEs' count is short)."""
        if len(finished) == 1:
            return [self._record_in(conn, *finished[0], now)]
        records = [self._record_of(claim, outcome, now) for claim, outcome in finished]
        if db.is_postgres(conn):
            updated = _RECORD_ROUND.execute(conn, {
                "b_ids": [r["b_id"] for r in records],
                "b_attempts": [r["b_attempt"] for r in records],
                "b_statuses": [r["b_status"] for r in records],
                "b_nexts": [r["b_next"] for r in records],
                "b_errors": [r["b_error"] for r in records], "b_now": now})
        else:
            updated = _RECORD.execute(conn, records)
        if updated != len(records):
            raise _TakenOver()
        announced = [(claim, outcome) for claim, outcome in finished
                     if outcome.status in ANNOUNCED]
        events_rows = self.outbox.rows(
            [self._outcome_event(claim, outcome) for claim, outcome in announced],
            [events.outcome_key(claim.audience, outcome.status) for claim, outcome in announced])
        db.insert_together(conn, [
            (_INSERT_ATTEMPT, [_attempt_row(claim, outcome, now) for claim, outcome in finished]),
            self.outbox.insert_of(events_rows)])
        return [(True, record["b_next"], self._fallback(conn, claim, now)
                 if outcome.status in ("failed", "skipped") else None)
                for (claim, outcome), record in zip(finished, records, strict=True)]

    def _record_of(self, claim: Claim, outcome: Outcome, now) -> dict:
        """The values of an attempt's record (_RECORD's, _recording's): its status, the next
        attempt's time for a retry, the error for anything but a delivery."""
        retrying = outcome.status == "retry"
        return {"b_id": claim.id, "b_attempt": claim.attempt,
                "b_status": "pending" if retrying else outcome.status,
                "b_next": retry.next_attempt_at(self.settings.retry_delays, claim.attempt, now)
                if retrying else None, "b_now": now,
                "b_error": None if outcome.status == "delivered" else outcome.detail[:200]}

    def _record_in(self, conn, claim: Claim, outcome: Outcome, now) -> tuple:
        """The record of one attempt inside the caller's transaction: (whether the lease was
        still this worker's and it was written, the next attempt's time, the fallback's
        channel)."""
        record = self._record_of(claim, outcome, now)
        announced = outcome.status in ANNOUNCED
        if self._recordings is not None:
            updated = self._record_in_one(conn, claim, outcome, record, announced)
        else:
            updated = _RECORD.execute(conn, record)
            if updated == 1:
                _INSERT_ATTEMPT.execute(conn, _attempt_row(claim, outcome, now))
                if announced:
                    self.outbox.add(conn, self._outcome_event(claim, outcome),
                                    events.outcome_key(claim.audience, outcome.status))
        fallback = None
        if updated == 1 and outcome.status in ("failed", "skipped"):
            fallback = self._fallback(conn, claim, now)
        return updated == 1, record["b_next"], fallback

    def _recorded(self, claim: Claim, outcome: Outcome, now, written: bool, next_at,
                  fallback: str | None) -> None:
        """After the record's commit: the metrics, the log line and the wakes."""
        if not written:
            # The lease ran out and another worker took the delivery over; its record wins.
            log.warning("delivery %s was taken over before attempt %d was recorded",
                        claim.delivery_id, claim.attempt)
            return
        DELIVERIES.labels(claim.channel, outcome.status).inc()
        if fallback is not None:
            FALLBACKS.labels(claim.channel, fallback).inc()
            log.info("delivery %s: the reporter is told on %s instead", claim.delivery_id,
                     fallback, extra={"channel": claim.channel, "delivery_id":
                                      claim.delivery_id})
            self.wake()
        log.info("delivery %s attempt %d: %s (%s)", claim.delivery_id, claim.attempt,
                 outcome.status, outcome.detail,
                 extra={"channel": claim.channel, "audience": claim.audience,
                        "target": claim.target, "delivery_id": claim.delivery_id})
        if outcome.status in ANNOUNCED:
            self.outbox.wake()
        elif next_at is not None:
            due = time.monotonic() + (next_at - now).total_seconds()
            with self._lock:
                self._soonest_retry = min(self._soonest_retry, due)
                self._dispatch.notify()  # a sooner retry shortens the claims loop's wait

    def _record_in_one(self, conn, claim: Claim, outcome: Outcome, record: dict,
                       announced: bool) -> int:
        """PostgreSQL: the record, the attempt row and the outcome event in one statement
        (_recording); 1 if the lease was still this worker's and all of them were written."""
        params = {**record, "b_outcome": outcome.status, "b_detail": outcome.detail[:200]}
        if announced:
            envelope = self._outcome_event(claim, outcome)
            params.update(b_event_id=envelope.event_id,
                          b_event_type=events.outcome_key(claim.audience, outcome.status),
                          b_aggregate_id=envelope.aggregate_id,
                          b_body=envelope.SerializeToString())
        return self._recordings[announced].first(conn, params)[0]

    @staticmethod
    def _outcome_event(claim: Claim, outcome: Outcome) -> events_pb2.EventEnvelope:
        message = events_pb2.NotificationOutcome(
            tracking_id=claim.tracking_id, delivery_id=claim.delivery_id,
            channel=claim.channel, audience=claim.audience, attempt=claim.attempt,
            outcome=outcome.status,
            reason="" if outcome.status == "delivered" else outcome.detail[:200],
            trigger_type=claim.trigger_type)
        return events.new(f"notification.{outcome.status}", claim.tracking_id, message, "notify")

    # -- gauges ---------------------------------------------------------------------------------
    def _update_gauges(self) -> None:
        if time.monotonic() - self._last_gauges < 5.0:
            return
        self._last_gauges = time.monotonic()
        d = store.deliveries
        try:
            with db.reading(self.engine) as conn:
                count, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(
                    d.c.created_at)).where(store.PENDING)).one()
        except sa.exc.SQLAlchemyError:
            return
        PENDING.set(count)
        oldest = db.as_utc(oldest)
        OLDEST_PENDING_AGE.set((db.utcnow() - oldest).total_seconds() if oldest else 0.0)
