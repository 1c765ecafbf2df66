"""SMS sizing against known examples (3GPP TS 23.038/23.040), and the short texts: each fits
its parts, keeps the tracking id whole, speaks the reporter's language, holds no contact."""

from datetime import UTC, datetime

import pytest

from services.notify import payloads
from services.notify.channels import sms
from services.notify.templates import FIELDS, short

TID = "LPR-7K2-M9Q-XD4"
DEADLINE = datetime(2026, 7, 17, 9, 0, tzinfo=UTC)  # Jumat 17 Juli 2026 16.00 WIB


@pytest.mark.parametrize("text, encoding, units, parts", [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("é" * 160, "GSM-7", 160, 1),          # in the basic alphabet
    ("€" * 80, "GSM-7", 160, 1),           # extension characters count two
    ("€" * 81, "GSM-7", 162, 2),
    ("[x]{y}^~\\|", "GSM-7", 18, 1),  # eight extension characters, two basic
    ("ā" * 70, "UCS-2", 70, 1),           # one character outside the alphabet: UCS-2
    ("ā" * 71, "UCS-2", 71, 2),
    ("a" * 134 + "ā", "UCS-2", 135, 3),
    ("ā" * 134, "UCS-2", 134, 2),
    ("😀" * 35, "UCS-2", 70, 1),          # beyond the BMP: two UTF-16 units
    ("😀" * 36, "UCS-2", 72, 2),
    ("Laporan diterima’", "UCS-2", 17, 1),
])
def test_size_of_known_texts(text, encoding, units, parts):
    assert sms.size(text) == sms.Size(encoding, units, parts)


def test_a_two_unit_character_is_never_split_between_parts():
    text = "a" * 152 + "€" + "b" * 10
    parts = sms.split(text)
    assert parts == ["a" * 152, "€" + "b" * 10]
    emoji = sms.split("😀" * 36)
    assert [len(part) for part in emoji] == [33, 3]  # 66 units, then the rest
    assert "".join(emoji) == "😀" * 36


def test_typographic_punctuation_becomes_its_gsm_look_alike():
    assert sms.plain("“Jalan” rusak – lagi…") == '"Jalan" rusak - lagi...'
    assert sms.is_gsm7(sms.plain("“Jalan” rusak – lagi…"))


def test_shorten_marks_the_cut_and_keeps_whole_words():
    assert sms.shorten("jalan berlubang besar sekali", None) == "jalan berlubang besar sekali"
    assert sms.shorten("jalan berlubang besar sekali", 20) == "jalan berlubang..."
    assert sms.shorten("abc", 2) == ""


@pytest.mark.parametrize("raw", ["0", "11", "tiga", ""])
def test_max_parts_must_be_a_small_whole_number(raw):
    with pytest.raises(ValueError):
        sms.max_parts_from(raw)


def fields(template, **text):
    text.setdefault("agency_name", "Dinas Pekerjaan Umum dan Penataan Ruang Kabupaten Sijunjung")
    return payloads.email_fields(template, TID, deadline=DEADLINE, deadline_zone="WIB",
                                 **text)


LONG = "Mohon jelaskan lokasi tepatnya, nama jorong, dan patokan terdekat. " * 12


@pytest.mark.parametrize("max_parts", [1, 2, 3])
def test_a_long_question_is_cut_to_fit_and_the_tracking_id_stays(max_parts):
    text = short.render(fields("held", question=LONG), "id", "https://lapor.example",
                        short.SMS, max_parts)
    assert sms.parts(text) <= max_parts
    assert TID in text and text.startswith("LAPOR! Laporan ")
    assert "..." in text and LONG not in text
    # Cut no more than needed: nearly all of the last part is used.
    assert sms.size(text).units > (160 if max_parts == 1 else 153 * max_parts) - 25


def test_a_note_with_an_emoji_is_measured_as_ucs2_and_still_fits():
    text = short.render(fields("closed", note="Sudah diperbaiki 👍 " * 20), "id",
                        "https://lapor.example", short.SMS, 2)
    assert sms.size(text).encoding == "UCS-2" and sms.parts(text) <= 2
    assert TID in text


def test_a_short_text_is_not_cut():
    text = short.render(fields("dispatched", agency_name="Dinas PUPR"), "en",
                        "https://lapor.example", short.SMS, 1)
    assert text == (f"LAPOR! Report {TID} forwarded to Dinas PUPR. "
                    "Follow-up due 17-07-2026 16:00 WIB.")


def test_indonesian_by_default_and_no_empty_deadline():
    stored = payloads.email_fields("received", TID)
    text = short.render(stored, "id", "https://lapor.example", short.SMS, 3)
    assert text == f"LAPOR! Laporan {TID} diterima dan menunggu verifikasi."


def test_whatsapp_adds_the_status_page_and_keeps_a_long_note_short():
    text = short.render(fields("followed_up", response=LONG), "id",
                        "https://lapor.example", short.WHATSAPP)
    assert text.endswith(f"Info: https://lapor.example/api/v1/reports/{TID}")
    assert len(text) < short.WHATSAPP_FREE_TEXT + 300


@pytest.mark.parametrize("template", sorted(n for n in FIELDS if not n.startswith("national")))
@pytest.mark.parametrize("language", ["id", "en"])
def test_every_reporter_notice_has_a_phone_text_with_its_tracking_id(template, language):
    stored = fields(template, note="catatan", question="q", response="r", reason="alasan",
                    message="pesan", state="CLOSED", master_tracking_id="LPR-AAA-BBB-CC1",
                    kind="parent")
    for channel in (short.SMS, short.WHATSAPP):
        text = short.render(stored, language, "https://lapor.example", channel, 3)
        assert TID in text
        assert "{" not in text and "}" not in text
    english = short.render(stored, "en", "https://lapor.example", short.SMS, 3)
    indonesian = short.render(stored, "id", "https://lapor.example", short.SMS, 3)
    assert english != indonesian


def test_a_template_without_a_phone_text_is_refused():
    with pytest.raises(short.ShortTextError):
        short.render({"template": "national_escalated", "tracking_id": TID}, "id",
                     "https://lapor.example", short.SMS)
