"""Region names in free text: the regency or city a message names, the most specific match,
an ambiguity when two places share a name, everyday words that are also place names."""

from __future__ import annotations

import pytest

from services.infra.regions import Region, read_regions_csv
from services.intake.inbound.places import Gazetteer, tokens

LIST = [Region("13", "Sumatera Barat", "provinsi"),
        Region("13.03", "Kabupaten Sijunjung", "kabupaten_kota"),
        Region("13.03.04", "Sijunjung", "kecamatan"),
        Region("13.05", "Kabupaten Padang Pariaman", "kabupaten_kota"),
        Region("13.71", "Kota Padang", "kabupaten_kota"),
        Region("31", "Daerah Khusus Ibukota Jakarta", "provinsi"),
        Region("31.71", "Kota Administrasi Jakarta Pusat", "kabupaten_kota"),
        Region("32", "Jawa Barat", "provinsi"),
        Region("32.01", "Kabupaten Bogor", "kabupaten_kota"),
        Region("32.71", "Kota Bogor", "kabupaten_kota"),
        Region("35.79", "Kota Batu", "kabupaten_kota"),
        Region("72.06", "Kabupaten Toli-Toli", "kabupaten_kota")]
PLACES = Gazetteer(LIST)


@pytest.mark.parametrize("text, code", [
    ("Jalan rusak di Nagari Muaro Sijunjung", "13.03"),
    ("kab. SIJUNJUNG", "13.03"),
    ("Kabupaten Sijunjung, Sumatera Barat", "13.03"),
    ("di kota padang", "13.71"),
    ("Padang", "13.71"),
    ("banjir di Padang Pariaman", "13.05"),
    ("Sumatera Barat", "13"),
    ("macet di Jakarta Pusat", "31.71"),
    ("DKI Jakarta", "31"),
    ("Kota Bogor", "32.71"),
    ("kab bogor", "32.01"),
    ("Kota Batu", "35.79"),
    ("Batu", "35.79"),
    ("Tolitoli", "72.06"),
    ("toli-toli", "72.06"),
    ("Jálan rusák di Sijunjung", "13.03"),
])
def test_the_place_a_text_names(text, code):
    found = PLACES.find(text).found
    assert found is not None and found.code == code, PLACES.find(text)


def test_a_name_two_places_share_is_ambiguous_until_chosen():
    finding = PLACES.find("sekolah di Bogor kekurangan guru")
    assert finding.ambiguous and [p.code for p in finding.places] == ["32.01", "32.71"]
    assert PLACES.find("kota", among=["32.01", "32.71"]).found.code == "32.71"
    assert PLACES.find("1", among=["32.01", "32.71"]).found.code == "32.01"
    assert PLACES.find("yang kabupaten", among=["32.01", "32.71"]).found.code == "32.01"


@pytest.mark.parametrize("text", [
    "batu besar menutup jalan desa sejak longsor kemarin",
    "Lampu jalan mati sudah seminggu",
    "",
])
def test_no_place_is_guessed(text):
    assert PLACES.find(text).places == ()


def test_two_different_places_are_ambiguous():
    assert PLACES.find("dari Sijunjung ke Kota Padang jalannya rusak").ambiguous


def test_districts_and_villages_are_not_matched():
    assert all(p.code.count(".") <= 1 for p in PLACES.by_code.values())


def test_tokens_fold_case_accents_and_punctuation():
    assert tokens("Kab. Sijunjung—Sumbar!") == ["kab", "sijunjung", "sumbar"]


def test_every_regency_city_and_province_of_the_national_list_is_found_by_its_name(
        shared_data):
    rows = [r for r in read_regions_csv(shared_data / "wilayah-kepmendagri-2025.csv")
            if r.level in ("provinsi", "kabupaten_kota")]
    places = Gazetteer(rows)
    assert len(places) == len(rows) > 500
    missed = []
    for region in rows:
        # A province is named as such: "Jambi" alone is the city, the more specific place.
        text = f"Provinsi {region.name}" if region.level == "provinsi" else region.name
        found = places.find(f"jalan rusak di {text}, sudah lama").found
        if found is None or found.code != region.code:
            missed.append((region.code, region.name))
    assert missed == []
