"""Working-day arithmetic for SLA clocks: Indonesian holidays, joint leave, time zones.

A clock of N working days ends at close of business, local time of the agency's
province, on the N-th working day after the day the clock started. A working day
is Monday to Friday that is neither a national public holiday nor a joint-leave day
(*cuti bersama*, collective leave the government declares around holidays by a joint
ministerial decree). Both come from the ``holidays`` package, country ``ID``: its
``PUBLIC`` category holds the holidays, its ``GOVERNMENT`` category the joint leave.
Dates the operator configures (``ROUTING_JOINT_LEAVE``) are closed in addition, for a
decree newer than the installed package.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

__all__ = [
    "WIB",
    "WIT",
    "WITA",
    "ZONE_LABEL",
    "WorkCalendar",
    "deadline_for",
    "timezone_for_region",
    "zone_for_label",
    "zone_label",
]

WIB = ZoneInfo("Asia/Jakarta")  # Waktu Indonesia Barat, UTC+7
WITA = ZoneInfo("Asia/Makassar")  # Waktu Indonesia Tengah, UTC+8
WIT = ZoneInfo("Asia/Jayapura")  # Waktu Indonesia Timur, UTC+9

ZONE_LABEL: dict[str, str] = {
    WIB.key: "WIB",
    WITA.key: "WITA",
    WIT.key: "WIT",
}

# Kemendagri province code -> time zone (UU 25/1987 split, Perpres 41/1987).
_PROVINCE_ZONE: dict[str, ZoneInfo] = {
    # Sumatra and Riau Islands
    "11": WIB,  # Aceh
    "12": WIB,  # Sumatera Utara
    "13": WIB,  # Sumatera Barat
    "14": WIB,  # Riau
    "15": WIB,  # Jambi
    "16": WIB,  # Sumatera Selatan
    "17": WIB,  # Bengkulu
    "18": WIB,  # Lampung
    "19": WIB,  # Kepulauan Bangka Belitung
    "21": WIB,  # Kepulauan Riau
    # Java
    "31": WIB,  # DKI Jakarta
    "32": WIB,  # Jawa Barat
    "33": WIB,  # Jawa Tengah
    "34": WIB,  # DI Yogyakarta
    "35": WIB,  # Jawa Timur
    "36": WIB,  # Banten
    # Bali and Nusa Tenggara
    "51": WITA,  # Bali
    "52": WITA,  # Nusa Tenggara Barat
    "53": WITA,  # Nusa Tenggara Timur
    # Kalimantan: the west and centre keep Jakarta time, the rest Makassar time
    "61": WIB,  # Kalimantan Barat
    "62": WIB,  # Kalimantan Tengah
    "63": WITA,  # Kalimantan Selatan
    "64": WITA,  # Kalimantan Timur
    "65": WITA,  # Kalimantan Utara
    # Sulawesi
    "71": WITA,  # Sulawesi Utara
    "72": WITA,  # Sulawesi Tengah
    "73": WITA,  # Sulawesi Selatan
    "74": WITA,  # Sulawesi Tenggara
    "75": WITA,  # Gorontalo
    "76": WITA,  # Sulawesi Barat
    # Maluku and Papua
    "81": WIT,  # Maluku
    "82": WIT,  # Maluku Utara
    "91": WIT,  # Papua
    "92": WIT,  # Papua Barat
    "93": WIT,  # Papua Selatan
    "94": WIT,  # Papua Tengah
    "95": WIT,  # Papua Pegunungan
    "96": WIT,  # Papua Barat Daya
}

# Province "13", regency "13.03", district "13.03.01", village "13.03.01.2001".
_REGION_CODE = re.compile(r"(\d{2})(?:\.\d{2}(?:\.\d{2}(?:\.\d{4})?)?)?", re.ASCII)

_VALID_CODE_HINT = (
    "a Kemendagri region code starts with a two-digit province code, "
    'e.g. "13" (Sumatera Barat) or "13.03" (Kabupaten Sijunjung)'
)


def timezone_for_region(region_code: str) -> ZoneInfo:
    """Time zone of the province a Kemendagri region code belongs to."""
    if not isinstance(region_code, str):
        raise ValueError(f"region code must be a string; {_VALID_CODE_HINT}")
    match = _REGION_CODE.fullmatch(region_code.strip())
    if match is None:
        raise ValueError(f"malformed region code {region_code!r}: {_VALID_CODE_HINT}")
    zone = _PROVINCE_ZONE.get(match.group(1))
    if zone is None:
        raise ValueError(
            f"unknown province {match.group(1)!r} in region code {region_code!r}: "
            f"{_VALID_CODE_HINT}; known provinces are {', '.join(sorted(_PROVINCE_ZONE))}"
        )
    return zone


def zone_label(tz: ZoneInfo) -> str:
    """Indonesian label ("WIB", "WITA", "WIT") for one of the three national zones."""
    try:
        return ZONE_LABEL[tz.key]
    except KeyError:
        raise ValueError(f"{tz.key} is not an Indonesian time zone (WIB, WITA, WIT)") from None


def zone_for_label(label: str) -> ZoneInfo:
    """The zone behind a label ("WIB", "WITA", "WIT"), as tickets store it."""
    for key, known in ZONE_LABEL.items():
        if known == label:
            return ZoneInfo(key)
    raise ValueError(f"{label!r} is not an Indonesian time zone label (WIB, WITA, WIT)")


# Government offices close on both: PUBLIC holds the national holidays, GOVERNMENT the
# cuti bersama that the package keeps up to date from each year's decree.
_CLOSED_CATEGORIES = (holidays.PUBLIC, holidays.GOVERNMENT)


@cache
def _national_closures(year: int) -> frozenset[date]:
    # Building the table costs milliseconds; deadlines are computed on every ticket
    # creation, so each year is built once per process and shared by all calendars.
    return frozenset(_indonesia()(years=year, categories=_CLOSED_CATEGORIES))


@cache
def _indonesia() -> type[holidays.HolidayBase]:
    """The package's Indonesia calendar, read from its own module file.

    Importing ``holidays.countries.indonesia`` runs ``holidays.countries``, which imports
    all 250 countries: 11.5 MB of a process that needs one (4.3 MB loaded this way). The
    module imports only the package's shared parts (calendars, groups, base classes), so
    it works the same loaded alone; tests/unit/routing/test_workdays.py holds its dates
    equal to ``holidays.country_holidays("ID")``. Should a release move the file, the
    ordinary import is used.
    """
    package = importlib.util.find_spec("holidays")
    if package is not None and package.origin is not None:
        path = Path(package.origin).parent / "countries" / "indonesia.py"
        spec = importlib.util.spec_from_file_location("services.routing._holidays_id", path)
        if path.is_file() and spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
                return module.Indonesia
            except Exception:  # a release that changed its layout: the ordinary import
                pass
    from holidays.countries.indonesia import Indonesia

    return Indonesia


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc)); "
            "a naive datetime has no defined local day"
        )


class WorkCalendar:
    """Indonesian government working days: Mon-Fri minus public holidays and joint leave."""

    def __init__(
        self,
        joint_leave: Iterable[date] = (),
        *,
        close_of_business: time = time(16, 0),
        years: Iterable[int] = (),
    ) -> None:
        """``joint_leave`` are extra closed dates, added to the package's holidays and cuti
        bersama (e.g. a decree newer than the package); ``years`` are loaded up front."""
        leave = []
        for day in joint_leave:
            # A datetime never equals a date, so it would silently never match.
            if not isinstance(day, date) or isinstance(day, datetime):
                raise TypeError(f"joint leave days must be dates, got {day!r}")
            leave.append(day)
        if not isinstance(close_of_business, time) or close_of_business.tzinfo is not None:
            raise ValueError(
                "close_of_business must be a naive local time such as time(16, 0); "
                "the zone comes from the agency's region"
            )
        self.joint_leave: frozenset[date] = frozenset(leave)
        self.close_of_business = close_of_business
        self._closed_by_year: dict[int, frozenset[date]] = {}
        for year in years:
            self._closed(year)

    def _closed(self, year: int) -> frozenset[date]:
        closed = self._closed_by_year.get(year)
        if closed is None:
            # Concurrent first calls may both build the set; the result is identical.
            closed = _national_closures(year) | {d for d in self.joint_leave if d.year == year}
            self._closed_by_year[year] = closed
        return closed

    def is_working_day(self, d: date) -> bool:
        """True for Monday to Friday that is not a public holiday or joint leave."""
        if isinstance(d, datetime):
            raise TypeError("pass a date: the local day of a datetime depends on its zone")
        return d.weekday() < 5 and d not in self._closed(d.year)

    def _next_working_day(self, d: date) -> date:
        d += timedelta(days=1)
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d

    def add_working_days(self, start: datetime, n: int, tz: ZoneInfo) -> datetime:
        """Close of business in ``tz`` on the n-th working day after ``start``'s local day.

        The day the clock starts never counts, whatever the hour: a report received on
        Friday at 20:00 with n=5 is due the next Friday at close of business. n=0 means
        "today": close of business on ``start``'s local day if it is a working day and
        ``start`` is before close, otherwise close of business on the next working day.
        """
        _require_aware(start, "start")
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int number of working days, got {n!r}")
        if n < 0:
            raise ValueError(f"n must be 0 or more working days, got {n}")
        local = start.astimezone(tz)
        day = local.date()
        if n == 0:
            if not (self.is_working_day(day) and local.time() < self.close_of_business):
                day = self._next_working_day(day)
        else:
            for _ in range(n):
                day = self._next_working_day(day)
        return datetime.combine(day, self.close_of_business, tzinfo=tz)

    def next_working_day(self, d: date) -> date:
        """The first working day after ``d``."""
        if isinstance(d, datetime):
            raise TypeError("pass a date: the local day of a datetime depends on its zone")
        return self._next_working_day(d)

    def previous_working_day(self, d: date) -> date:
        """The last working day before ``d``."""
        if isinstance(d, datetime):
            raise TypeError("pass a date: the local day of a datetime depends on its zone")
        d -= timedelta(days=1)
        while not self.is_working_day(d):
            d -= timedelta(days=1)
        return d

    def working_days_before(self, moment: datetime, n: int, tz: ZoneInfo) -> datetime:
        """The same local time in ``tz`` on the n-th working day before ``moment``'s local day.

        Counts working days, not hours: one working day before a deadline on Monday 16:00 is
        the Friday before at 16:00 (Thursday when that Friday is a holiday). n=0 is
        ``moment`` itself.
        """
        _require_aware(moment, "moment")
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int number of working days, got {n!r}")
        if n < 0:
            raise ValueError(f"n must be 0 or more working days, got {n}")
        local = moment.astimezone(tz)
        day = local.date()
        for _ in range(n):
            day = self.previous_working_day(day)
        return local.replace(year=day.year, month=day.month, day=day.day)

    def working_days_between(self, start: datetime, end: datetime, tz: ZoneInfo) -> int:
        """Working days after ``start``'s local day, up to and including ``end``'s.

        0 when ``end`` is not after ``start``. Used for "how many working days late".
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        if end <= start:
            return 0
        day = start.astimezone(tz).date()
        last = end.astimezone(tz).date()
        count = 0
        while day < last:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count


def deadline_for(start: datetime, n: int, region_code: str, calendar: WorkCalendar) -> datetime:
    """Deadline n working days after ``start`` in the time zone of ``region_code``'s province."""
    return calendar.add_working_days(start, n, timezone_for_region(region_code))
