"""SMS and WhatsApp texts: a short version of each reporter email, in Bahasa Indonesia or
English, built from the same stored fields through the same allow-lists (templates.FIELDS and
BUILDERS), so a phone text can hold nothing an email could not.

A text is a list of segments; a segment naming a value that is empty (no deadline yet, no
note) is left out. An SMS must fit NOTIFY_SMS_MAX_PARTS parts: the free text (agency name,
notes, questions, messages) is cut until it does, never the tracking id, the state or the
deadline. A WhatsApp message has no such limit, but a note is cut at WHATSAPP_FREE_TEXT
characters and the status page link is added."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import datetime

from services.notify import dates
from services.notify.channels import sms
from services.notify.templates import BUILDERS, FIELDS, language_of

SMS = "sms"
WHATSAPP = "whatsapp"
WHATSAPP_FREE_TEXT = 700

# Values a phone text may cut; everything else (tracking ids, state, deadline) stays whole.
FREE_TEXT = frozenset({"agency_name", "note", "question", "response", "reason", "message"})

_T = dict[str, list[str]]
TEXTS: dict[str, dict[str, _T | dict[str, _T]]] = {
    "received": {
        "id": ["LAPOR! Laporan {tracking_id} diterima dan menunggu verifikasi.",
               " Batas verifikasi: {deadline}."],
        "en": ["LAPOR! Report {tracking_id} received, awaiting verification.",
               " Verification by {deadline}."],
    },
    "dispatched": {
        "id": ["LAPOR! Laporan {tracking_id} diteruskan ke {agency_name}.",
               " Batas tindak lanjut: {deadline}."],
        "en": ["LAPOR! Report {tracking_id} forwarded to {agency_name}.",
               " Follow-up due {deadline}."],
    },
    "accepted": {
        "id": ["LAPOR! Laporan {tracking_id} diterima oleh {agency_name} dan sedang ditangani.",
               " Batas tindak lanjut: {deadline}."],
        "en": ["LAPOR! Report {tracking_id} accepted by {agency_name} and being handled.",
               " Follow-up due {deadline}."],
    },
    "held": {
        "id": ["LAPOR! Laporan {tracking_id} ditunda, perlu kelengkapan.",
               " Pertanyaan admin: {question}", ". Lengkapi lewat situs/aplikasi LAPOR!."],
        "en": ["LAPOR! Report {tracking_id} on hold: more information needed.",
               " The admin asks: {question}", ". Add it on the LAPOR! site or app."],
    },
    "followed_up": {
        "id": ["LAPOR! Laporan {tracking_id} ditindaklanjuti oleh {agency_name}",
               ": {response}", ". Tanggapi sebelum {deadline} bila belum selesai."],
        "en": ["LAPOR! Report {tracking_id} followed up by {agency_name}", ": {response}",
               ". Reply before {deadline} if not resolved."],
    },
    "closed": {
        "id": ["LAPOR! Laporan {tracking_id} selesai", " ({agency_name})", ". {note}"],
        "en": ["LAPOR! Report {tracking_id} closed", " ({agency_name})", ". {note}"],
    },
    "archived": {
        "id": ["LAPOR! Laporan {tracking_id} diarsipkan.", " Alasan: {reason}"],
        "en": ["LAPOR! Report {tracking_id} archived.", " Reason: {reason}"],
    },
    "status": {
        "id": ["LAPOR! Status laporan {tracking_id}: {status}.", " {note}"],
        "en": ["LAPOR! Report {tracking_id} status: {status}.", " {note}"],
    },
    "auto_close_warning": {
        "id": ["LAPOR! Laporan {tracking_id} akan ditutup otomatis {deadline}",
               " bila tidak ditanggapi. Tanggapi hasil tindak lanjut {agency_name}",
               " lewat situs/aplikasi LAPOR!."],
        "en": ["LAPOR! Report {tracking_id} closes automatically {deadline}",
               " unless you reply. Reply to {agency_name}'s follow-up",
               " on the LAPOR! site or app."],
    },
    "escalated": {
        "national": {
            "id": ["LAPOR! Batas waktu laporan {tracking_id} terlewati; laporan dikembalikan "
                   "ke admin nasional."],
            "en": ["LAPOR! Report {tracking_id} passed its deadline and went back to the "
                   "national admin."],
        },
        "oversight": {
            "id": ["LAPOR! Laporan {tracking_id} belum selesai dalam 60 hari dan ditandai "
                   "untuk pengawasan Ombudsman."],
            "en": ["LAPOR! Report {tracking_id} is unresolved after 60 days and marked for "
                   "Ombudsman oversight."],
        },
        "parent": {
            "id": ["LAPOR! Batas waktu laporan {tracking_id} terlewati; dieskalasi ke "
                   "{agency_name}.", " Batas: {deadline}."],
            "en": ["LAPOR! Report {tracking_id} passed its deadline; escalated to "
                   "{agency_name}.", " Due {deadline}."],
        },
    },
    "message": {
        "id": ["LAPOR! Pesan untuk laporan {tracking_id}", " dari {agency_name}",
               ": {message}"],
        "en": ["LAPOR! Message on report {tracking_id}", " from {agency_name}", ": {message}"],
    },
    "linked": {
        "id": ["LAPOR! Laporan {tracking_id} digabung dengan laporan {master_tracking_id} yang "
               "sama; Anda menerima kabarnya.", " Status: {status}.",
               " Batas: {deadline}."],
        "en": ["LAPOR! Report {tracking_id} was linked to the same report "
               "{master_tracking_id}; you will get its updates.", " Status: {status}.",
               " Due {deadline}."],
    },
    "following": {
        "id": ["LAPOR! Laporan {tracking_id} (digabung ke {master_tracking_id}):",
               " {status}", " ({agency_name})", ". {note}", ". Batas: {deadline}."],
        "en": ["LAPOR! Report {tracking_id} (linked to {master_tracking_id}):",
               " {status}", " ({agency_name})", ". {note}", ". Due {deadline}."],
    },
}
_LINK = {"id": "\nInfo: {link}", "en": "\nDetails: {link}"}
_FORMATTER = string.Formatter()
_ELLIPSIS_STOP = re.compile(r"\.{4,}")
# A value ending a sentence, followed by the text's own full stop: "spot?." -> "spot?".
_DOUBLE_STOP = re.compile(r"(?<!\.)([.!?])\.(?!\.)")


def _names(segment: str) -> set[str]:
    return {name for _, name, _, _ in _FORMATTER.parse(segment) if name}


def _short_deadline(stored: Mapping[str, object], lang: str) -> str:
    """'17-07-2026 16.00 WIB': the date and time only, where every character counts."""
    raw = stored.get("deadline")
    if not raw:
        return ""
    local = dates.in_zone(datetime.fromisoformat(str(raw)), str(stored.get("deadline_zone")
                                                                or ""))
    separator = ":" if lang == "en" else "."
    return (f"{local.day:02d}-{local.month:02d}-{local.year} "
            f"{local.hour:02d}{separator}{local.minute:02d} "
            f"{dates.zone_name(str(stored.get('deadline_zone') or ''))}")


class ShortTextError(ValueError):
    """A template with no phone text, or a text naming a value outside its allow-list."""


def _segments(name: str, lang: str, stored: Mapping[str, object]) -> list[str]:
    texts = TEXTS.get(name)
    if texts is None:
        raise ShortTextError(f"no SMS/WhatsApp text for {name!r}")
    if lang not in texts:  # variants by kind (escalated)
        kind = str(stored.get("kind") or "parent")
        texts = texts.get(kind) or texts["parent"]
    return list(texts[lang])


def check() -> None:
    """Every reporter template has a text in both languages using only its allowed fields."""
    for name, allowed in FIELDS.items():
        if name.startswith("national_"):
            continue
        variants = TEXTS.get(name)
        if variants is None:
            raise ShortTextError(f"no SMS/WhatsApp text for {name!r}")
        for texts in (variants.values() if "id" not in variants else [variants]):
            for lang in ("id", "en"):
                used = set().union(*(_names(s) for s in texts[lang]))
                if "tracking_id" not in _names(texts[lang][0]):
                    raise ShortTextError(f"{name}.{lang}: the first segment must hold the "
                                         f"tracking id")
                if used - allowed:
                    raise ShortTextError(f"{name}.{lang} uses {', '.join(sorted(used - allowed))}"
                                         f", which is not in its allow-list")


def render(stored: Mapping[str, object], language: str | None, public_url: str,
           channel: str, max_parts: int = 3) -> str:
    """The text of an SMS (at most `max_parts` parts, GSM-7 where the values allow) or a
    WhatsApp message for a delivery's stored fields."""
    lang = language_of(language)
    name = str(stored.get("template", ""))
    if name not in FIELDS or name.startswith("national_"):
        raise ShortTextError(f"no SMS/WhatsApp text for {name!r}")
    segments = _segments(name, lang, stored)
    if channel == WHATSAPP:
        segments.append(_LINK[lang])
    allowed = FIELDS[name] | {"link"}
    values = {field: BUILDERS[field](stored, lang, public_url) for field in allowed
              if field in BUILDERS}
    values["deadline"] = _short_deadline(stored, lang)
    values = {key: " ".join(str(value).split()) for key, value in values.items()}
    if channel == SMS:
        values = {key: sms.plain(value) for key, value in values.items()}

    def build(limit: int | None) -> str:
        cut = {key: sms.shorten(value, limit) if key in FREE_TEXT else value
               for key, value in values.items()}
        kept = [segment for index, segment in enumerate(segments)
                if index == 0 or all(cut.get(field) for field in _names(segment))]
        text = "".join(segment.format(**cut) for segment in kept)
        return _DOUBLE_STOP.sub(r"\1", _ELLIPSIS_STOP.sub("...", text))

    if channel == WHATSAPP:
        return build(WHATSAPP_FREE_TEXT)
    return sms.fit(build, max_parts)


check()
