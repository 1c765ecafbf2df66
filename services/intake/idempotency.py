"""Idempotent answers kept without anything usable in them.

A retry of POST /reports with the same Idempotency-Key must get the first answer again,
access token included, for 24 hours. The table keeps only a hash of the key and the answer
sealed (AES-256-GCM) with a key derived (HKDF-SHA256) from the Idempotency-Key and the
request's fingerprint, neither of which is stored. Whoever holds a copy of the database
cannot open an answer; the client that sends the same key and the same report can. A
different report under the same key fails to open it: that is the "key reused" conflict.
"""

from __future__ import annotations

import hashlib
import json

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.infra import randomness

_KEY_HASH_PREFIX = b"lapor-idempotency-key\x00"
_KDF_INFO = b"lapor-idempotent-answer-v1"
_NONCE_BYTES = 12


def key_hash(key: str) -> str:
    """What the table stores instead of the Idempotency-Key."""
    return hashlib.sha256(_KEY_HASH_PREFIX + key.encode()).hexdigest()


def _cipher(key: str, fingerprint: str) -> AESGCM:
    material = key.encode() + b"\x00" + fingerprint.encode()
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=_KDF_INFO).derive(material))


def seal(key: str, fingerprint: str, answer: dict) -> bytes:
    nonce = randomness.token_bytes(_NONCE_BYTES)
    plaintext = json.dumps(answer, separators=(",", ":")).encode()
    return nonce + _cipher(key, fingerprint).encrypt(nonce, plaintext,
                                                     key_hash(key).encode())


def unseal(key: str, fingerprint: str, sealed: bytes) -> dict | None:
    """The answer, or None when this key and request did not seal it (a different report)."""
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        plaintext = _cipher(key, fingerprint).decrypt(nonce, ciphertext,
                                                      key_hash(key).encode())
    except InvalidTag:
        return None
    return json.loads(plaintext)
