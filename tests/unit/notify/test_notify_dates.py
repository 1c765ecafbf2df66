"""Deadlines as people read them, in Indonesian without the OS locale, and in the agency's zone."""

from datetime import UTC, datetime

import pytest

from services.notify import dates

# 09:00 UTC = 16:00 WIB = 17:00 WITA = 18:00 WIT, on Friday 17 July 2026.
DEADLINE = datetime(2026, 7, 17, 9, 0, tzinfo=UTC)


def test_indonesian_words_and_dotted_clock():
    assert dates.human(DEADLINE, "WIB") == "Jumat, 17 Juli 2026 pukul 16.00 WIB"


@pytest.mark.parametrize("zone, text", [
    ("WITA", "Jumat, 17 Juli 2026 pukul 17.00 WITA"),
    ("WIT", "Jumat, 17 Juli 2026 pukul 18.00 WIT"),
])
def test_the_agency_zone_sets_the_wall_clock(zone, text):
    assert dates.human(DEADLINE, zone) == text


def test_crossing_midnight_changes_day_and_month_names():
    late = datetime(2026, 8, 31, 17, 30, tzinfo=UTC)  # 00.30 WIT on Tuesday 1 September
    assert dates.human(late, "WIT") == "Selasa, 1 September 2026 pukul 02.30 WIT"
    assert dates.human(late, "WIB") == "Selasa, 1 September 2026 pukul 00.30 WIB"


@pytest.mark.parametrize("month, name", [(1, "Januari"), (2, "Februari"), (3, "Maret"),
                                         (5, "Mei"), (6, "Juni"), (8, "Agustus"),
                                         (10, "Oktober"), (12, "Desember")])
def test_month_names(month, name):
    assert f" {name} " in dates.human(datetime(2026, month, 10, 3, tzinfo=UTC), "WIB")


def test_day_names_across_a_week():
    names = [dates.human(datetime(2026, 7, day, 3, tzinfo=UTC), "WIB").split(",")[0]
             for day in range(13, 20)]
    assert names == ["Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"]


def test_english():
    assert dates.human(DEADLINE, "WITA", "en") == "Friday, 17 July 2026 at 17:00 WITA"


def test_iso_carries_the_zone_offset():
    assert dates.iso(DEADLINE, "WIB") == "2026-07-17T16:00:00+07:00"
    assert dates.iso(DEADLINE, "WIT") == "2026-07-17T18:00:00+09:00"


def test_an_unknown_or_missing_zone_reads_as_wib():
    assert dates.iso(DEADLINE, "") == "2026-07-17T16:00:00+07:00"
    assert dates.human(DEADLINE, "CET").endswith("pukul 16.00 WIB")
