"""What a citizen (or the front-end developer building the form) is told about a report
body: every problem at once, each naming its field."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.intake.validation import ValidationFailed, normalise_phone, parse_new_report

JAKARTA = ZoneInfo("Asia/Jakarta")


def body(**changes) -> dict:
    data = {
        "kind": "PENGADUAN",
        "title": "Jalan rusak berlubang di Nagari Muaro",
        "body": "Jalan utama Nagari Muaro, Sijunjung berlubang besar sejak Januari dan "
                "sudah dua kali menyebabkan pengendara motor jatuh.",
        "region_code": "13.03",
        "incident_date": "2025-01-15",
        "location": {"latitude": -0.6886, "longitude": 100.9527},
        "address": "Jl. Lintas Sumatera km 3, Muaro Sijunjung",
        "anonymous": False,
        "confidential": False,
        "reporter": {"name": "Siti Rahmawati", "email": "siti.rahma@contoh.id",
                     "phone": "0812-3456-7890", "language": "id"},
    }
    data.update(changes)
    return data


def errors_of(data, **kwargs) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        parse_new_report(data, **kwargs)
    problems = caught.value.errors
    assert problems, "ValidationFailed without any problem listed"
    for problem in problems:
        assert problem["message"].strip(), problem
    return {p["field"]: p["message"] for p in problems}


def test_a_complete_report_is_accepted_as_sent():
    report = parse_new_report(body())
    assert report.kind == "PENGADUAN"
    assert report.title == "Jalan rusak berlubang di Nagari Muaro"
    assert report.region_code == "13.03"
    assert report.incident_date == "2025-01-15"
    assert (report.latitude, report.longitude) == (-0.6886, 100.9527)
    assert report.channel == "web"
    assert report.anonymous is False
    assert report.reporter.name == "Siti Rahmawati"
    assert report.reporter.phone == "+6281234567890"


def test_a_minimal_report_is_accepted():
    report = parse_new_report({"kind": "ASPIRASI", "title": "Tambah jadwal bus",
                               "body": "Mohon tambah jadwal bus sekolah pagi.",
                               "region_code": "13"})
    assert report.region_code == "13"
    assert report.latitude is None and report.longitude is None
    assert report.anonymous is False and report.confidential is False
    assert report.reporter.name == report.reporter.email == report.reporter.phone == ""


def test_surrounding_whitespace_is_trimmed():
    report = parse_new_report(body(title="  Jalan rusak berlubang \n", region_code=" 13.03 "))
    assert report.title == "Jalan rusak berlubang"
    assert report.region_code == "13.03"


# --- required fields --------------------------------------------------------


@pytest.mark.parametrize("field", ["kind", "title", "body", "region_code"])
@pytest.mark.parametrize("how", ["absent", "null"])
def test_each_missing_required_field_is_named(field, how):
    data = body()
    if how == "absent":
        del data[field]
    else:
        data[field] = None
    problems = errors_of(data)
    assert list(problems) == [field]
    assert "required" in problems[field]


@pytest.mark.parametrize("field", ["title", "body", "region_code"])
def test_a_blank_required_text_counts_as_missing(field):
    problems = errors_of(body(**{field: " \t\n "}))
    assert list(problems) == [field]
    assert "required" in problems[field]


def test_the_exception_text_names_the_fields_too():
    data = body()
    del data["title"]
    with pytest.raises(ValidationFailed) as caught:
        parse_new_report(data)
    assert "title" in str(caught.value)


@pytest.mark.parametrize("not_an_object", [[], ["kind", "title"], "Jalan rusak", 42, None, True])
def test_a_body_that_is_not_a_json_object_is_explained(not_an_object):
    problems = errors_of(not_an_object)
    assert list(problems) == ["(body)"]
    assert "object" in problems["(body)"]


def test_every_problem_is_reported_at_once():
    data = body(kind="KELUHAN", title="abc", body="pendek", region_code="13-03",
                incident_date="kemarin", anonymous="ya", category="jalan rusak",
                reporter={"name": "Siti", "email": "siti@", "phone": "12", "language": "jv"})
    problems = errors_of(data)
    assert set(problems) == {"kind", "title", "body", "region_code", "incident_date",
                             "anonymous", "category", "reporter.email", "reporter.phone",
                             "reporter.language"}


# --- types ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "ya", [], {}])
@pytest.mark.parametrize("flag", ["anonymous", "confidential"])
def test_flags_must_be_real_booleans(flag, value):
    problems = errors_of(body(**{flag: value}))
    assert list(problems) == [flag]
    assert "true or false" in problems[flag]


@pytest.mark.parametrize("flag", ["anonymous", "confidential"])
def test_flags_take_true(flag):
    assert getattr(parse_new_report(body(**{flag: True})), flag) is True


@pytest.mark.parametrize("field,value", [
    ("title", 12345), ("title", ["Jalan", "rusak"]), ("body", {"text": "x" * 30}),
    ("region_code", 13), ("region_code", 13.03), ("address", 7),
])
def test_text_fields_must_be_strings(field, value):
    problems = errors_of(body(**{field: value}))
    assert list(problems) == [field]
    assert "string" in problems[field]


@pytest.mark.parametrize("kind", ["KELUHAN", "pengaduan", 1])
def test_unknown_kind_lists_the_known_ones(kind):
    problems = errors_of(body(kind=kind))
    for known in ("PENGADUAN", "ASPIRASI", "PERMINTAAN_INFORMASI"):
        assert known in problems["kind"]


@pytest.mark.parametrize("kind", ["PENGADUAN", "ASPIRASI", "PERMINTAAN_INFORMASI"])
def test_every_kind_is_accepted(kind):
    assert parse_new_report(body(kind=kind)).kind == kind


def test_too_long_title_says_the_limit():
    problems = errors_of(body(title="J" * 201))
    assert "200" in problems["title"]


def test_too_short_body_says_the_limit():
    problems = errors_of(body(body="rusak"))
    assert "10" in problems["body"]


@pytest.mark.parametrize("reporter", ["Siti", ["Siti"], 5])
def test_reporter_must_be_an_object(reporter):
    assert list(errors_of(body(reporter=reporter))) == ["reporter"]


# --- region codes -----------------------------------------------------------


@pytest.mark.parametrize("code", ["13", "13.03", "13.03.01", "13.03.01.2001", "91.71"])
def test_kemendagri_region_codes_at_every_level_are_accepted(code):
    assert parse_new_report(body(region_code=code)).region_code == code


@pytest.mark.parametrize("code", ["13-03", "1303", "13.3", "1.03", "13.03.1", "13.03.01.201",
                                  "13.03.01.20011", "13.", ".13", "13.03.", "ab.cd", "13/03",
                                  "13.03 01"])
def test_malformed_region_codes_are_rejected_with_examples(code):
    problems = errors_of(body(region_code=code))
    assert list(problems) == ["region_code"]
    assert "13.03" in problems["region_code"]


@pytest.mark.parametrize("code", ["\uff11\uff13.\uff10\uff13", "\u0661\u0663.\u0660\u0663"])
def test_region_codes_in_non_latin_digits_are_rejected(code):
    # Fullwidth (IME keyboards) and Arabic-Indic digits look like 13.03 but match no region.
    assert "region_code" in errors_of(body(region_code=code))


# --- email and phone --------------------------------------------------------


@pytest.mark.parametrize("email", ["siti.rahma@contoh.id", "budi+lapor@mail.sijunjung.go.id",
                                   "a@b.co"])
def test_plausible_emails_are_accepted(email):
    assert parse_new_report(body(reporter={"email": email})).reporter.email == email


def test_an_email_with_spaces_around_it_is_refused_with_the_reason():
    # The document says format idn-email, which has no room for spaces; browsers trim
    # <input type=email> themselves.
    problems = errors_of(body(reporter={"email": "  siti.rahma@contoh.id \t"}))
    assert "SPACE" in problems["reporter.email"] and "@" in problems["reporter.email"]


@pytest.mark.parametrize("email", ["siti", "siti@", "@contoh.id", "siti@contoh",
                                   "siti rahma@contoh.id", "siti@contoh..id", "siti@-contoh.id",
                                   "siti@@contoh.id"])
def test_implausible_emails_are_rejected_with_an_example(email):
    problems = errors_of(body(reporter={"email": email}))
    assert list(problems) == ["reporter.email"]
    assert "@" in problems["reporter.email"]


@pytest.mark.parametrize("raw", [
    "081234567890", "0812-3456-7890", "0812 3456 7890", "(0812) 3456-7890", "+6281234567890",
    "+62 812-3456-7890", "6281234567890", "62 812 3456 7890", " 0812.3456.7890 ",
])
def test_indonesian_mobile_numbers_in_every_usual_form_become_e164(raw):
    assert normalise_phone(raw) == "+6281234567890"


def test_landline_with_area_code_becomes_e164():
    assert normalise_phone("(0754) 20123") == "+6275420123"


def test_the_stored_phone_is_the_normalised_one():
    report = parse_new_report(body(reporter={"phone": "0812 3456 7890"}))
    assert report.reporter.phone == "+6281234567890"


@pytest.mark.parametrize("raw", ["0812-345", "12345", "+62 812", "0812-ABCD-7890", "+",
                                 "nomor saya 0812", "0812345678901234567"])
def test_numbers_too_short_too_long_or_not_numbers_are_rejected(raw):
    assert normalise_phone(raw) is None
    problems = errors_of(body(reporter={"phone": raw}))
    assert list(problems) == ["reporter.phone"]
    assert "0812" in problems["reporter.phone"]


@pytest.mark.parametrize("raw", ["812-3456-7890", "+0812 3456 7890"])
def test_numbers_without_a_country_code_never_become_a_foreign_or_invalid_number(raw):
    # SMS to the reporter would go to Japan (+81…) or fail at the gateway (+0…).
    assert normalise_phone(raw) in (None, "+6281234567890")


def test_reporter_language_must_be_id_or_en():
    assert parse_new_report(body(reporter={"language": "en"})).reporter.language == "en"
    assert list(errors_of(body(reporter={"language": "jv"}))) == ["reporter.language"]


# --- location ---------------------------------------------------------------


@pytest.mark.parametrize("lat,lon", [(-0.6886, 100.9527), (-90, -180), (90, 180), (0, 0),
                                     (-2, 140)])
def test_locations_on_earth_are_accepted(lat, lon):
    report = parse_new_report(body(location={"latitude": lat, "longitude": lon}))
    assert (report.latitude, report.longitude) == (lat, lon)


@pytest.mark.parametrize("lat,lon,field", [
    (91, 100.9, "location.latitude"), (-90.01, 100.9, "location.latitude"),
    (-0.7, 180.5, "location.longitude"), (-0.7, -181, "location.longitude"),
    ("-0.7", 100.9, "location.latitude"), (-0.7, "100.9", "location.longitude"),
    (True, 100.9, "location.latitude"), (-0.7, None, "location.longitude"),
    (float("nan"), 100.9, "location.latitude"), (-0.7, float("inf"), "location.longitude"),
])
def test_locations_off_the_map_name_the_coordinate(lat, lon, field):
    problems = errors_of(body(location={"latitude": lat, "longitude": lon}))
    assert list(problems) == [field]


@pytest.mark.parametrize("location", [[-0.7, 100.9], "-0.7,100.9", 5])
def test_location_must_be_an_object(location):
    assert list(errors_of(body(location=location))) == ["location"]


def test_both_bad_coordinates_are_reported_at_once():
    problems = errors_of(body(location={"latitude": 200, "longitude": 500}))
    assert set(problems) == {"location.latitude", "location.longitude"}


# --- incident date ----------------------------------------------------------


def _jakarta_today():
    return datetime.now(JAKARTA).date()


def test_an_incident_today_or_last_year_is_accepted():
    for when in (_jakarta_today(), _jakarta_today() - timedelta(days=365)):
        assert parse_new_report(body(incident_date=when.isoformat())).incident_date == \
            when.isoformat()


@pytest.mark.parametrize("days_ahead", [2, 30, 400])
def test_an_incident_in_the_future_is_rejected(days_ahead):
    when = _jakarta_today() + timedelta(days=days_ahead)
    problems = errors_of(body(incident_date=when.isoformat()))
    assert "future" in problems["incident_date"]


def test_an_incident_more_than_ten_years_ago_is_rejected():
    when = _jakarta_today() - timedelta(days=3660)
    assert "incident_date" in errors_of(body(incident_date=when.isoformat()))


@pytest.mark.parametrize("text", ["15-01-2025", "2025-02-30", "2025/01/15", "kemarin",
                                  "2025-13-01"])
def test_an_incident_date_that_is_not_a_date_asks_for_yyyy_mm_dd(text):
    problems = errors_of(body(incident_date=text))
    assert "YYYY-MM-DD" in problems["incident_date"]


@pytest.mark.parametrize("text", ["20250115", "2025-W03-3"])
def test_incident_date_reaches_routing_as_yyyy_mm_dd_or_is_rejected(text):
    try:
        report = parse_new_report(body(incident_date=text))
    except ValidationFailed as failed:
        assert "incident_date" in str(failed)
    else:
        assert report.incident_date == "2025-01-15"


# --- channel ----------------------------------------------------------------


def test_gateway_channel_overrides_what_the_body_says():
    assert parse_new_report(body(channel="web"), channel="sms").channel == "sms"


def test_channel_from_the_body_is_checked():
    assert parse_new_report(body(channel="mobile")).channel == "mobile"
    problems = errors_of(body(channel="fax"))
    assert "web" in problems["channel"]


def test_parsing_does_not_modify_the_callers_body():
    data = body(title="  Jalan rusak berlubang  ")
    before = copy.deepcopy(data)
    parse_new_report(data)
    assert data == before
