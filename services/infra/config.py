"""Configuration read once at start-up from the environment; a bad value stops the process
with a message naming the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_SHUTDOWN_SECONDS = 20.0
# Events already in a consumer's hand handled in one transaction (LAPOR_CONSUMER_BATCH).
DEFAULT_CONSUMER_BATCH = 16
# ... and waited for this long before a batch is taken (LAPOR_CONSUMER_GATHER).
DEFAULT_CONSUMER_GATHER = 0.03
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(SystemExit):
    """Raised for a missing or malformed setting; exits the process with the message."""

    def __init__(self, message: str):
        super().__init__(f"configuration error: {message}")


class Env:
    """Typed reads from a mapping (os.environ by default) that fail with the variable's name."""

    def __init__(self, source: Mapping[str, str] | None = None):
        self.source = os.environ if source is None else source

    def str(self, name: str, default: str | None = None) -> str:
        value = self.source.get(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(f"{name} is required but not set")
            return default
        return value

    def int(self, name: str, default: int) -> int:
        raw = self.source.get(name)
        if raw in (None, ""):
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None

    def float(self, name: str, default: float) -> float:
        raw = self.source.get(name)
        if raw in (None, ""):
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None

    def seconds(self, name: str, default: float) -> float:
        """A duration in seconds, above 0 (a deadline or interval of 0 would fail everything
        at once or spin)."""
        value = self.float(name, default)
        if not value > 0:
            raise ConfigError(f"{name} must be a number of seconds above 0, got {value}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.source.get(name)
        if raw in (None, ""):
            return default
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def database_url(self, name: str, service: str) -> str:
        """The service's database URL; a SQLite file under var/ when unset."""
        default = f"sqlite:///{PROJECT_ROOT / 'var' / (service + '.db')}"
        return self.str(name, default)

    def amqp_url(self) -> str:
        return self.str("LAPOR_AMQP_URL", DEFAULT_AMQP_URL)

    def shutdown_seconds(self) -> float:
        """LAPOR_SHUTDOWN_SECONDS: the one budget for a service's whole ordered stop; keep it
        below the orchestrator's grace period (Kubernetes: 30 s by default)."""
        value = self.float("LAPOR_SHUTDOWN_SECONDS", DEFAULT_SHUTDOWN_SECONDS)
        if not 0 < value <= 600:
            raise ConfigError(f"LAPOR_SHUTDOWN_SECONDS must be between 0 and 600 seconds, "
                              f"got {value!r}")
        return value

    def outbox_gather(self, name: str, default: float) -> float:
        """How long an outbox relay, once woken, waits for more events before it publishes:
        seconds from 0 (at once) to 5."""
        value = self.float(name, default)
        if not 0 <= value <= 5:
            raise ConfigError(f"{name} must be seconds from 0 (send at once) to 5, "
                              f"got {value!r}")
        return value

    def event_batches(self) -> bool:
        """LAPOR_EVENT_BATCHES: whether publishers send a relay round's events of one type as
        one message (an EventBatch). Off while a rolling upgrade from a release whose
        consumers do not read batches is under way (docs/operations.md)."""
        return self.bool("LAPOR_EVENT_BATCHES", True)

    def consumer_gather(self, name: str = "LAPOR_CONSUMER_GATHER",
                        default: float = DEFAULT_CONSUMER_GATHER) -> float:
        """LAPOR_CONSUMER_GATHER (or a service's own `name`): how long a consumer's handler
        thread, handed fewer events than a batch, waits for more before it handles them:
        seconds from 0 (at once) to 1."""
        value = self.float(name, default)
        if not 0 <= value <= 1:
            raise ConfigError(f"{name} must be seconds from 0 (at once) to 1, got {value!r}")
        return value

    def consumer_batch(self) -> int:
        """LAPOR_CONSUMER_BATCH: at most this many events already in a consumer's hand are
        handled in one transaction (1: one transaction per event)."""
        value = self.int("LAPOR_CONSUMER_BATCH", DEFAULT_CONSUMER_BATCH)
        if not 1 <= value <= 256:
            raise ConfigError(f"LAPOR_CONSUMER_BATCH must be between 1 and 256, got {value}")
        return value
