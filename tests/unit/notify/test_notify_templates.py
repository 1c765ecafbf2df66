"""Email to reporters and the national admin: Bahasa Indonesia by default, English on request,
HTML and text from sandboxed templates that see only their allow-listed fields."""

import pytest
from jinja2 import DictLoader, UndefinedError
from jinja2.exceptions import SecurityError

from services.notify import templates
from services.notify.templates import FIELDS, TEMPLATE_DIR, Renderer, TemplateError

PUBLIC = "https://lapor.example.go.id/"
TID = "LPR-7K3QX9M2"
AGENCY = "Dinas PUPR Kabupaten Sijunjung"
DISPATCHED = {"template": "dispatched", "tracking_id": TID, "agency_name": AGENCY,
              "deadline": "2026-07-17T09:00:00+00:00", "deadline_zone": "WIB",
              "ticket_version": 3}
# Everything any template reads, plus what none may ever show.
EVERYTHING = dict(DISPATCHED, ticket_id="TCK-1", state="FOLLOWED_UP", stage="DISPATCHED",
                  note="Catatan admin", question="Di mana tepatnya lokasinya?",
                  response="Jalan sudah ditambal pada 20 Juli.", reason="Spam atau iklan",
                  message="Mohon kirim foto terbaru.", kind="parent", level=2,
                  from_agency="Dinas PUPR Kabupaten Sijunjung",
                  to_agency="Dinas PUPR Provinsi Sumatera Barat")
PRIVATE = {"email": "siti.rahayu@example.id", "phone": "+6281234567890",
           "name": "Siti Rahayu", "reporter_name": "Siti Rahayu",
           "access_token": "tok-3f9a1c2b7d", "token": "tok-3f9a1c2b7d"}
ALL = [(name, lang) for name in FIELDS for lang in templates.LANGUAGES]


def render(stored, language="id"):
    return templates.render(stored, language, PUBLIC)


def whole(email):
    return email.subject + "\n" + email.body + "\n" + email.html


@pytest.mark.parametrize("name, language", ALL)
def test_every_template_renders_text_and_html_in_its_language(name, language):
    email = render(dict(EVERYTHING, template=name), language)
    assert email.subject.startswith("[LAPOR!] ") and "\n" not in email.subject
    assert TID in email.subject
    assert TID in email.body and TID in email.html
    assert email.html.startswith("<!DOCTYPE html>") and f'<html lang="{language}">' in email.html
    greeting = {"id": "Yth. ", "en": "Dear "}[language]
    other = {"id": "Dear ", "en": "Yth. "}[language]
    assert email.body.startswith(greeting) and other not in whole(email)
    assert "{{" not in whole(email) and "{%" not in whole(email)


@pytest.mark.parametrize("name, language", ALL)
def test_nothing_outside_the_allow_list_ever_renders(name, language):
    email = render(dict(EVERYTHING, template=name, **PRIVATE), language)
    for value in PRIVATE.values():
        assert value not in whole(email)
    assert "tok-" not in whole(email)


@pytest.mark.parametrize("language", templates.LANGUAGES)
def test_the_national_admins_email_names_the_ticket_and_no_reporter(language):
    stored = dict(EVERYTHING, template="national_escalated", kind="national", **PRIVATE)
    email = render(stored, language)
    text = email.body
    assert "TCK-1" in text and "Dinas PUPR Provinsi Sumatera Barat" in text
    assert "Jalan sudah ditambal" not in whole(email)  # no report content either
    assert "api/v1/reports" not in whole(email)
    for value in PRIVATE.values():
        assert value not in whole(email)


def test_dispatched_in_indonesian():
    email = render(DISPATCHED, "id")
    assert email.subject == f"[LAPOR!] Laporan {TID} diteruskan ke {AGENCY}"
    assert "Yth. Pelapor" in email.body
    assert "Jumat, 17 Juli 2026 pukul 16.00 WIB" in email.body
    assert f"https://lapor.example.go.id/api/v1/reports/{TID}" in email.body
    assert f'href="https://lapor.example.go.id/api/v1/reports/{TID}"' in email.html
    assert "Jumat, 17 Juli 2026 pukul 16.00 WIB" in email.html


def test_dispatched_in_english():
    email = render(DISPATCHED, "en")
    assert email.subject == f"[LAPOR!] Report {TID} forwarded to {AGENCY}"
    assert "Friday, 17 July 2026 at 16:00 WIB" in email.body
    assert "Yth." not in email.body


@pytest.mark.parametrize("language", ["", "id", "fr", None, "ID", "en-US", "EN"])
def test_anything_but_english_gets_indonesian(language):
    english = (language or "").lower().startswith("en")
    subject = render(DISPATCHED, language).subject
    assert subject.startswith("[LAPOR!] Report" if english else "[LAPOR!] Laporan")


def test_received_into_triage():
    email = render(dict(DISPATCHED, template="received", agency_name=""), "id")
    assert email.subject == f"[LAPOR!] Laporan {TID} diterima, menunggu verifikasi"
    assert "menunggu verifikasi" in email.body


def test_a_hold_asks_the_admins_question():
    stored = dict(DISPATCHED, template="held", deadline=None,
                  question="Mohon lampirkan foto lokasi.")
    email = render(stored, "id")
    assert email.subject == f"[LAPOR!] Laporan {TID} ditunda: mohon lengkapi informasi"
    assert "Mohon lampirkan foto lokasi." in email.body and "kode akses" in email.body
    english = render(stored, "en")
    assert "Mohon lampirkan foto lokasi." in english.body and "access code" in english.body


def test_a_follow_up_gives_the_response_and_when_it_closes_by_itself():
    stored = dict(DISPATCHED, template="followed_up",
                  response="Jalan sudah ditambal.\nTerima kasih atas laporannya.")
    email = render(stored, "id")
    assert email.subject == f"[LAPOR!] Laporan {TID} ditindaklanjuti oleh {AGENCY}"
    assert "Jalan sudah ditambal.\nTerima kasih atas laporannya." in email.body
    assert "ditutup otomatis" in email.body and "Jumat, 17 Juli 2026" in email.body
    assert "white-space:pre-line" in email.html  # the response keeps its lines in HTML
    assert "closes automatically" in render(stored, "en").body


def test_an_acceptance_gives_the_deadline_the_agency_declared():
    email = render(dict(DISPATCHED, template="accepted"), "id")
    assert email.subject == f"[LAPOR!] Laporan {TID} diterima oleh {AGENCY}"
    assert "Jumat, 17 Juli 2026 pukul 16.00 WIB" in email.body


def test_a_closure_offers_rating_and_appeal_within_ten_working_days():
    stored = dict(DISPATCHED, template="closed", deadline=None,
                  note="Selesai otomatis: tidak ada tanggapan pelapor dalam 10 hari kerja")
    email = render(stored, "id")
    assert email.subject == f"[LAPOR!] Laporan {TID} selesai"
    assert "penilaian" in email.body and "banding dalam 10 hari kerja" in email.body
    assert "Selesai otomatis" in email.body
    english = render(stored, "en")
    assert "Rate" in english.body and "appeal within 10 working days" in english.body
    assert "Catatan" not in render(dict(stored, note=""), "id").body


def test_archiving_gives_the_reason():
    email = render(dict(DISPATCHED, template="archived", reason="Duplikat laporan lain"), "id")
    assert email.subject == f"[LAPOR!] Laporan {TID} diarsipkan"
    assert "Alasan: Duplikat laporan lain" in email.body


def test_the_auto_close_warning_names_the_deadline():
    email = render(dict(DISPATCHED, template="auto_close_warning"), "en")
    assert email.subject == f"[LAPOR!] Report {TID} will close automatically"
    assert "Friday, 17 July 2026 at 16:00 WIB" in email.body


@pytest.mark.parametrize("kind, indonesian, english", [
    ("parent", "dieskalasi ke Dinas PUPR Provinsi", "escalated to Dinas PUPR Provinsi"),
    ("", "dieskalasi ke Dinas PUPR Provinsi", "escalated to Dinas PUPR Provinsi"),
    ("national", "dikembalikan ke admin nasional", "returned to the national administrator"),
    ("oversight", "pengawasan Ombudsman", "Ombudsman's oversight"),
])
def test_an_escalation_says_where_the_report_went(kind, indonesian, english):
    stored = dict(DISPATCHED, template="escalated", kind=kind,
                  agency_name="Dinas PUPR Provinsi Sumatera Barat")
    assert indonesian in render(stored, "id").subject
    assert english in render(stored, "en").subject


def test_the_agencys_message_is_relayed():
    stored = dict(DISPATCHED, template="message", message="Mohon kirim foto terbaru.")
    email = render(stored, "id")
    assert email.subject == f"[LAPOR!] Pesan dari {AGENCY} tentang laporan {TID}"
    assert "Mohon kirim foto terbaru." in email.body and "Mohon kirim foto terbaru." in email.html


def test_status_change_names_the_state_and_the_note():
    stored = dict(DISPATCHED, template="status", state="SUBMITTED",
                  note="Dikembalikan ke admin nasional untuk didisposisi ulang")
    email = render(stored, "id")
    assert email.subject == f"[LAPOR!] Status laporan {TID}: Belum terverifikasi"
    assert "Dikembalikan ke admin nasional" in email.body
    assert render(stored, "en").subject == f"[LAPOR!] Report {TID}: Not yet verified"


def test_a_missing_deadline_reads_as_not_set():
    stored = dict(DISPATCHED, deadline=None)
    assert "belum ditetapkan" in render(stored, "id").body
    assert "not set yet" in render(stored, "en").body


@pytest.mark.parametrize("name", ["followed_up", "message", "held", "archived", "closed"])
def test_a_hostile_text_is_escaped_in_html(name):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    stored = dict(EVERYTHING, template=name, response=hostile, message=hostile,
                  question=hostile, reason=hostile, note=hostile, agency_name=hostile)
    html = render(stored).html
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_subject_stays_one_line_whatever_the_agency_name():
    for name in ("Dinas PUPR\r\nBcc: attacker@example.com", "Dinas\u2028PUPR\x00\x1b[31m",
                 "Dinas " + "sangat " * 60 + "panjang"):
        subject = render(dict(DISPATCHED, agency_name=name)).subject
        assert "\n" not in subject and "\r" not in subject and "\u2028" not in subject
        assert "\x00" not in subject and "\x1b" not in subject
        assert len(subject) <= templates.SUBJECT_MAX


def test_the_link_never_carries_an_access_token():
    assert templates.report_link("http://127.0.0.1:8080", TID) == \
        f"http://127.0.0.1:8080/api/v1/reports/{TID}"


def test_unknown_template_is_an_error():
    with pytest.raises(TemplateError):
        render(dict(DISPATCHED, template="nope"))


# -- the sandbox and the allow-list hold for templates someone edits --------------------------
def shipped(**replaced) -> DictLoader:
    files = {path.name: path.read_text(encoding="utf-8") for path in TEMPLATE_DIR.iterdir()}
    files.update(replaced)
    return DictLoader(files)


def test_the_shipped_templates_pass_the_check_and_exist_for_every_language_and_format():
    Renderer(shipped()).check()
    names = {path.name for path in TEMPLATE_DIR.iterdir()}
    for name, language in ALL:
        assert {f"{name}.{language}.txt", f"{name}.{language}.html"} <= names


EDITED = ('{% extends "_reporter.id.txt" %}{% block subject %}[LAPOR!] {{ tracking_id }}'
          '{% endblock %}{% block body %}Kontak: {{ email }}{% endblock %}')


def test_a_template_naming_a_field_outside_its_allow_list_is_refused_at_start():
    with pytest.raises(TemplateError, match="dispatched.id.txt uses email"):
        Renderer(shipped(**{"dispatched.id.txt": EDITED}))


def test_a_template_naming_a_field_outside_its_allow_list_fails_to_render():
    renderer = Renderer(shipped(**{"dispatched.id.txt": EDITED}), check=False)
    # Even when the stored fields hold it: the template sees only its allow-list.
    with pytest.raises(UndefinedError):
        renderer.render(dict(DISPATCHED, email="siti.rahayu@example.id"), "id", PUBLIC)


@pytest.mark.parametrize("expression", [
    "tracking_id.__class__.__mro__", "tracking_id.format.__globals__",
    "range(3)", "lipsum()", "self._TemplateReference__context"])
def test_the_sandbox_refuses_reaching_beyond_the_fields(expression):
    edited = ('{% extends "_reporter.id.txt" %}{% block subject %}s{% endblock %}'
              "{% block body %}{{ " + expression + " }}{% endblock %}")
    renderer = Renderer(shipped(**{"dispatched.id.txt": edited}), check=False)
    with pytest.raises((SecurityError, UndefinedError)):
        renderer.render(DISPATCHED, "id", PUBLIC)


def test_a_missing_translation_is_refused_at_start():
    loader = shipped()
    del loader.mapping["accepted.en.html"]
    with pytest.raises(TemplateError, match="accepted.en.html"):
        Renderer(loader)


def test_a_text_template_without_a_subject_is_refused_at_start():
    edited = '{% extends "_reporter.id.txt" %}{% block body %}isi{% endblock %}'
    with pytest.raises(TemplateError, match="no subject block"):
        Renderer(shipped(**{"accepted.id.txt": edited}))
