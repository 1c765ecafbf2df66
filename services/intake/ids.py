"""Identifiers shown to people: tracking ids that are short, unambiguous when read aloud or
typed on a phone keypad, and checkable (one check character catches every single typo and
most swapped pairs); per-report access tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import re

from services.infra import randomness

# Crockford base32: no I, L, O or U, so 1/I/L and 0/O cannot be confused.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIX = "LPR"
RANDOM_CHARS = 8  # 40 bits: collisions are retried against the unique index
assert len(ALPHABET) == 32
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})

# What a person may type for a tracking id, in one pattern that both the code and the OpenAPI
# document use: any case, the LPR prefix or not, dashes, dots, underscores or spaces between
# characters, O for 0 and I/L for 1 (so every letter but U). The nine characters are the
# eight random ones and the check character; the check itself is arithmetic, not a pattern.
_SEPARATORS = "[-_. \\t\\r\\n]*"
_CHAR = "[0-9A-TV-Za-tv-z]"
TRACKING_ID_PATTERN = (f"^{_SEPARATORS}(?:[Ll]{_SEPARATORS}[Pp]{_SEPARATORS}[Rr]{_SEPARATORS})?"
                       f"((?:{_CHAR}{_SEPARATORS}){{{RANDOM_CHARS}}}{_CHAR}){_SEPARATORS}$")
_TYPED = re.compile(TRACKING_ID_PATTERN)


def check_char(payload: str) -> str:
    """Luhn mod 32 over the Crockford alphabet."""
    n = len(ALPHABET)
    factor, total = 2, 0
    for ch in reversed(payload):
        addend = factor * ALPHABET.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return ALPHABET[(n - total % n) % n]


def _display(chars: str) -> str:
    return f"{PREFIX}-{chars[0:3]}-{chars[3:6]}-{chars[6:9]}"


def new_tracking_id() -> str:
    # One read of the system's randomness, not one per character: each read lets go of the
    # interpreter lock, and under load a thread then waits its turn to get it back (eight
    # waits were a quarter of a submission's time). 256 is a multiple of the alphabet's 32,
    # so the low five bits of each byte are uniform.
    payload = "".join(ALPHABET[byte & 31] for byte in randomness.token_bytes(RANDOM_CHARS))
    return _display(payload + check_char(payload))


def normalise_tracking_id(text: str | None) -> str | None:
    """The canonical form of what a person typed (see TRACKING_ID_PATTERN), or None when it
    is not a valid tracking id: the wrong shape, or a check character that does not match."""
    match = _TYPED.fullmatch(text or "")
    if match is None:
        return None
    chars = re.sub(r"[-_. \t\r\n]", "", match[1]).upper().translate(_ALIASES)
    if check_char(chars[:-1]) != chars[-1]:
        return None
    return _display(chars)


def new_access_token() -> str:
    return randomness.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)
