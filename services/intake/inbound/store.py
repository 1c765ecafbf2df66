"""The tables of the gateway conversations: messages handled (with the reply given), drafts
waiting for an answer, which reports a sender made; and the region names the matcher reads
from intake's own region list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.infra.db import as_utc, utcnow
from services.infra.regions import Region
from services.intake import regions, storage
from services.intake.inbound.places import Gazetteer

MESSAGE_WINDOW = timedelta(days=7)   # how long a provider may redeliver a message
DRAFT_LIFETIME = timedelta(hours=24)  # how long a question waits for its answer

messages = storage.channel_messages
drafts = storage.channel_drafts
senders = storage.channel_reports


class AlreadyHandled(Exception):  # noqa: N818 - an outcome, not a failure
    """The message was handled before (maybe at this very moment, by another request)."""

    def __init__(self, reply: str, tracking_id: str):
        super().__init__(tracking_id)
        self.reply = reply
        self.tracking_id = tracking_id


@dataclass(frozen=True)
class Draft:
    body: str
    media_urls: tuple[str, ...]
    choices: tuple[str, ...]


def previous_reply(conn: Connection, channel: str, message_id: str) -> AlreadyHandled | None:
    row = conn.execute(sa.select(messages.c.reply, messages.c.tracking_id).where(
        messages.c.channel == channel, messages.c.message_id == message_id)).first()
    return AlreadyHandled(row.reply, row.tracking_id) if row else None


def record_message(conn: Connection, channel: str, message_id: str, reply: str,
                   tracking_id: str = "") -> None:
    """Marks the message handled with its reply. A duplicate raises IntegrityError: the
    caller's transaction, and whatever else it did, is rolled back."""
    conn.execute(messages.insert().values(channel=channel, message_id=message_id, reply=reply,
                                          tracking_id=tracking_id, created_at=utcnow()))


def load_draft(conn: Connection, channel: str, sender_hash: str) -> Draft | None:
    row = conn.execute(sa.select(drafts).where(drafts.c.channel == channel,
                                               drafts.c.sender_hash == sender_hash)).first()
    if row is None or as_utc(row.expires_at) <= utcnow():
        return None
    return Draft(row.body, tuple(json.loads(row.media_urls or "[]")),
                 tuple(c for c in row.choices.split(",") if c))


def save_draft(conn: Connection, channel: str, sender_hash: str, draft: Draft) -> None:
    drop_draft(conn, channel, sender_hash)
    conn.execute(drafts.insert().values(
        channel=channel, sender_hash=sender_hash, body=draft.body,
        media_urls=json.dumps(list(draft.media_urls)), choices=",".join(draft.choices),
        expires_at=utcnow() + DRAFT_LIFETIME))


def drop_draft(conn: Connection, channel: str, sender_hash: str) -> int:
    return conn.execute(drafts.delete().where(drafts.c.channel == channel,
                                              drafts.c.sender_hash == sender_hash)).rowcount


def record_sender(conn: Connection, tracking_id: str, channel: str, sender_hash: str) -> None:
    conn.execute(senders.insert().values(tracking_id=tracking_id, channel=channel,
                                         sender_hash=sender_hash))


def is_senders(conn: Connection, tracking_id: str, channel: str, sender_hash: str) -> bool:
    return conn.execute(sa.select(sa.literal(1)).where(
        senders.c.tracking_id == tracking_id, senders.c.channel == channel,
        senders.c.sender_hash == sender_hash)).first() is not None


def purge(conn: Connection) -> int:
    """Deletes messages past the redelivery window and expired drafts; returns how many."""
    now = utcnow()
    gone = conn.execute(messages.delete().where(
        messages.c.created_at < now - MESSAGE_WINDOW)).rowcount
    return gone + conn.execute(drafts.delete().where(drafts.c.expires_at <= now)).rowcount


# -- the region names ------------------------------------------------------------------------
def _places(rows) -> Gazetteer:
    return Gazetteer(Region(row.code, row.name, row.level) for row in rows)


def gazetteer(engine: Engine) -> Gazetteer:
    """The matcher over the regencies, cities and provinces of intake's region list, built
    at most every regions.MATCHER_SECONDS per database; an empty list (not imported yet) is
    looked at again after 10 s: the import may be under way."""
    return regions.matcher(engine, _places, empty_seconds=10.0)
