"""Open311's pure parts: placing points and addresses in Kemendagri regions, the spec's XML
shape, the categories cache, and the request view's allow-list."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest

from services.intake.open311 import catalog, geo, render
from services.intake.open311 import requests as service_requests
from tests.open311_client import parse_json, parse_xml

REGIONS = [geo.Region("13", "Sumatera Barat", "provinsi"),
           geo.Region("13.03", "Kabupaten Sijunjung", "kabupaten_kota"),
           geo.Region("31", "Daerah Khusus Ibukota Jakarta", "provinsi"),
           geo.Region("31.72", "Kota Administrasi Jakarta Utara ", "kabupaten_kota"),
           geo.Region("32.04", "Kabupaten Bandung", "kabupaten_kota"),
           geo.Region("32.17", "Kabupaten Bandung Barat", "kabupaten_kota"),
           geo.Region("32.73", "Kota Bandung", "kabupaten_kota"),
           geo.Region("35.78", "Kota Surabaya", "kabupaten_kota"),
           geo.Region("51", "Bali", "provinsi")]
PLACES = geo.Gazetteer(REGIONS)


@pytest.mark.parametrize("point, code", [
    ((-0.6639, 100.9582), "13.03"),      # county Kabupaten Sijunjung
    ((-7.25, 112.75), "35.78"),          # county Kota Surabaya
    ((-6.2, 106.8), "31"),               # city Jakarta, no county: the province
])
def test_a_point_in_indonesia_is_placed_in_its_regency_or_province(point, code):
    assert PLACES.locate(*point).code == code


@pytest.mark.parametrize("point, words", [
    ((1.3, 103.8), "outside Indonesia"),            # Singapore
    ((-10.0, 110.0), "km from any known place"),    # the Indian Ocean south of Java
])
def test_a_point_outside_indonesia_or_at_sea_is_refused_with_the_reason(point, words):
    with pytest.raises(geo.PlaceError, match=words):
        PLACES.locate(*point)


@pytest.mark.parametrize("text, code", [
    ("Jl. Pemuda 12, Kota Surabaya", "35.78"),
    ("pasar muaro, SIJUNJUNG", "13.03"),
    ("Jl. Asia Afrika, Kota Bandung", "32.73"),
    ("Lembang, Kabupaten Bandung Barat", "32.17"),
    ("Jakarta Utara, Tanjung Priok", "31.72"),
    ("Denpasar, Bali", "51"),
])
def test_an_address_names_its_regency(text, code):
    assert PLACES.find_in_text(text).code == code


def test_an_ambiguous_or_unplaceable_address_says_what_to_write():
    with pytest.raises(geo.PlaceError, match="Kabupaten Bandung or Kota Bandung"):
        PLACES.find_in_text("Jl. Braga, Bandung")
    with pytest.raises(geo.PlaceError, match="names no regency or city"):
        PLACES.find_in_text("Jl. Merdeka 1")


@pytest.mark.parametrize("lat, lon, words", [
    ("x", "100", "decimal degrees"), ("1", "", "both lat and long"),
    ("nan", "100", "between -90 and 90"), ("0", "181", "between -90 and 90"),
])
def test_bad_coordinates_are_named(lat, lon, words):
    with pytest.raises(geo.PlaceError, match=words):
        geo.parse_point(lat, lon)


def test_no_coordinates_is_no_point():
    assert geo.parse_point("", "") is None
    assert geo.parse_point("-0.5", "100.5") == (-0.5, 100.5)


def test_xml_has_the_spec_shape_and_both_formats_parse_alike():
    data = [{"service_code": "PUPR", "metadata": True, "group": None,
             "attributes": [{"code": "kind", "order": 2,
                             "values": [{"key": "ASPIRASI", "name": "Aspirasi"}]}]}]
    xml = render.to_xml("services", data)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<services><service>')
    root = ElementTree.fromstring(xml)
    assert root.find("service/attributes/attribute/values/value/key").text == "ASPIRASI"
    assert root.find("service/metadata").text == "true"
    assert root.find("service/group").text is None
    assert parse_xml(xml) == parse_json(render.response("json", "services", data).data)


def test_errors_are_the_spec_error_document():
    error = render.Open311Error(400, "lat: wrong", "email: wrong")
    xml = render.error_response("xml", error)
    assert xml.status_code == 400 and xml.content_type == "text/xml; charset=utf-8"
    assert parse_xml(xml.data) == [{"code": 400, "description": "lat: wrong"},
                                   {"code": 400, "description": "email: wrong"}]
    assert parse_json(render.error_response("json", error).data) == parse_xml(xml.data)


def test_the_suffix_chooses_the_format_and_xml_is_the_default():
    assert render.split_format("PUPR.json") == ("PUPR", "json")
    assert render.split_format("PUPR.xml") == ("PUPR", "xml")
    assert render.split_format("PUPR") == ("PUPR", "xml")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _answer(*codes):
    return SimpleNamespace(categories=[SimpleNamespace(code=c, name=c.title(),
                                                       subcategories=[]) for c in codes])


def test_the_categories_are_kept_and_served_stale_while_routing_is_down():
    clock = Clock()
    cache = catalog.Catalog(fresh=300, stale=3600, retry=5, clock=clock)
    assert list(cache.services(lambda: _answer("PUPR"))) == ["PUPR"]
    calls = []

    def down():
        calls.append(clock.now)
        raise ConnectionError("routing is down")

    clock.now = 100       # fresh: routing is not asked
    assert list(cache.services(down)) == ["PUPR"] and calls == []
    clock.now = 400       # stale: asked, fails, the old list is served
    assert list(cache.services(down)) == ["PUPR"] and calls == [400]
    clock.now = 402       # within the retry pause: not asked again
    assert list(cache.services(down)) == ["PUPR"] and calls == [400]
    clock.now = 500
    assert list(cache.services(lambda: _answer("PUPR", "KESEHATAN"))) == ["PUPR", "KESEHATAN"]
    clock.now = 500 + 3601
    with pytest.raises(catalog.CatalogUnavailable):
        cache.services(down)


def test_the_categories_are_unavailable_until_routing_first_answers():
    cache = catalog.Catalog(clock=Clock())
    with pytest.raises(catalog.CatalogUnavailable):
        cache.services(lambda: (_ for _ in ()).throw(ConnectionError()))


def _row(**overrides):
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    row = dict(tracking_id="LPR-7K2-M9Q-XD4", kind="PENGADUAN", status="DISPATCHED",
               agency_code="PUPR-13.03", agency_name="Dinas PUPR Sijunjung",
               deadline=now, deadline_zone="WIB", region_code="13.03", category="PUPR",
               confidential=False, support_count=0, linked_to="", created_at=now,
               updated_at=now, title="Jalan rusak", body="Jalan rusak berlubang.",
               latitude=-0.67, longitude=100.95, address="Jorong Koto Tuo",
               anonymous=True, channel="open311", language="id",
               access_token_hash="a" * 64)
    row.update(overrides)
    return SimpleNamespace(**row)


def test_a_request_shows_the_public_view_and_never_the_point_or_address():
    item = service_requests.item(_row(), {"13.03": "Kabupaten Sijunjung"},
                                 {"PUPR": "PEKERJAAN UMUM"})
    assert item["status"] == "open"
    assert item["status_notes"] == "Terdisposisi ke Dinas PUPR Sijunjung"
    assert item["agency_responsible"] == "Dinas PUPR Sijunjung"
    assert item["expected_datetime"] == "2026-12-01T03:00:00Z"
    assert item["address"] == "Kabupaten Sijunjung" and item["address_id"] == "13.03"
    assert item["lat"] is None and item["long"] is None
    assert "Jorong Koto Tuo" not in str(item) and "100.95" not in str(item)
    assert list(item)[:3] == ["service_request_id", "status", "status_notes"]


@pytest.mark.parametrize("status, linked, expected", [
    ("SUBMITTED", "", "open"), ("ON_HOLD", "", "open"), ("FOLLOWED_UP", "", "open"),
    ("REPORTER_REPLIED", "", "open"), ("CLOSED", "", "closed"), ("ARCHIVED", "", "closed"),
    ("ARCHIVED", "LPR-000-000-000", "closed"),
])
def test_the_rich_states_map_to_open_and_closed(status, linked, expected):
    row = _row(status=status, linked_to=linked, master_status=None)
    item = service_requests.item(row, {}, {})
    assert item["status"] == expected
    if linked:
        assert item["status_notes"] == f"Digabung dengan laporan {linked}"
