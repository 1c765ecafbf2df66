"""Reporter email: Bahasa Indonesia by default, English on request, only allow-listed fields."""

import string

import pytest

from services.notify import templates
from services.notify.templates import FIELDS

PUBLIC = "https://lapor.example.go.id/"
DISPATCHED = {"template": "dispatched", "tracking_id": "LPR-7K3QX9M2",
              "agency_name": "Dinas PUPR Kabupaten Sijunjung",
              "deadline": "2026-07-17T09:00:00+00:00", "deadline_zone": "WIB",
              "state": "", "note": ""}


def test_dispatched_in_indonesian():
    email = templates.render(DISPATCHED, "id", PUBLIC)
    assert email.subject == ("[LAPOR!] Laporan LPR-7K3QX9M2 diteruskan ke "
                             "Dinas PUPR Kabupaten Sijunjung")
    assert "Yth. Pelapor" in email.body
    assert "Jumat, 17 Juli 2026 pukul 16.00 WIB" in email.body
    assert "https://lapor.example.go.id/api/v1/reports/LPR-7K3QX9M2" in email.body


def test_dispatched_in_english():
    email = templates.render(DISPATCHED, "en", PUBLIC)
    assert email.subject == "[LAPOR!] Report LPR-7K3QX9M2 forwarded to " \
                            "Dinas PUPR Kabupaten Sijunjung"
    assert "Friday, 17 July 2026 at 16:00 WIB" in email.body
    assert "Yth." not in email.body


@pytest.mark.parametrize("language", ["", "id", "fr", None])
def test_anything_but_english_gets_indonesian(language):
    assert templates.render(DISPATCHED, language, PUBLIC).subject.startswith("[LAPOR!] Laporan")


def test_received_into_triage():
    stored = dict(DISPATCHED, template="received", state="SUBMITTED", agency_name="")
    email = templates.render(stored, "id", PUBLIC)
    assert email.subject == "[LAPOR!] Laporan LPR-7K3QX9M2 diterima, menunggu verifikasi"
    assert "menunggu verifikasi" in email.body


def test_status_change_names_the_state_and_the_public_note():
    stored = dict(DISPATCHED, template="status", state="ON_HOLD",
                  note="Mohon lampirkan foto lokasi.")
    email = templates.render(stored, "id", PUBLIC)
    assert email.subject == "[LAPOR!] Status laporan LPR-7K3QX9M2: Ditunda"
    assert "Mohon lampirkan foto lokasi." in email.body
    english = templates.render(stored, "en", PUBLIC)
    assert english.subject == "[LAPOR!] Report LPR-7K3QX9M2: On hold"


def test_a_missing_deadline_reads_as_not_set():
    stored = dict(DISPATCHED, deadline=None)
    assert "belum ditetapkan" in templates.render(stored, "id", PUBLIC).body
    assert "not set yet" in templates.render(stored, "en", PUBLIC).body


def test_stored_fields_outside_the_allow_list_never_render():
    stored = dict(DISPATCHED, email="siti@example.id", access_token="tok-123", phone="0812")
    email = templates.render(stored, "id", PUBLIC)
    text = email.subject + email.body
    assert "siti@example.id" not in text and "tok-123" not in text and "0812" not in text


def test_subject_stays_one_line_whatever_the_agency_name():
    stored = dict(DISPATCHED, agency_name="Dinas PUPR\r\nBcc: attacker@example.com")
    assert "\n" not in templates.render(stored, "id", PUBLIC).subject


def test_every_template_uses_only_allow_listed_fields():
    for (subject, body) in templates._TEMPLATES.values():
        for text in (subject, body):
            for match in string.Template.pattern.finditer(text):
                name = match.group("named") or match.group("braced")
                assert name is None or name in FIELDS


def test_the_link_never_carries_an_access_token():
    assert templates.report_link("http://127.0.0.1:8080", "LPR-7K3QX9M2") == \
        "http://127.0.0.1:8080/api/v1/reports/LPR-7K3QX9M2"


def test_unknown_template_is_an_error():
    with pytest.raises(ValueError):
        templates.render(dict(DISPATCHED, template="nope"), "id", PUBLIC)
