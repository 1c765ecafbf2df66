"""One logging setup for every process: JSON lines on stdout carrying the tracking id and
event id of the work in hand. Personal data never goes into a log line; callers log ids."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_context", default=None)

# Attributes every LogRecord has; anything else passed via `extra=` is emitted as a field.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextlib.contextmanager
def bound(**fields: str | None):
    """Adds fields (tracking_id, event_id, ...) to every log line inside the block."""
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            "tracking_id": None,
            "event_id": None,
        }
        line.update(_context.get() or {})
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def setup(service: str, level: str = "INFO") -> None:
    """Routes all logging to stdout as JSON lines; safe to call more than once."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The JSON line has no caller, thread or process fields, so records need not look them
    # up: the logging HOWTO's "Optimization" settings (about a tenth of a line's cost).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # pika logs connection chatter at INFO, including the broker URL's host: keep it quiet.
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("waitress").setLevel(logging.WARNING)
