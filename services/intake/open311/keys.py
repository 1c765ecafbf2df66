"""Open311 API keys, one per client application (stored as SHA-256, shown once), and the
tokens POST requests answers."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.infra.db import utcnow
from services.intake.storage import open311_clients, open311_tokens

KEY_PREFIX = "o311_"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,99}", re.ASCII)
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,40}", re.ASCII)


class ClientKeyError(ValueError):
    """A key operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def add(conn: Connection, name: str) -> str:
    """A new client and its key, returned once (only its hash is kept)."""
    if not NAME.fullmatch(name):
        raise ClientKeyError(f"{name!r} is not a client name: 3 to 100 lowercase letters, "
                             "digits, dots, dashes or underscores, e.g. kota-sijunjung-app")
    if conn.execute(sa.select(open311_clients.c.id).where(
            open311_clients.c.name == name)).first() is not None:
        raise ClientKeyError(f"a client named {name} exists (names are never reused, even "
                             "after revoke); pick another name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(open311_clients.insert().values(
        name=name, key_hash=key_hash(key), key_prefix=key[:12], created_at=utcnow()))
    return key


def clients(conn: Connection) -> list[Client]:
    c = open311_clients.c
    return [Client(r.id, r.name, r.key_prefix, r.created_at, r.revoked_at)
            for r in conn.execute(sa.select(c.id, c.name, c.key_prefix, c.created_at,
                                            c.revoked_at).order_by(c.name))]


def revoke(conn: Connection, name: str) -> bool:
    """Revokes the client's key; False when there is no such active client. The row stays:
    tokens it was given still resolve."""
    c = open311_clients.c
    return bool(conn.execute(open311_clients.update().where(
        c.name == name, c.revoked_at.is_(None)).values(revoked_at=utcnow())).rowcount)


def client_id(conn: Connection, key: str) -> int | None:
    """The active client holding `key`, or None."""
    if not key or len(key) > 200:
        return None
    c = open311_clients.c
    row = conn.execute(sa.select(c.id).where(c.key_hash == key_hash(key),
                                             c.revoked_at.is_(None))).first()
    return row.id if row else None


def new_token() -> str:
    return secrets.token_urlsafe(18)


def store_token(conn: Connection, token: str, tracking_id: str, client: int) -> None:
    conn.execute(open311_tokens.insert().values(token=token, tracking_id=tracking_id,
                                                client_id=client, created_at=utcnow()))


def tracking_id_of_token(conn: Connection, token: str) -> str | None:
    if not TOKEN.fullmatch(token):
        return None
    row = conn.execute(sa.select(open311_tokens.c.tracking_id).where(
        open311_tokens.c.token == token)).first()
    return row.tracking_id if row else None
