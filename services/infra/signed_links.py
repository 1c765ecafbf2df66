"""Time-limited signed links: notify and intake's staff view hand the handling agency a link
to a report's attachments that works without a token until it expires. The expiry is inside
the MAC, so it cannot be stretched; what the link opens (its purpose and subject) is inside
too, so a link to one file never opens another. Both services share one secret,
LAPOR_ATTACHMENT_LINK_SECRET (or the file named by LAPOR_ATTACHMENT_LINK_SECRET_FILE)."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from services.infra.config import ConfigError, Env

SECRET_VARIABLE = "LAPOR_ATTACHMENT_LINK_SECRET"
MIN_SECRET_BYTES = 32


class Verdict(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"  # missing, malformed, or not made with our secret (tampered)


@dataclass(frozen=True)
class LinkSigner:
    secret: bytes

    def __post_init__(self):
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"{SECRET_VARIABLE} must be at least {MIN_SECRET_BYTES} bytes, "
                              "e.g. `openssl rand -hex 32`")

    def signature(self, purpose: str, subject: str, expires: int) -> str:
        message = f"{purpose}\n{subject}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def query(self, purpose: str, subject: str, ttl: float, now: float | None = None) -> dict:
        """The query parameters (expires, signature) of a link valid for `ttl` seconds."""
        expires = int((time.time() if now is None else now) + ttl)
        return {"expires": str(expires), "signature": self.signature(purpose, subject, expires)}

    def verify(self, purpose: str, subject: str, expires: str | None, signature: str | None,
               now: float | None = None) -> Verdict:
        """Checks the signature first, so a link whose expiry was changed is INVALID, not
        EXPIRED; then the expiry."""
        if not expires or not signature or not expires.isascii() or not expires.isdigit() \
                or len(expires) > 12:
            return Verdict.INVALID
        expected = self.signature(purpose, subject, int(expires))
        if not hmac.compare_digest(expected, signature.strip().lower()):
            return Verdict.INVALID
        if int(expires) <= (time.time() if now is None else now):
            return Verdict.EXPIRED
        return Verdict.VALID


def from_env(env: Env | None = None) -> LinkSigner | None:
    """The signer from LAPOR_ATTACHMENT_LINK_SECRET or LAPOR_ATTACHMENT_LINK_SECRET_FILE;
    None when neither is set (no signed links are made or honoured)."""
    env = env or Env()
    value = env.str(SECRET_VARIABLE, "")
    path = env.str(SECRET_VARIABLE + "_FILE", "")
    if value and path:
        raise ConfigError(f"set {SECRET_VARIABLE} or {SECRET_VARIABLE}_FILE, not both")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{SECRET_VARIABLE}_FILE: cannot read {path} "
                              f"({exc.strerror})") from None
        if not value:
            raise ConfigError(f"{SECRET_VARIABLE}_FILE: {path} is empty")
    return LinkSigner(value.encode()) if value else None
