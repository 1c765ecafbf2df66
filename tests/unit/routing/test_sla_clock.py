"""ROUTING_CLOCK_FILE and ROUTING_SLA_INTERVAL: what the file may say, when it is read again,
and how bad values are refused."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from services.infra.config import ConfigError, Env
from services.infra.db import utcnow
from services.routing.app import Settings
from services.routing.tickets.sla import (
    FileClock,
    SlaJob,
    clock_from_env,
    interval_from_env,
    parse_clock,
)

REAL = datetime(2026, 7, 6, 3, 0, tzinfo=UTC)


def replace(path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-07-13T16:00:00+07:00", datetime(2026, 7, 13, 9, 0, tzinfo=UTC)),
    ("2026-07-13T09:00:00Z", datetime(2026, 7, 13, 9, 0, tzinfo=UTC)),
    (" 2026-07-13T17:00:00+08:00\n", datetime(2026, 7, 13, 9, 0, tzinfo=UTC)),
    ("+3d", REAL + timedelta(days=3)),
    ("+12h\n", REAL + timedelta(hours=12)),
    ("+1.5d", REAL + timedelta(hours=36)),
])
def test_the_clock_file_holds_a_moment_or_an_offset_from_now(text, expected):
    moment = parse_clock(text, REAL)
    assert moment == expected
    assert moment.utcoffset() == timedelta(0), "compared with stored UTC times"


@pytest.mark.parametrize(("text", "hint"), [
    ("2026-07-13T16:00:00", "no UTC offset"),
    ("tomorrow", "neither an ISO-8601 timestamp"),
    ("+3w", "offset from now"),
    ("", "neither"),
])
def test_a_clock_file_it_cannot_read_says_what_to_write(text, hint):
    with pytest.raises(ValueError, match=hint):
        parse_clock(text, REAL)


def test_the_clock_reads_the_file_again_when_it_changes(tmp_path):
    path = tmp_path / "clock"
    replace(path, "2026-07-13T16:00:00+07:00")
    clock = FileClock(path, real_now=lambda: REAL)
    assert clock() == datetime(2026, 7, 13, 9, 0, tzinfo=UTC)
    replace(path, "+2d")
    assert clock() == REAL + timedelta(days=2)
    # Half-written or wrong: the last good reading stands until the file is fixed.
    replace(path, "2026-07-1")
    assert clock() == REAL + timedelta(days=2)
    path.unlink()
    assert clock() == REAL + timedelta(days=2)
    replace(path, "2026-07-20T16:00:00+07:00")
    assert clock() == datetime(2026, 7, 20, 9, 0, tzinfo=UTC)


def test_an_offset_moves_with_the_real_time(tmp_path):
    path = tmp_path / "clock"
    replace(path, "+1h")
    real = [REAL]
    clock = FileClock(path, real_now=lambda: real[0])
    real[0] += timedelta(minutes=5)
    assert clock() == REAL + timedelta(hours=1, minutes=5)


def test_a_missing_or_bad_clock_file_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match="ROUTING_CLOCK_FILE: cannot read"):
        clock_from_env(Env({"ROUTING_CLOCK_FILE": str(tmp_path / "absent")}))
    (tmp_path / "bad").write_text("next monday")
    with pytest.raises(ConfigError, match="ROUTING_CLOCK_FILE: 'next monday' is neither"):
        clock_from_env(Env({"ROUTING_CLOCK_FILE": str(tmp_path / "bad")}))


def test_without_a_clock_file_tickets_run_on_the_real_time(tmp_path):
    assert clock_from_env(Env({})) is utcnow
    (tmp_path / "clock").write_text("+3d")
    settings = Settings.from_env(Env({"ROUTING_CLOCK_FILE": str(tmp_path / "clock")}))
    assert settings.clock() - utcnow() > timedelta(days=2, hours=23)
    assert Settings.from_env(Env({})).clock is utcnow


def test_sla_interval_is_read_and_bounded():
    assert interval_from_env(Env({})) == 60.0
    assert interval_from_env(Env({"ROUTING_SLA_INTERVAL": "0.5"})) == 0.5
    assert Settings.from_env(Env({"ROUTING_SLA_INTERVAL": "5"})).sla_interval == 5.0
    for bad in ("0", "-1", "7200"):
        with pytest.raises(ConfigError, match="ROUTING_SLA_INTERVAL must be"):
            interval_from_env(Env({"ROUTING_SLA_INTERVAL": bad}))
    with pytest.raises(ConfigError, match="ROUTING_SLA_INTERVAL must be a number"):
        interval_from_env(Env({"ROUTING_SLA_INTERVAL": "soon"}))
    with pytest.raises(ValueError, match="above 0"):
        SlaJob(tickets=None, interval=0)
