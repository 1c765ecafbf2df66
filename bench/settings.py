"""The benches' own settings from the environment, and the median round they report.

A setting that is not a number stops the bench before it starts anything, naming the
variable and what it takes, instead of a ValueError's traceback from the module's import.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class SettingError(SystemExit):
    """A bench setting the bench cannot use; the message says which and what to give."""


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    return _env_number(name, default, minimum, int, "a whole number")


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    return _env_number(name, default, minimum, float, "a number")


def _env_number(name, default, minimum, convert, what):
    raw = os.environ.get(name, "").strip()
    try:
        value = convert(raw) if raw else default
    except ValueError:
        value = None
    if value is None or value != value:  # not a number, or NaN
        raise SettingError(f"{name}={raw!r}: give {what} (default {default:g})")
    if minimum is not None and value < minimum:
        raise SettingError(f"{name}={raw!r}: give {what} of at least {minimum:g}")
    return value


def env_list(name: str, default: str, allowed: Sequence[str]) -> list[str]:
    """Comma-separated names, each one of `allowed`."""
    raw = os.environ.get(name, "").strip() or default
    names = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [part for part in names if part not in allowed]
    if unknown or not names:
        raise SettingError(f"{name}={raw!r}: give one or more of {', '.join(allowed)}, "
                           f"separated by commas")
    return names


def median_round(rounds: Sequence[T], ratio: Callable[[T], float]) -> T:
    """The round whose ratio is the median (the upper one of an even number)."""
    return sorted(rounds, key=ratio)[len(rounds) // 2]
