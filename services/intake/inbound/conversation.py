"""What a text message asks for and the words sent back. Plain Python, no I/O.

A message is a command only when it is the command alone (STOP, BATAL, BANTUAN, ...) or
STATUS followed by something shaped like a tracking id: "Stop pungli di kantor desa" is a
report, not an opt-out."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from services.intake import ids


class Intent(StrEnum):
    REPORT = "report"
    STATUS = "status"
    CANCEL = "cancel"
    STOP = "stop"
    START = "start"
    HELP = "help"


@dataclass(frozen=True)
class Command:
    intent: Intent
    argument: str = ""


# The words providers and Indonesian senders use; compared in capitals, alone in the message.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "BERHENTI", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "MULAI", "SUBSCRIBE"})
HELP_WORDS = frozenset({"HELP", "BANTUAN", "INFO", "MENU", "?"})
CANCEL_WORDS = frozenset({"BATAL", "BATALKAN", "CANCEL"})
STATUS_WORDS = ("CEK STATUS", "STATUS", "CEK", "LACAK")
_STATUS = re.compile(rf"^({'|'.join(STATUS_WORDS)})\b[\s:#.-]*(.*)$", re.IGNORECASE | re.DOTALL)
_EDGES = " \t\r\n.!,;"
# An argument to STATUS that someone meant as a tracking id: 8 to 14 letters and digits,
# maybe with the LPR prefix and separators. Longer text after STATUS is a report.
_ID_LIKE = re.compile(r"^(?:LPR)?[\s._-]*(?:[0-9A-Z][\s._-]*){8,11}$", re.IGNORECASE)


def parse(text: str) -> Command:
    """The intent of a message's text."""
    bare = " ".join(text.strip(_EDGES).split()).upper()
    if bare in STOP_WORDS:
        return Command(Intent.STOP)
    if bare in START_WORDS:
        return Command(Intent.START)
    if bare in HELP_WORDS:
        return Command(Intent.HELP)
    if bare in CANCEL_WORDS:
        return Command(Intent.CANCEL)
    if bare in STATUS_WORDS:
        return Command(Intent.STATUS)
    match = _STATUS.match(text.strip(_EDGES))
    if match and _ID_LIKE.match(match[2].strip()):
        return Command(Intent.STATUS, match[2].strip())
    return Command(Intent.REPORT)


# -- the report a message becomes -----------------------------------------------------------
MIN_BODY = 10     # the API's shortest body
TITLE_WORDS = 60  # characters of the first words that make the title


def title_of(body: str) -> str:
    """The first words of the text, at most TITLE_WORDS characters, cut at a word."""
    first_line = " ".join(body.strip().splitlines()[0].split()) if body.strip() else ""
    if len(first_line) <= TITLE_WORDS:
        title = first_line
    else:
        title = first_line[:TITLE_WORDS].rsplit(" ", 1)[0].rstrip(" ,.;:") + "..."
    return title if len(title) >= 5 else (title + " (SMS)")[:TITLE_WORDS]


# -- replies ----------------------------------------------------------------------------------
SMS_LIMIT = 160           # one SMS in GSM-7
WHATSAPP_LIMIT = 1000     # a short chat message
# GSM 03.38 basic character set: what one 160-character SMS can carry.
GSM7 = frozenset("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
                 "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")


def fit(text: str, channel: str) -> str:
    """The reply as the channel can send it: for SMS, GSM-7 characters only (accents
    folded, others dropped) and one message long; for WhatsApp, a short chat message."""
    text = " ".join(text.split())
    limit = WHATSAPP_LIMIT
    if channel == "sms":
        limit = SMS_LIMIT
        folded = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in folded if ch in GSM7)
    if len(text) <= limit:
        return text
    return text[:limit - 2].rstrip() + ".."


HELP = ("LAPOR 1708: kirim isi laporan dan nama kabupaten/kota tempat kejadian. "
        "STATUS <nomor> untuk cek status, BATAL membatalkan, STOP berhenti menerima pesan.")
ASK_REGION = ("Laporan Anda di kabupaten/kota mana? Balas dengan nama daerahnya, "
              "mis. SIJUNJUNG. Balas BATAL untuk membatalkan.")
ASK_TEXT = ("Tulis isi laporan Anda: apa yang terjadi, di mana (kabupaten/kota) dan kapan. "
            "Balas BATAL untuk membatalkan.")
CANCELLED = "Dibatalkan. Laporan yang belum selesai sudah dihapus."
NOTHING_TO_CANCEL = ("Tidak ada laporan yang menunggu jawaban Anda. "
                     "Laporan yang sudah terkirim tidak dapat dibatalkan lewat pesan.")
STOPPED = ("Anda tidak akan menerima pesan LAPOR lagi di nomor ini. "
           "Balas START untuk menerimanya kembali.")
STARTED = "Pesan LAPOR di nomor ini aktif kembali. Balas STOP untuk berhenti."
STATUS_USAGE = "Balas STATUS diikuti nomor pelacakan, mis. STATUS LPR-7K2-M9Q-XDR."


def accepted(tracking_id: str) -> str:
    return (f"Laporan diterima. Nomor pelacakan: {tracking_id}. "
            f"Cek status: balas STATUS {tracking_id}")


_SHORT_NAMES = ((re.compile(r"^Kabupaten (Administrasi )?"), "Kab. "),
                (re.compile(r"^Kota Administrasi "), "Kota "))


def ask_choice(names: list[str]) -> str:
    """One short question between places that share a name, the choices last: a long
    name is what gets cut, never the question."""
    shown = []
    for name in names[:3]:
        for pattern, short in _SHORT_NAMES:
            name = pattern.sub(short, name)
        shown.append(name.upper())
    return "Daerah yang mana? Balas nomornya: " + " ".join(
        f"{i}) {n}" for i, n in enumerate(shown, 1))


def invalid_tracking_id(typed: str) -> str:
    return (f"Nomor pelacakan {typed[:20]} tidak valid. Periksa lagi tiap hurufnya, "
            "mis. STATUS LPR-7K2-M9Q-XDR.")


def not_found(tracking_id: str) -> str:
    return f"Laporan {tracking_id} tidak ditemukan. Periksa lagi nomor pelacakannya."


ZONE_HOURS = {"WIB": 7, "WITA": 8, "WIT": 9}


def status(view: dict, *, own: bool) -> str:
    """A report's status in words, from the view the sender may see (the owner view for
    their own report, the public view otherwise)."""
    parts = [f"{view['tracking_id']}: {view['status_label']}."]
    deadline = view.get("deadline")
    zone = view.get("deadline_zone") or "WIB"
    if deadline and view["status"] not in ("CLOSED", "ARCHIVED"):
        at = datetime.fromisoformat(deadline.replace("Z", "+00:00")).astimezone(
            timezone(timedelta(hours=ZONE_HOURS.get(zone, 7))))
        parts.append(f"Batas tindak lanjut {at:%d-%m-%Y %H:%M} {zone}.")
    if own:
        # What only the reporter may read: the agency's latest words to them (a hold's
        # question, a response, a relayed message).
        notes = [e.get("private_note") for e in view.get("timeline", [])]
        latest = next((n for n in reversed(notes) if n), None)
        if latest:
            parts.append(f"Catatan: {latest}")
    return " ".join(parts)


def normalised_id(typed: str) -> str | None:
    return ids.normalise_tracking_id(typed)
