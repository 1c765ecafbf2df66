"""Working-day SLA clocks against the real Indonesian calendar.

Holiday dates below are those the ``holidays`` package (0.109) lists for country ID,
checked by printing them. Public holidays (category PUBLIC):
  2025: Idul Fitri Mon 31 Mar + Tue 1 Apr.
  2026: Nyepi Thu 19 Mar; Idul Fitri Sat 21 + Sun 22 Mar (weekend); Independence Day
        Mon 17 Aug; Maulid Nabi Tue 25 Aug; Christmas Fri 25 Dec.
  2027: New Year Fri 1 Jan; Isra Mikraj Tue 5 Jan.
Joint leave (cuti bersama, category GOVERNMENT), which closes government offices too:
  2025: Fri 28 Mar; Wed 2, Thu 3, Fri 4, Mon 7 Apr (around Nyepi and Idul Fitri).
  2026: Mon 16 Feb; Wed 18, Fri 20, Mon 23, Tue 24 Mar; Fri 15 May; Thu 28 May; Thu 24 Dec.
``ROUTING_JOINT_LEAVE`` adds dates on top of these (a decree newer than the package).
"""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.routing.workdays import (
    WIB,
    WIT,
    WITA,
    ZONE_LABEL,
    WorkCalendar,
    deadline_for,
    timezone_for_region,
    zone_for_label,
    zone_label,
)

SIJUNJUNG = "13.03"  # Kabupaten Sijunjung, Sumatera Barat (WIB)
KOTA_JAYAPURA = "91.71"  # Kota Jayapura, Papua (WIT)

JOINT_LEAVE_2026 = [date(2026, 2, 16), *(date(2026, 3, d) for d in (18, 20, 23, 24)),
                    date(2026, 5, 15), date(2026, 5, 28), date(2026, 12, 24)]


def at(zone, *args):
    return datetime(*args, tzinfo=zone)


@pytest.fixture
def calendar():
    return WorkCalendar()


# --- time zones -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("13.03", "WIB"),  # Sumatera Barat
        ("11", "WIB"),  # Aceh
        ("21.71", "WIB"),  # Kota Batam, Kepulauan Riau
        ("31.71", "WIB"),  # Jakarta Pusat
        ("36", "WIB"),  # Banten
        ("61.71", "WIB"),  # Kota Pontianak, Kalimantan Barat
        ("62", "WIB"),  # Kalimantan Tengah
        ("63.71", "WITA"),  # Kota Banjarmasin, Kalimantan Selatan
        ("65", "WITA"),  # Kalimantan Utara
        ("51.71", "WITA"),  # Kota Denpasar, Bali
        ("53", "WITA"),  # Nusa Tenggara Timur
        ("73.71", "WITA"),  # Kota Makassar
        ("76", "WITA"),  # Sulawesi Barat
        ("81.71", "WIT"),  # Kota Ambon, Maluku
        ("82", "WIT"),  # Maluku Utara
        ("91.71", "WIT"),  # Kota Jayapura
        ("96", "WIT"),  # Papua Barat Daya
        ("13.03.01.2001", "WIB"),  # a village code still resolves by its province
    ],
)
def test_region_code_resolves_to_the_provinces_time_zone(code, label):
    assert zone_label(timezone_for_region(code)) == label


def test_zone_labels_and_offsets():
    noon = datetime(2026, 7, 10, 12)
    assert {ZONE_LABEL[z.key]: z.utcoffset(noon) for z in (WIB, WITA, WIT)} == {
        "WIB": timedelta(hours=7),
        "WITA": timedelta(hours=8),
        "WIT": timedelta(hours=9),
    }


@pytest.mark.parametrize("code", ["", "1", "13-03", "13.3", "13.03.", "abc", "1303", " .13"])
def test_malformed_region_code_is_rejected_with_an_example(code):
    with pytest.raises(ValueError, match=r'e\.g\. "13" .* or "13\.03"'):
        timezone_for_region(code)


@pytest.mark.parametrize("code", ["00", "20.01", "99", "97.01"])
def test_unknown_province_is_rejected_naming_the_province(code):
    with pytest.raises(ValueError, match=f"unknown province '{code[:2]}'"):
        timezone_for_region(code)


def test_non_string_region_code_is_rejected():
    with pytest.raises(ValueError, match="must be a string"):
        timezone_for_region(13)  # type: ignore[arg-type]


# --- deadlines --------------------------------------------------------------


def test_friday_report_in_sumbar_is_due_next_friday_at_close_of_business(calendar):
    # Fri 10 Jul 2026; Mon 13 - Fri 17 Jul has no holidays: 5 working days end Fri 17 Jul.
    for received in (at(WIB, 2026, 7, 10, 9, 0), at(WIB, 2026, 7, 10, 20, 0)):
        deadline = deadline_for(received, 5, SIJUNJUNG, calendar)
        assert deadline == at(WIB, 2026, 7, 17, 16, 0)
        assert zone_label(deadline.tzinfo) == "WIB"
        assert (deadline.hour, deadline.minute) == (16, 0)


def test_same_instant_in_papua_ends_at_close_of_business_wit(calendar):
    # Fri 10 Jul 2026 20:00 WIB is 22:00 WIT, still Friday in Jayapura.
    deadline = deadline_for(at(WIB, 2026, 7, 10, 20, 0), 5, KOTA_JAYAPURA, calendar)
    assert deadline == at(WIT, 2026, 7, 17, 16, 0)
    assert zone_label(deadline.tzinfo) == "WIT"
    assert deadline.astimezone(UTC) == datetime(2026, 7, 17, 7, 0, tzinfo=UTC)


def test_local_day_of_receipt_depends_on_the_agencys_zone(calendar):
    # Thu 9 Jul 2026 23:30 WIB is already Fri 10 Jul 01:30 WIT.
    received = at(WIB, 2026, 7, 9, 23, 30)
    # Sumbar counts from Thursday: Fri 10, Mon 13, Tue 14, Wed 15, Thu 16.
    assert deadline_for(received, 5, SIJUNJUNG, calendar) == at(WIB, 2026, 7, 16, 16, 0)
    # Jayapura counts from Friday: Mon 13 ... Fri 17.
    assert deadline_for(received, 5, KOTA_JAYAPURA, calendar) == at(WIT, 2026, 7, 17, 16, 0)


def test_utc_input_is_converted_to_the_local_day(calendar):
    # 2026-07-10 13:00 UTC = Fri 20:00 WIB: the same as receiving it on Friday evening.
    received = datetime(2026, 7, 10, 13, 0, tzinfo=UTC)
    assert calendar.add_working_days(received, 5, WIB) == at(WIB, 2026, 7, 17, 16, 0)


def test_weekend_receipt_counts_from_monday(calendar):
    # Sat 11 / Sun 12 Jul 2026: the first working day is Mon 13 Jul.
    for received in (at(WIB, 2026, 7, 11, 10, 0), at(WIB, 2026, 7, 12, 23, 59)):
        assert calendar.add_working_days(received, 1, WIB) == at(WIB, 2026, 7, 13, 16, 0)
        assert calendar.add_working_days(received, 5, WIB) == at(WIB, 2026, 7, 17, 16, 0)


def test_independence_day_is_skipped(calendar):
    # Fri 14 Aug 2026; Mon 17 Aug is Hari Kemerdekaan: Tue 18, Wed 19, Thu 20, Fri 21, Mon 24.
    deadline = calendar.add_working_days(at(WIB, 2026, 8, 14, 10, 0), 5, WIB)
    assert deadline == at(WIB, 2026, 8, 24, 16, 0)
    # A sixth day also skips Maulid Nabi on Tue 25 Aug and lands on Wed 26 Aug.
    deadline = calendar.add_working_days(at(WIB, 2026, 8, 14, 10, 0), 6, WIB)
    assert deadline == at(WIB, 2026, 8, 26, 16, 0)
    assert not calendar.is_working_day(date(2026, 8, 17))


def test_idul_fitri_and_its_joint_leave_are_skipped(calendar):
    # Thu 27 Mar 2025; Fri 28 Mar is joint leave, Idul Fitri is Mon 31 Mar + Tue 1 Apr,
    # joint leave again Wed 2 - Mon 7 Apr: Tue 8, Wed 9, Thu 10 Apr.
    deadline = calendar.add_working_days(at(WITA, 2025, 3, 27, 11, 0), 3, WITA)
    assert deadline == at(WITA, 2025, 4, 10, 16, 0)
    for day in (28, 31):
        assert not calendar.is_working_day(date(2025, 3, day))
    for day in (1, 2, 3, 4, 7):
        assert not calendar.is_working_day(date(2025, 4, day))


def test_christmas_and_christmas_eve_joint_leave_are_skipped(calendar):
    # Mon 21 Dec 2026; Thu 24 Dec is joint leave, Christmas Fri 25 Dec:
    # Tue 22, Wed 23, Mon 28, Tue 29, Wed 30.
    deadline = calendar.add_working_days(at(WIB, 2026, 12, 21, 8, 0), 5, WIB)
    assert deadline == at(WIB, 2026, 12, 30, 16, 0)


def test_clock_runs_across_the_new_year(calendar):
    # Mon 28 Dec 2026: Tue 29, Wed 30, Thu 31; Fri 1 Jan 2027 (New Year) and
    # Tue 5 Jan 2027 (Isra Mikraj) are holidays, so Mon 4 Jan, then Wed 6 Jan.
    deadline = calendar.add_working_days(at(WIB, 2026, 12, 28, 8, 0), 5, WIB)
    assert deadline == at(WIB, 2027, 1, 6, 16, 0)


def test_lebaran_joint_leave_is_skipped_without_configuration(calendar):
    # Tue 17 Mar 2026 10:00 WIB: Wed 18 (joint leave), Thu 19 (Nyepi), Fri 20, Mon 23 and
    # Tue 24 (joint leave) are closed: Wed 25, Thu 26, Fri 27, Mon 30, Tue 31 Mar.
    received = at(WIB, 2026, 3, 17, 10, 0)
    assert calendar.add_working_days(received, 5, WIB) == at(WIB, 2026, 3, 31, 16, 0)
    assert deadline_for(received, 5, SIJUNJUNG, calendar) == at(WIB, 2026, 3, 31, 16, 0)


def test_every_2026_joint_leave_day_is_closed(calendar):
    for day in JOINT_LEAVE_2026:
        assert day.weekday() < 5, f"{day} would be closed as a weekend anyway"
        assert not calendar.is_working_day(day), day
    # The working days around them stay open.
    for day in (date(2026, 2, 13), date(2026, 3, 17), date(2026, 3, 25), date(2026, 5, 13),
                date(2026, 12, 23)):
        assert calendar.is_working_day(day), day


def test_configured_joint_leave_adds_to_the_packages_dates():
    received = at(WIB, 2026, 3, 17, 10, 0)
    # A later decree also closes Thu 26 Mar: Wed 25, Fri 27, Mon 30, Tue 31 Mar, Wed 1 Apr.
    with_extra = WorkCalendar(joint_leave=[date(2026, 3, 26)])
    assert with_extra.add_working_days(received, 5, WIB) == at(WIB, 2026, 4, 1, 16, 0)
    assert not with_extra.is_working_day(date(2026, 3, 26))
    # Configuring the package's own dates again changes nothing, and never reopens a day.
    repeated = WorkCalendar(joint_leave=JOINT_LEAVE_2026)
    assert repeated.add_working_days(received, 5, WIB) == at(WIB, 2026, 3, 31, 16, 0)
    assert not repeated.is_working_day(date(2026, 12, 24))


def test_joint_leave_must_be_dates():
    with pytest.raises(TypeError, match="must be dates"):
        WorkCalendar(joint_leave=[datetime(2026, 3, 20, 0, 0)])
    with pytest.raises(TypeError, match="must be dates"):
        WorkCalendar(joint_leave=["2026-03-20"])  # type: ignore[list-item]


def test_custom_close_of_business():
    calendar = WorkCalendar(close_of_business=time(15, 30))
    deadline = calendar.add_working_days(at(WIB, 2026, 7, 10, 9, 0), 5, WIB)
    assert deadline == at(WIB, 2026, 7, 17, 15, 30)
    with pytest.raises(ValueError, match="naive local time"):
        WorkCalendar(close_of_business=time(16, 0, tzinfo=UTC))


def test_calendar_works_for_far_years_and_preloaded_years():
    calendar = WorkCalendar(years=range(2025, 2028))
    # Independence Day 2099 is a Monday; Fri 14 Aug 2099 + 1 working day = Tue 18 Aug.
    deadline = calendar.add_working_days(at(WIB, 2099, 8, 14, 9, 0), 1, WIB)
    assert deadline == at(WIB, 2099, 8, 18, 16, 0)
    assert calendar.is_working_day(date(2026, 7, 10))


# --- n = 0: "due today" ------------------------------------------------------


def test_zero_days_on_a_working_day_before_close_is_due_today(calendar):
    # Wed 15 Jul 2026.
    deadline = calendar.add_working_days(at(WIB, 2026, 7, 15, 9, 0), 0, WIB)
    assert deadline == at(WIB, 2026, 7, 15, 16, 0)
    deadline = calendar.add_working_days(at(WIB, 2026, 7, 15, 15, 59), 0, WIB)
    assert deadline == at(WIB, 2026, 7, 15, 16, 0)


def test_zero_days_at_or_after_close_is_due_next_working_day(calendar):
    # Wed 15 Jul 2026 at 16:00 -> Thu 16 Jul; Fri 17 Jul at 17:00 -> Mon 20 Jul.
    deadline = calendar.add_working_days(at(WIB, 2026, 7, 15, 16, 0), 0, WIB)
    assert deadline == at(WIB, 2026, 7, 16, 16, 0)
    deadline = calendar.add_working_days(at(WIB, 2026, 7, 17, 17, 0), 0, WIB)
    assert deadline == at(WIB, 2026, 7, 20, 16, 0)


def test_zero_days_on_a_holiday_or_weekend_is_due_next_working_day(calendar):
    # Mon 17 Aug 2026 (Independence Day) -> Tue 18 Aug; Sat 11 Jul 2026 -> Mon 13 Jul.
    deadline = calendar.add_working_days(at(WIB, 2026, 8, 17, 9, 0), 0, WIB)
    assert deadline == at(WIB, 2026, 8, 18, 16, 0)
    deadline = calendar.add_working_days(at(WIB, 2026, 7, 11, 9, 0), 0, WIB)
    assert deadline == at(WIB, 2026, 7, 13, 16, 0)


# --- invalid input ------------------------------------------------------------


def test_naive_datetime_is_rejected(calendar):
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add_working_days(datetime(2026, 7, 10, 9, 0), 5, WIB)
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline_for(datetime(2026, 7, 10, 9, 0), 5, SIJUNJUNG, calendar)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.working_days_between(at(WIB, 2026, 7, 10, 9, 0), datetime(2026, 7, 20, 9, 0), WIB)


def test_negative_or_non_integer_day_count_is_rejected(calendar):
    with pytest.raises(ValueError, match="0 or more"):
        calendar.add_working_days(at(WIB, 2026, 7, 10, 9, 0), -1, WIB)
    with pytest.raises(TypeError, match="int"):
        calendar.add_working_days(at(WIB, 2026, 7, 10, 9, 0), 2.5, WIB)  # type: ignore[arg-type]


def test_is_working_day_refuses_a_datetime(calendar):
    # A datetime's day depends on its zone; silently using it could count the wrong day.
    with pytest.raises(TypeError, match="pass a date"):
        calendar.is_working_day(at(WIB, 2026, 8, 17, 9, 0))


def test_deadline_for_rejects_an_invalid_region(calendar):
    with pytest.raises(ValueError, match="Kemendagri region code"):
        deadline_for(at(WIB, 2026, 7, 10, 9, 0), 5, "Sijunjung", calendar)


# --- counting working days ---------------------------------------------------


def test_working_days_late_after_a_missed_deadline(calendar):
    deadline = at(WIB, 2026, 7, 17, 16, 0)  # Fri 17 Jul 2026
    # Later the same Friday: past the deadline but not yet a working day late.
    assert calendar.working_days_between(deadline, at(WIB, 2026, 7, 17, 18, 0), WIB) == 0
    # The weekend adds nothing; Monday makes it one working day late.
    assert calendar.working_days_between(deadline, at(WIB, 2026, 7, 19, 12, 0), WIB) == 0
    assert calendar.working_days_between(deadline, at(WIB, 2026, 7, 20, 8, 0), WIB) == 1


def test_working_days_between_skips_holidays(calendar):
    # Fri 14 Aug -> Fri 21 Aug 2026: Tue 18 .. Fri 21 count, Independence Day (Mon 17) does not.
    start, end = at(WIB, 2026, 8, 14, 10, 0), at(WIB, 2026, 8, 21, 10, 0)
    assert calendar.working_days_between(start, end, WIB) == 4


def test_working_days_between_is_zero_when_end_is_not_after_start(calendar):
    start = at(WIB, 2026, 7, 20, 10, 0)
    assert calendar.working_days_between(start, start, WIB) == 0
    assert calendar.working_days_between(start, at(WIB, 2026, 7, 10, 10, 0), WIB) == 0


def test_counting_back_from_a_deadline_gives_the_clock_length():
    # Every start in 2026 (including weekends, holidays and joint leave) and each clock
    # length DESIGN.md uses: the deadline is exactly n working days after the start.
    calendar = WorkCalendar(joint_leave=[date(2026, 3, 26)])
    start = at(WITA, 2026, 1, 1, 10, 0)
    for offset in range(365):
        received = start + timedelta(days=offset)
        for n in (3, 5, 10, 14, 60):
            deadline = calendar.add_working_days(received, n, WITA)
            assert calendar.working_days_between(received, deadline, WITA) == n
            assert calendar.is_working_day(deadline.date())


# --- counting back: when a warning "one working day before" goes out -------


def test_one_working_day_before_a_monday_deadline_is_the_friday_at_the_same_time(calendar):
    # Deadline Mon 13 Jul 2026 16:00 WIB: the warning is Fri 10 Jul 16:00, not Sun 12 Jul.
    deadline = at(WIB, 2026, 7, 13, 16, 0)
    assert calendar.working_days_before(deadline, 1, WIB) == at(WIB, 2026, 7, 10, 16, 0)


def test_one_working_day_before_midweek_is_the_day_before(calendar):
    deadline = at(WITA, 2026, 7, 15, 16, 0)  # Wed
    assert calendar.working_days_before(deadline, 1, WITA) == at(WITA, 2026, 7, 14, 16, 0)


def test_counting_back_skips_a_friday_holiday(calendar):
    # Good Friday, Fri 3 Apr 2026: one working day before Mon 6 Apr is Thu 2 Apr.
    deadline = at(WIB, 2026, 4, 6, 16, 0)
    assert calendar.working_days_before(deadline, 1, WIB) == at(WIB, 2026, 4, 2, 16, 0)


def test_counting_back_skips_the_whole_lebaran_closure(calendar):
    # Wed 18 to Tue 24 Mar 2026 are Nyepi, Idul Fitri and their joint leave.
    deadline = at(WIB, 2026, 3, 25, 16, 0)
    assert calendar.working_days_before(deadline, 1, WIB) == at(WIB, 2026, 3, 17, 16, 0)
    assert calendar.previous_working_day(date(2026, 3, 25)) == date(2026, 3, 17)
    assert calendar.next_working_day(date(2026, 3, 17)) == date(2026, 3, 25)


def test_counting_back_uses_the_local_day_in_the_given_zone(calendar):
    # Mon 13 Jul 2026 00:30 WIT is still Sun 12 Jul in UTC; in WIT it is Monday, so one
    # working day before is Fri 10 Jul 00:30 WIT.
    deadline = at(WIT, 2026, 7, 13, 0, 30).astimezone(UTC)
    assert calendar.working_days_before(deadline, 1, WIT) == at(WIT, 2026, 7, 10, 0, 30)


def test_counting_back_zero_days_is_the_moment_itself(calendar):
    moment = at(WIB, 2026, 7, 11, 9, 0)  # a Saturday
    assert calendar.working_days_before(moment, 0, WIB) == moment


def test_counting_back_several_days_then_forward_returns_to_the_deadline():
    calendar = WorkCalendar(joint_leave=[date(2026, 3, 26)])
    start = at(WIB, 2026, 1, 1, 16, 0)
    for offset in range(365):
        deadline = calendar.add_working_days(start + timedelta(days=offset), 5, WIB)
        for n in (1, 3):
            earlier = calendar.working_days_before(deadline, n, WIB)
            assert calendar.is_working_day(earlier.date())
            assert calendar.add_working_days(earlier, n, WIB) == deadline


def test_counting_back_rejects_bad_input(calendar):
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.working_days_before(datetime(2026, 7, 13, 16, 0), 1, WIB)
    with pytest.raises(ValueError, match="0 or more"):
        calendar.working_days_before(at(WIB, 2026, 7, 13, 16, 0), -1, WIB)
    with pytest.raises(TypeError):
        calendar.working_days_before(at(WIB, 2026, 7, 13, 16, 0), 1.0, WIB)
    with pytest.raises(TypeError, match="pass a date"):
        calendar.previous_working_day(at(WIB, 2026, 7, 13, 16, 0))


def test_zone_labels_turn_back_into_zones():
    for zone in (WIB, WITA, WIT):
        assert zone_for_label(zone_label(zone)) == zone
    with pytest.raises(ValueError, match="WIB, WITA, WIT"):
        zone_for_label("CET")


# --- where the dates come from --------------------------------------------------------------


def test_closed_days_are_the_packages_for_every_year_a_clock_can_reach():
    """Routing reads the package's Indonesia calendar from its module file alone (the
    package's countries module imports all 250 countries); the dates must be the ones
    ``holidays.country_holidays("ID")`` gives, public holidays and joint leave alike."""
    import holidays

    from services.routing.workdays import _national_closures

    for year in range(2000, 2061):
        expected = frozenset(holidays.country_holidays(
            "ID", years=year, categories=(holidays.PUBLIC, holidays.GOVERNMENT)))
        assert _national_closures(year) == expected, year
    assert date(2026, 3, 20) in _national_closures(2026)  # joint leave, GOVERNMENT


def test_routing_does_not_load_every_countrys_holidays():
    import subprocess
    import sys

    script = ("import sys\n"
              "from datetime import date\n"
              "from services.routing.workdays import WorkCalendar\n"
              "assert not WorkCalendar().is_working_day(date(2026, 8, 17))\n"
              "print(sum(m.startswith('holidays.countries') for m in sys.modules))\n")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=60).stdout
    assert int(loaded) == 0, f"{loaded.strip()} modules of holidays.countries imported"
