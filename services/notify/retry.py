"""The retry schedule: the first attempt goes out at once; after failed attempt n the next
waits delays[n-1] seconds; after the last delay the delivery has failed for good."""

from __future__ import annotations

from datetime import datetime, timedelta

DEFAULT_DELAYS = (30.0, 120.0, 600.0, 3600.0, 21600.0)


def parse_delays(raw: str) -> tuple[float, ...]:
    """'30,120,600' -> (30.0, 120.0, 600.0); raises ValueError for anything else."""
    delays = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        value = float(part)
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"delay {part!r} is not a finite number of seconds >= 0")
        delays.append(value)
    if not delays:
        raise ValueError("at least one delay is needed")
    return tuple(delays)


def max_attempts(delays: tuple[float, ...]) -> int:
    return len(delays) + 1


def next_attempt_at(delays: tuple[float, ...], attempt: int, now: datetime) -> datetime | None:
    """When to try again after failed attempt number `attempt` (1-based); None = give up."""
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if attempt > len(delays):
        return None
    return now + timedelta(seconds=delays[attempt - 1])
