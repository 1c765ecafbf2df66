"""Where an Open311 request is: a point (lat/long) placed in a regency offline with
GeoNames' places (places.py) and matched by name to the Kemendagri list intake holds, or a
regency or province named in the address text. No network; the region list comes from the caller."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from services.intake.open311 import places

# A point further than this from the nearest known place is at sea or off the map.
MAX_DISTANCE_KM = 100.0
_EARTH_KM = 6371.0
_DIRECTIONS = {"west": "barat", "east": "timur", "north": "utara", "south": "selatan",
               "central": "tengah", "southeast": "tenggara", "southwest": "barat daya",
               "northwest": "barat laut", "highland": "pegunungan", "mountain": "pegunungan"}
_WORDS = {"sumatra": "sumatera", "java": "jawa", "islands": "kepulauan",
          "special region of": "", "capital region": "", "special capital region of": ""}


class PlaceError(ValueError):
    """The location cannot be placed in an Indonesian region; the message says what to send."""


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str  # provinsi | kabupaten_kota


def normalise(text: str) -> str:
    """Lowercase words separated by single spaces; 'Kota Administrasi' is a 'Kota'."""
    words = re.sub(r"[^0-9a-z]+", " ", text.lower()).split()
    out = " ".join(words)
    return re.sub(r"\bkota administrasi\b", "kota", out)


def _core(name: str) -> str:
    """A regency's name without Kabupaten/Kota: what people write in an address."""
    return re.sub(r"^(kabupaten|kota)\s+", "", name)


class Gazetteer:
    """The provinces and regencies of the official list, matched by name."""

    def __init__(self, regions: list[Region]):
        self.regencies = [r for r in regions if r.level == "kabupaten_kota"]
        self.provinces = [r for r in regions if r.level == "provinsi"]
        self._by_name = {normalise(r.name): r for r in self.regencies}

    def __bool__(self) -> bool:
        return bool(self.regencies)

    def regency(self, name: str) -> Region | None:
        return self._by_name.get(normalise(name))

    def province(self, name: str) -> Region | None:
        """The province whose name holds `name` (English names translated, 'West Sumatra'
        is 'Sumatera Barat')."""
        wanted = _indonesian_province(name)
        if not wanted:
            return None
        found = [p for p in self.provinces if f" {wanted} " in f" {normalise(p.name)} "]
        return min(found, key=lambda p: len(p.name)) if found else None

    def locate(self, lat: float, lon: float) -> Region:
        """The regency (else the province) of a point in Indonesia; PlaceError otherwise."""
        place = places.nearest(lat, lon)
        if place is None:
            raise PlaceError(f"lat/long ({lat}, {lon}) is outside Indonesia; send a point in "
                             "Indonesia (lat is north-south, negative south of the equator)")
        distance = _km(lat, lon, place["latitude"], place["longitude"])
        if place.get("country_code") != "ID":
            raise PlaceError(f"lat/long ({lat}, {lon}) is outside Indonesia (the nearest place "
                             f"is {place.get('city')}, {place.get('country')}); send a point "
                             "in Indonesia")
        if distance > MAX_DISTANCE_KM:
            raise PlaceError(f"lat/long ({lat}, {lon}) is {distance:.0f} km from any known "
                             "place in Indonesia; check the point (lat is north-south, "
                             "negative south of the equator)")
        if place.get("county"):
            found = self.regency(place["county"])
            if found:
                return found
        city = place.get("city") or ""
        for name in (f"Kota {city}", f"Kabupaten {city}"):
            found = self.regency(name)
            if found:
                return found
        found = self.province(place.get("state") or city)
        if found:
            return found
        raise PlaceError(f"lat/long ({lat}, {lon}) could not be matched to a Kemendagri "
                         "region; send address_id with the region code (e.g. 13.03)")

    def find_in_text(self, text: str) -> Region:
        """The one regency (else province) the address text names; PlaceError otherwise."""
        padded = f" {normalise(text)} "
        full = [r for r in self.regencies if f" {normalise(r.name)} " in padded]
        if len(full) == 1:
            return full[0]
        if len(full) > 1:  # "Kota Bandung" inside "Kabupaten Bandung Barat": the longest
            return max(full, key=lambda r: len(r.name))
        bare = {}
        for r in self.regencies:
            if f" {_core(normalise(r.name))} " in padded:
                bare.setdefault(_core(normalise(r.name)), []).append(r)
        if bare:
            longest = max(bare, key=len)
            candidates = bare[longest]
            if len(candidates) == 1:
                return candidates[0]
            names = " or ".join(r.name for r in candidates)
            raise PlaceError(f"address_string could be {names}; write which one (Kabupaten "
                             "or Kota), or send lat/long")
        provinces = [p for p in self.provinces if f" {normalise(p.name)} " in padded]
        if provinces:
            return max(provinces, key=lambda p: len(p.name))
        raise PlaceError("address_string names no regency or city of Indonesia; include one "
                         "(e.g. 'Jl. Sudirman 1, Kabupaten Sijunjung') or send lat/long")


def _indonesian_province(name: str) -> str:
    text = normalise(name)
    for english, indonesian in _WORDS.items():
        text = re.sub(rf"\b{english}\b", indonesian, text)
    words = text.split()
    if len(words) >= 2 and words[0] in _DIRECTIONS:  # "west sumatera" -> "sumatera barat"
        words = [*words[1:], _DIRECTIONS[words[0]]]
    if words and words[-1] == "kepulauan":  # "riau kepulauan" -> "kepulauan riau"
        words = ["kepulauan", *words[:-1]]
    return " ".join(words)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(math.sqrt(a))


def parse_point(lat: str | None, lon: str | None) -> tuple[float, float] | None:
    """(lat, long) from the form's text, None when neither is sent; PlaceError naming what is
    wrong otherwise."""
    if not lat and not lon:
        return None
    if not lat or not lon:
        raise PlaceError("send both lat and long (decimal degrees, WGS84), or neither")
    try:
        point = float(lat), float(lon)
    except ValueError:
        raise PlaceError("lat and long must be decimal degrees such as lat=-0.6639 "
                         "long=100.9582") from None
    if not all(math.isfinite(v) for v in point) or not -90 <= point[0] <= 90 \
            or not -180 <= point[1] <= 180:
        raise PlaceError("lat must be between -90 and 90 and long between -180 and 180")
    return point
