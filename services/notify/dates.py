"""Times as agencies and citizens read them: in the agency's zone (WIB, WITA, WIT), and in
words in Bahasa Indonesia or English. Day and month names are ours, never the OS locale's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

# Indonesia's three zones. An event without a zone is read in WIB, the national default.
ZONES = {
    "WIB": timezone(timedelta(hours=7), "WIB"),
    "WITA": timezone(timedelta(hours=8), "WITA"),
    "WIT": timezone(timedelta(hours=9), "WIT"),
}
DEFAULT_ZONE = "WIB"

_DAYS = {
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
           "September", "Oktober", "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}


def zone_name(zone: str | None) -> str:
    """The zone's name if it is one of Indonesia's three, else the default (WIB)."""
    zone = (zone or "").strip().upper()
    return zone if zone in ZONES else DEFAULT_ZONE


def in_zone(value: datetime, zone: str | None) -> datetime:
    """`value` (aware, or naive UTC) as wall-clock time in the zone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZONES[zone_name(zone)])


def iso(value: datetime, zone: str | None) -> str:
    """ISO 8601 with the zone's offset, e.g. 2026-07-17T16:00:00+07:00."""
    return in_zone(value, zone).isoformat(timespec="seconds")


def human(value: datetime, zone: str | None, language: str = "id") -> str:
    """'Jumat, 17 Juli 2026 pukul 16.00 WIB' (or 'Friday, 17 July 2026 at 16:00 WIB')."""
    local = in_zone(value, zone)
    lang = "en" if language == "en" else "id"
    day = _DAYS[lang][local.weekday()]
    month = _MONTHS[lang][local.month - 1]
    if lang == "en":
        clock = f"at {local.hour:02d}:{local.minute:02d}"
    else:
        # Indonesian writes the time with a dot (EYD): pukul 16.00.
        clock = f"pukul {local.hour:02d}.{local.minute:02d}"
    return f"{day}, {local.day} {month} {local.year} {clock} {zone_name(zone)}"
