"""Random bytes for identifiers, tokens and nonces, read from the operating system in blocks.

Every read of the system's randomness (`os.urandom`, `secrets`, `uuid.uuid4`) lets go of the
interpreter lock; under load the thread then waits its turn to get it back behind the
others, and a submission drew five such reads (its tracking id, access token, two event ids
and the sealed answer's nonce). Here each thread reads a block at a time and hands out
slices of it: the bytes are the kernel's CSPRNG output as before, each byte is handed out
once, and a block never crosses threads (no lock) or a fork (the child starts with none,
so it cannot repeat its parent's bytes).
"""

from __future__ import annotations

import base64
import os
import threading

BLOCK = 4096


class _Block(threading.local):
    data = b""
    used = 0
    generation = 0


_block = _Block()
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


def token_bytes(n: int) -> bytes:
    """`n` random bytes (as `secrets.token_bytes`)."""
    block = _block
    start = block.used
    if start + n > len(block.data) or block.generation != _generation:
        block.data, block.generation = os.urandom(max(BLOCK, n)), _generation
        start = 0
    block.used = start + n
    return block.data[start:start + n]


def token_hex(n: int) -> str:
    return token_bytes(n).hex()


def token_urlsafe(n: int) -> str:
    """As `secrets.token_urlsafe(n)`: `n` random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(token_bytes(n)).rstrip(b"=").decode("ascii")


def uuid4() -> str:
    """A random (version 4) UUID in its text form, as `str(uuid.uuid4())`."""
    raw = bytearray(token_bytes(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
