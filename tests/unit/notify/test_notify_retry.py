"""The retry schedule: immediate first attempt, then the configured delays, then failed."""

from datetime import UTC, datetime, timedelta

import pytest

from services.notify import retry

NOW = datetime(2026, 7, 17, 9, 0, tzinfo=UTC)


def test_default_schedule_is_five_growing_delays():
    assert retry.DEFAULT_DELAYS == (30, 120, 600, 3600, 21600)
    assert retry.max_attempts(retry.DEFAULT_DELAYS) == 6


def test_each_failed_attempt_waits_the_matching_delay():
    delays = retry.parse_delays("30,120,600,3600,21600")
    assert retry.next_attempt_at(delays, 1, NOW) == NOW + timedelta(seconds=30)
    assert retry.next_attempt_at(delays, 2, NOW) == NOW + timedelta(seconds=120)
    assert retry.next_attempt_at(delays, 5, NOW) == NOW + timedelta(hours=6)


def test_after_the_last_delay_there_is_no_next_attempt():
    delays = retry.parse_delays("0.2, 0.2, 0.5")
    assert retry.next_attempt_at(delays, 3, NOW) == NOW + timedelta(seconds=0.5)
    assert retry.next_attempt_at(delays, 4, NOW) is None


@pytest.mark.parametrize("raw", ["", " , ", "30,abc", "-1", "nan", "inf"])
def test_bad_schedules_are_rejected(raw):
    with pytest.raises(ValueError):
        retry.parse_delays(raw)


def test_attempts_are_numbered_from_one():
    with pytest.raises(ValueError):
        retry.next_attempt_at((1.0,), 0, NOW)
