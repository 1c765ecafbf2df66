"""Hardening: contacts leave intake, idempotent answers sealed, versioned read model,
outbox retry schedule, indexes for retention.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions. The sealing of
stored answers is copied here on purpose, so a later change to it cannot change this step.
"""

import hashlib
import json
import os

import sqlalchemy as sa
from alembic import op
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key_hash(key: str) -> str:
    return hashlib.sha256(b"lapor-idempotency-key\x00" + key.encode()).hexdigest()


def _seal(key: str, fingerprint: str, answer_json: str) -> bytes:
    material = key.encode() + b"\x00" + fingerprint.encode()
    cipher = AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                         info=b"lapor-idempotent-answer-v1").derive(material))
    nonce = os.urandom(12)
    plaintext = json.dumps(json.loads(answer_json), separators=(",", ":")).encode()
    return nonce + cipher.encrypt(nonce, plaintext, _key_hash(key).encode())


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS schema_migrations")

    # Idempotency: the key and the request's fingerprint leave the table; the answer (with
    # its access token) is sealed with a key derived from both. Rows are converted, so a
    # client retrying across the upgrade still gets its first answer.
    op.create_table(
        "idempotency_answers",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("tracking_id", sa.String(length=20), nullable=False),
        sa.Column("sealed_answer", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name="pk_idempotency_keys"),
    )
    bind = op.get_bind()
    old = sa.table("idempotency_keys", sa.column("key"), sa.column("request_hash"),
                   sa.column("tracking_id"), sa.column("response"), sa.column("created_at"))
    new = sa.table("idempotency_answers", sa.column("key_hash"), sa.column("tracking_id"),
                   sa.column("sealed_answer"), sa.column("created_at"))
    rows = bind.execute(sa.select(old)).all()
    if rows:
        bind.execute(new.insert(), [
            {"key_hash": _key_hash(r.key), "tracking_id": r.tracking_id,
             "sealed_answer": _seal(r.key, r.request_hash, r.response),
             "created_at": r.created_at} for r in rows])
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.drop_index("ix_idempotency_keys_created_at")
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_answers", "idempotency_keys")
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.create_index("ix_idempotency_keys_created_at", ["created_at"], unique=False)

    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index("ix_outbox_published_at", ["published_at"], unique=False)
    # Confirmed events need their bodies no more; they may hold contacts.
    op.get_bind().execute(sa.text("UPDATE outbox SET body = :empty "
                                  "WHERE published_at IS NOT NULL"), {"empty": b""})

    with op.batch_alter_table("processed_events") as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"],
                              unique=False)

    # Contacts live only in notify (which got them with reporter.registered).
    with op.batch_alter_table("reports") as batch_op:
        batch_op.add_column(sa.Column("version", sa.BigInteger(), server_default="0",
                                      nullable=False))
        batch_op.drop_column("reporter_name")
        batch_op.drop_column("reporter_email")
        batch_op.drop_column("reporter_phone")


def downgrade() -> None:
    raise NotImplementedError("0002 removed reporters' contacts from intake; restore a backup "
                              "taken before the upgrade instead")
