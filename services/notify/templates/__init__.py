"""Email to reporters, Bahasa Indonesia first, English when the reporter asked for it.

Templates are string.Template texts that may use only the fields in FIELDS; `render` fills
them from a delivery's stored fields, so nothing else (no contact detail, no access token)
can reach a message by accident."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from services.notify import dates

FIELDS = frozenset({"tracking_id", "agency_name", "deadline", "status", "status_hint", "note",
                    "link"})


@dataclass(frozen=True)
class Email:
    subject: str
    body: str


_FOOTER = {
    "id": ("\n\nPantau perkembangan laporan Anda di:\n$link\n\n"
           "Simpan nomor laporan ini. Email ini dikirim otomatis; mohon tidak membalasnya.\n\n"
           "Salam,\nLAPOR! - Layanan Aspirasi dan Pengaduan Online Rakyat\n"),
    "en": ("\n\nFollow your report at:\n$link\n\n"
           "Keep this report number. This email was sent automatically; please do not reply.\n\n"
           "Regards,\nLAPOR! - the national public-service complaint platform\n"),
}

_TEMPLATES: dict[tuple[str, str], tuple[str, str]] = {
    ("dispatched", "id"): (
        "[LAPOR!] Laporan $tracking_id diteruskan ke $agency_name",
        "Yth. Pelapor,\n\n"
        "Laporan Anda dengan nomor $tracking_id telah diverifikasi dan diteruskan ke "
        "$agency_name untuk ditindaklanjuti.\n\n"
        "Batas waktu tindak lanjut: $deadline."),
    ("dispatched", "en"): (
        "[LAPOR!] Report $tracking_id forwarded to $agency_name",
        "Dear reporter,\n\n"
        "Your report $tracking_id has been verified and forwarded to $agency_name "
        "for follow-up.\n\n"
        "Follow-up deadline: $deadline."),
    ("received", "id"): (
        "[LAPOR!] Laporan $tracking_id diterima, menunggu verifikasi",
        "Yth. Pelapor,\n\n"
        "Laporan Anda dengan nomor $tracking_id telah kami terima dan menunggu verifikasi "
        "oleh admin nasional.\n\n"
        "Batas waktu verifikasi: $deadline."),
    ("received", "en"): (
        "[LAPOR!] Report $tracking_id received, awaiting verification",
        "Dear reporter,\n\n"
        "We have received your report $tracking_id; it is awaiting verification by the "
        "national administrator.\n\n"
        "Verification deadline: $deadline."),
    ("status", "id"): (
        "[LAPOR!] Status laporan $tracking_id: $status",
        "Yth. Pelapor,\n\n"
        "Status laporan Anda dengan nomor $tracking_id kini: $status.\n"
        "$status_hint\n\n"
        "Catatan: $note"),
    ("status", "en"): (
        "[LAPOR!] Report $tracking_id: $status",
        "Dear reporter,\n\n"
        "The status of your report $tracking_id is now: $status.\n"
        "$status_hint\n\n"
        "Note: $note"),
    ("escalated", "id"): (
        "[LAPOR!] Laporan $tracking_id dieskalasi ke $agency_name",
        "Yth. Pelapor,\n\n"
        "Batas waktu tindak lanjut laporan Anda dengan nomor $tracking_id terlewati, sehingga "
        "laporan dieskalasi ke $agency_name.\n\n"
        "Batas waktu baru: $deadline."),
    ("escalated", "en"): (
        "[LAPOR!] Report $tracking_id escalated to $agency_name",
        "Dear reporter,\n\n"
        "The follow-up deadline for your report $tracking_id has passed, so the report has "
        "been escalated to $agency_name.\n\n"
        "New deadline: $deadline."),
}

# Ticket states as the citizen sees them (DESIGN §2), with what happens next.
STATUS_LABELS = {
    "id": {
        "SUBMITTED": ("Belum terverifikasi", "Laporan Anda menunggu verifikasi."),
        "ON_HOLD": ("Ditunda", "Laporan Anda membutuhkan kelengkapan informasi; mohon "
                               "lengkapi melalui tautan di bawah."),
        "DISPATCHED": ("Terdisposisi", "Laporan Anda sedang ditangani instansi terkait."),
        "FOLLOWED_UP": ("Ditindaklanjuti", "Instansi telah menindaklanjuti laporan Anda; Anda "
                                           "dapat menanggapinya melalui tautan di bawah."),
        "REPORTER_REPLIED": ("Ditanggapi pelapor", "Tanggapan Anda diteruskan ke instansi."),
        "CLOSED": ("Selesai", "Laporan Anda telah selesai. Anda dapat memberi penilaian."),
        "ARCHIVED": ("Diarsipkan", "Laporan Anda diarsipkan."),
    },
    "en": {
        "SUBMITTED": ("Not yet verified", "Your report is awaiting verification."),
        "ON_HOLD": ("On hold", "Your report needs more information; please add it through "
                               "the link below."),
        "DISPATCHED": ("Dispatched", "An agency is handling your report."),
        "FOLLOWED_UP": ("Followed up", "The agency has followed up your report; you can reply "
                                       "through the link below."),
        "REPORTER_REPLIED": ("Reporter replied", "Your reply has been passed to the agency."),
        "CLOSED": ("Closed", "Your report is closed. You can rate how it was handled."),
        "ARCHIVED": ("Archived", "Your report has been archived."),
    },
}

_NOT_SET = {"id": "belum ditetapkan", "en": "not set yet"}
_NO_NOTE = {"id": "-", "en": "-"}


def language_of(value: str | None) -> str:
    return "en" if (value or "").strip().lower().startswith("en") else "id"


def report_link(public_url: str, tracking_id: str) -> str:
    """Where the citizen follows the report (the public status page, never the access token)."""
    return f"{public_url.rstrip('/')}/api/v1/reports/{quote(tracking_id, safe='')}"


def _check(text: str) -> None:
    for match in string.Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name and name not in FIELDS:
            raise ValueError(f"template field ${name} is not in the allow-list")


for _subject, _body in _TEMPLATES.values():
    for _text in (_subject, _body, *_FOOTER.values()):
        _check(_text)


def render(stored: Mapping[str, object], language: str, public_url: str) -> Email:
    """The email for a delivery's stored fields (see payloads.email_fields)."""
    lang = language_of(language)
    name = str(stored.get("template", ""))
    if (name, lang) not in _TEMPLATES:
        raise ValueError(f"no email template {name!r}")
    state = str(stored.get("state") or "")
    label, hint = STATUS_LABELS[lang].get(state, (state, ""))
    raw_deadline = stored.get("deadline")
    deadline = (dates.human(datetime.fromisoformat(str(raw_deadline)),
                            str(stored.get("deadline_zone") or ""), lang)
                if raw_deadline else _NOT_SET[lang])
    tracking_id = str(stored.get("tracking_id", ""))
    values = {
        "tracking_id": tracking_id,
        "agency_name": str(stored.get("agency_name") or ""),
        "deadline": deadline,
        "status": label,
        "status_hint": hint,
        "note": str(stored.get("note") or "") or _NO_NOTE[lang],
        "link": report_link(public_url, tracking_id),
    }
    subject, body = _TEMPLATES[(name, lang)]
    # One line, whatever an agency name contains: a newline in a subject is a header injection.
    subject_text = " ".join(string.Template(subject).substitute(values).split())
    body_text = string.Template(body + _FOOTER[lang]).substitute(values)
    return Email(subject_text, body_text)
