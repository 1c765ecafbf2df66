"""The gateways' shared secrets and the per-sender allowance, read once when the app is
built: a secret that cannot be read stops the process with the variable's name."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from limits import parse_many

from services.infra.config import ConfigError, Env

CHANNELS = ("sms", "whatsapp")
MIN_SECRET_BYTES = 16
DEFAULT_SENDER_LIMIT = "6 per minute; 60 per hour; 200 per day"
SIGNATURE_HEADER = "X-Lapor-Signature"


@dataclass(frozen=True)
class ChannelSettings:
    secrets: dict[str, bytes]   # channel -> shared secret; a channel missing is not open
    sender_limit: str

    def sender_hash(self, channel: str, phone: str) -> str:
        """A sender as intake keeps it: keyed with a key derived from the channel's secret,
        so the hashes in the database cannot be reversed by trying every number without
        the secret too. Rotating the secret forgets drafts and ownership links."""
        key = hmac.new(self.secrets[channel], b"lapor-sender-key", hashlib.sha256).digest()
        return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()

    def signature_matches(self, channel: str, body: bytes, header: str) -> bool:
        """Whether `header` is sha256=<hex HMAC-SHA256 of the raw body> with the channel's
        secret (compared in constant time)."""
        scheme, _, given = header.strip().partition("=")
        if scheme.strip().lower() != "sha256":
            return False
        expected = hmac.new(self.secrets[channel], body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, given.strip().lower())


def _secret(config: dict, env: Env, channel: str) -> bytes | None:
    """The secret from the app's config (tests) or INTAKE_<CHANNEL>_GATEWAY_SECRET or
    INTAKE_<CHANNEL>_GATEWAY_SECRET_FILE; None when neither is set."""
    key = f"{channel.upper()}_GATEWAY_SECRET"
    variable = f"INTAKE_{key}"
    if key in config:
        value = config[key]
        source = variable
    else:
        value = env.str(variable, "")
        path = env.str(f"{variable}_FILE", "")
        if value and path:
            raise ConfigError(f"set {variable} or {variable}_FILE, not both")
        source = variable
        if path:
            source = f"{variable}_FILE"
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{source}: cannot read {path}: "
                                  f"{getattr(exc, 'strerror', None) or type(exc).__name__}"
                                  ) from None
    if not value:
        return None
    secret = value.encode() if isinstance(value, str) else bytes(value)
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{source}: the secret is shorter than {MIN_SECRET_BYTES} bytes; "
                          "use a random one, e.g. `openssl rand -hex 32`")
    return secret


def from_config(config: dict, env: Env | None = None) -> ChannelSettings:
    """The settings from the app's config, else the environment (INTAKE_SMS_GATEWAY_SECRET
    [_FILE], INTAKE_WHATSAPP_GATEWAY_SECRET[_FILE], INTAKE_RATE_LIMIT_CHANNEL_SENDER)."""
    env = env or Env()
    secrets = {}
    for channel in CHANNELS:
        secret = _secret(config, env, channel)
        if secret is not None:
            secrets[channel] = secret
    limit = (config.get("RATE_LIMIT_CHANNEL_SENDER")
             or env.str("INTAKE_RATE_LIMIT_CHANNEL_SENDER", DEFAULT_SENDER_LIMIT))
    try:
        parse_many(limit)
    except ValueError:
        raise ConfigError("INTAKE_RATE_LIMIT_CHANNEL_SENDER must be limits such as "
                          f"'{DEFAULT_SENDER_LIMIT}', got {limit!r}") from None
    return ChannelSettings(secrets, limit)
