"""Dukungan (support): anyone may back a public report, once per client. The report keeps the
count; report_supports keeps one salted hash per client (never the client's key or address),
so a second support from the same client counts nothing. Routing hears the new count through
the outbox (report.supported), in the same transaction."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lapor.v1 import events_pb2
from services.infra import events, logs
from services.infra.db import utcnow
from services.infra.outbox import Outbox
from services.intake import storage

log = logging.getLogger(__name__)


class Refusal(StrEnum):
    NOT_FOUND = "not_found"
    CONFIDENTIAL = "confidential"     # its content is hidden from the public: nothing to back
    ARCHIVED = "archived"             # spam, duplicates and the like collect no support


@dataclass(frozen=True)
class Outcome:
    count: int
    counted: bool                     # False: this client had supported it already


class Refused(Exception):
    def __init__(self, reason: Refusal):
        super().__init__(reason.value)
        self.reason = reason


def supporter_hash(salt: bytes, client: str) -> str:
    """The stored form of a client's key: SHA-256 over the report's random salt and the key,
    so the table shows neither addresses nor keys, and one client's rows on two reports
    cannot be linked."""
    return hashlib.sha256(b"lapor-support\x00" + salt + b"\x00" + client.encode()).hexdigest()


def support(engine: Engine, outbox: Outbox, tracking_id: str, client: str) -> Outcome:
    """Counts `client`'s support for the report once; raises Refused."""
    for attempt in range(2):
        try:
            with engine.begin() as conn:
                outcome = _support(conn, outbox, tracking_id, client)
        except sa.exc.IntegrityError:
            # The same client twice at the same moment: the second finds the first's row.
            if attempt:
                raise
            continue
        if outcome.counted:
            outbox.wake()
            with logs.bound(tracking_id=tracking_id):
                log.info("support counted", extra={"support_count": outcome.count})
        return outcome
    raise AssertionError("unreachable")


def _support(conn: Connection, outbox: Outbox, tracking_id: str, client: str) -> Outcome:
    r, s = storage.reports, storage.report_supports
    row = conn.execute(sa.select(r.c.confidential, r.c.status, r.c.support_count,
                                 r.c.support_salt).where(r.c.tracking_id == tracking_id)).first()
    if row is None:
        raise Refused(Refusal.NOT_FOUND)
    if row.confidential:
        raise Refused(Refusal.CONFIDENTIAL)
    if row.status == "ARCHIVED":
        raise Refused(Refusal.ARCHIVED)
    salt = row.support_salt
    if salt is None:
        # The first support makes the salt; of two at once, the one that commits first wins
        # and the other reads it.
        conn.execute(r.update().where(r.c.tracking_id == tracking_id,
                                      r.c.support_salt.is_(None))
                     .values(support_salt=secrets.token_bytes(16)))
        salt = conn.execute(sa.select(r.c.support_salt)
                            .where(r.c.tracking_id == tracking_id)).scalar_one()
    hashed = supporter_hash(salt, client)
    if conn.execute(sa.select(s.c.tracking_id).where(
            s.c.tracking_id == tracking_id, s.c.supporter_hash == hashed)).first():
        return Outcome(row.support_count, counted=False)
    conn.execute(s.insert().values(tracking_id=tracking_id, supporter_hash=hashed,
                                   created_at=utcnow()))
    # Incremented in the database, so concurrent supports from different clients all count.
    conn.execute(r.update().where(r.c.tracking_id == tracking_id)
                 .values(support_count=r.c.support_count + 1))
    count = conn.execute(sa.select(r.c.support_count)
                         .where(r.c.tracking_id == tracking_id)).scalar_one()
    outbox.add(conn, events.new("report.supported", tracking_id, events_pb2.ReportSupported(
        tracking_id=tracking_id, count=count), producer="intake"))
    return Outcome(count, counted=True)
