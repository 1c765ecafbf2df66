"""Email, Bahasa Indonesia first, English when the reporter asked for it.

Templates are Jinja2 files in templates/email/ (`<name>.<id|en>.txt` with a `subject` block,
and `<name>.<id|en>.html`), rendered in a sandbox with autoescaping for HTML. A template gets
a dict built field by field from FIELDS[name]: nothing else exists for it, and StrictUndefined
makes naming anything else an error, both when the templates are checked at start and when
one renders. The values come from a delivery's stored fields (payloads.email_fields), which
never hold a contact detail or an access token, so neither can reach a message by accident.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import BaseLoader, FileSystemLoader, StrictUndefined, meta, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from services.notify import dates

TEMPLATE_DIR = Path(__file__).parent / "email"
LANGUAGES = ("id", "en")
FORMATS = ("txt", "html")
SUBJECT_MAX = 200


@dataclass(frozen=True)
class Email:
    subject: str
    body: str       # text/plain
    html: str = ""  # the text/html alternative ("" for a text-only message)


# What each template may use. Reporter templates sit in the _reporter layout (its footer uses
# `link`, the public status page); the national admin's in the _staff layout.
_REPORTER_LAYOUT = frozenset({"tracking_id", "link"})
_STAFF_LAYOUT = frozenset({"tracking_id"})
FIELDS: dict[str, frozenset[str]] = {
    "received": _REPORTER_LAYOUT | {"deadline"},
    "dispatched": _REPORTER_LAYOUT | {"agency_name", "deadline"},
    "accepted": _REPORTER_LAYOUT | {"agency_name", "deadline"},
    "held": _REPORTER_LAYOUT | {"question"},
    "followed_up": _REPORTER_LAYOUT | {"agency_name", "response", "deadline"},
    "closed": _REPORTER_LAYOUT | {"agency_name", "note"},
    "archived": _REPORTER_LAYOUT | {"reason"},
    "status": _REPORTER_LAYOUT | {"status", "status_hint", "note"},
    "auto_close_warning": _REPORTER_LAYOUT | {"agency_name", "deadline"},
    "escalated": _REPORTER_LAYOUT | {"kind", "agency_name", "deadline"},
    "message": _REPORTER_LAYOUT | {"agency_name", "message"},
    # A reporter whose report was linked to an earlier, near-identical one (its master): told
    # so once, then of the master's progress (only what the public may see of it).
    "linked": _REPORTER_LAYOUT | {"master_tracking_id", "status", "agency_name", "deadline",
                                  "has_deadline"},
    "following": _REPORTER_LAYOUT | {"master_tracking_id", "status", "status_hint", "note",
                                     "agency_name", "deadline", "has_deadline"},
    "national_escalated": _STAFF_LAYOUT | {"ticket_id", "kind", "stage", "level",
                                           "from_agency", "to_agency", "deadline", "reason"},
}
LAYOUTS = {name: "_staff" if name.startswith("national_") else "_reporter" for name in FIELDS}

# Ticket states as the citizen sees them (DESIGN §2), with what happens next.
STATUS_LABELS = {
    "id": {
        "SUBMITTED": ("Belum terverifikasi", "Laporan Anda menunggu verifikasi."),
        "ON_HOLD": ("Ditunda", "Laporan Anda membutuhkan kelengkapan informasi."),
        "DISPATCHED": ("Terdisposisi", "Laporan Anda sedang ditangani instansi terkait."),
        "FOLLOWED_UP": ("Ditindaklanjuti", "Instansi telah menindaklanjuti laporan Anda."),
        "REPORTER_REPLIED": ("Ditanggapi pelapor", "Tanggapan Anda diteruskan ke instansi."),
        "CLOSED": ("Selesai", "Laporan Anda telah selesai."),
        "ARCHIVED": ("Diarsipkan", "Laporan Anda diarsipkan."),
    },
    "en": {
        "SUBMITTED": ("Not yet verified", "Your report is awaiting verification."),
        "ON_HOLD": ("On hold", "Your report needs more information."),
        "DISPATCHED": ("Dispatched", "An agency is handling your report."),
        "FOLLOWED_UP": ("Followed up", "The agency has followed up your report."),
        "REPORTER_REPLIED": ("Reporter replied", "Your reply has been passed to the agency."),
        "CLOSED": ("Closed", "Your report is closed."),
        "ARCHIVED": ("Archived", "Your report has been archived."),
    },
}

_NOT_SET = {"id": "belum ditetapkan", "en": "not set yet"}


def language_of(value: str | None) -> str:
    return "en" if (value or "").strip().lower().startswith("en") else "id"


def report_link(public_url: str, tracking_id: str) -> str:
    """Where the citizen follows the report (the public status page, never the access token)."""
    return f"{public_url.rstrip('/')}/api/v1/reports/{quote(tracking_id, safe='')}"


# -- the values a template may get, each built from the stored fields -------------------------
Builder = Callable[[Mapping[str, object], str, str], object]


def _text(key: str, empty: str = "") -> Builder:
    return lambda stored, lang, url: str(stored.get(key) or "") or empty


def _deadline(stored: Mapping[str, object], lang: str, url: str) -> str:
    raw = stored.get("deadline")
    if not raw:
        return _NOT_SET[lang]
    return dates.human(datetime.fromisoformat(str(raw)), str(stored.get("deadline_zone") or ""),
                       lang)


def _label(key: str, part: int) -> Builder:
    def build(stored, lang, url):
        state = str(stored.get(key) or "")
        return STATUS_LABELS[lang].get(state, (state, ""))[part]
    return build


BUILDERS: dict[str, Builder] = {
    "tracking_id": _text("tracking_id"),
    "ticket_id": _text("ticket_id"),
    "link": lambda stored, lang, url: report_link(url, str(stored.get("tracking_id") or "")),
    "agency_name": _text("agency_name"),
    "from_agency": _text("from_agency", "-"),
    "to_agency": _text("to_agency", "-"),
    "deadline": _deadline,
    "status": _label("state", 0),
    "status_hint": _label("state", 1),
    "stage": _label("stage", 0),
    "note": _text("note"),
    "question": _text("question"),
    "response": _text("response"),
    "reason": _text("reason", "-"),
    "message": _text("message"),
    "master_tracking_id": _text("master_tracking_id"),
    "has_deadline": lambda stored, lang, url: bool(stored.get("deadline")),
    # An escalation without a kind comes from before kinds existed: it went to the parent.
    "kind": _text("kind", "parent"),
    "level": lambda stored, lang, url: int(stored.get("level") or 0),
}
assert set().union(*FIELDS.values()) <= set(BUILDERS), "a field without a builder"


def one_line(text: str) -> str:
    """A header value: whitespace runs (newlines included) become one space, control and
    format characters go, and it is cut at SUBJECT_MAX: a newline in a subject is a header
    injection."""
    text = "".join(ch for ch in " ".join(text.split()) if unicodedata.category(ch)[0] != "C")
    return text if len(text) <= SUBJECT_MAX else text[:SUBJECT_MAX - 1].rstrip() + "…"


class TemplateError(ValueError):
    """A template that is missing or names a field outside its allow-list."""


class Renderer:
    """The sandboxed environment and the allow-lists. `loader` replaces the template files
    (tests); `check` verifies every template at construction."""

    def __init__(self, loader: BaseLoader | None = None, *, check: bool = True):
        self.env = SandboxedEnvironment(
            loader=loader or FileSystemLoader(TEMPLATE_DIR),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False,
                                         default_for_string=False),
            undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=True, auto_reload=False)
        # Not even range() or dict(): a template has its fields and nothing else.
        self.env.globals.clear()
        if check:
            self.check()

    def _names_used(self, template: str, seen: frozenset[str] = frozenset()) -> set[str]:
        """Every variable `template` and the layouts it extends read."""
        if template in seen:
            return set()
        source, _, _ = self.env.loader.get_source(self.env, template)
        ast = self.env.parse(source)
        names = set(meta.find_undeclared_variables(ast))
        for parent in meta.find_referenced_templates(ast):
            if parent is None:
                raise TemplateError(f"{template}: a layout chosen at render time")
            names |= self._names_used(parent, seen | {template})
        return names

    def check(self) -> None:
        """Every template exists in both languages and formats, and uses only its fields."""
        for name, allowed in FIELDS.items():
            for lang in LANGUAGES:
                for fmt in FORMATS:
                    file = f"{name}.{lang}.{fmt}"
                    try:
                        used = self._names_used(file)
                    except Exception as exc:
                        raise TemplateError(f"{file}: {type(exc).__name__}: {exc}") from None
                    extra = used - allowed
                    if extra:
                        raise TemplateError(f"{file} uses {', '.join(sorted(extra))}, which "
                                            f"is not in its allow-list")
                    if fmt == "txt" and "subject" not in self.env.get_template(file).blocks:
                        raise TemplateError(f"{file} has no subject block")

    def render(self, stored: Mapping[str, object], language: str | None,
               public_url: str) -> Email:
        """The email for a delivery's stored fields (see payloads.email_fields)."""
        lang = language_of(language)
        name = str(stored.get("template", ""))
        if name not in FIELDS:
            raise TemplateError(f"no email template {name!r}")
        values = {field: BUILDERS[field](stored, lang, public_url) for field in FIELDS[name]}
        text = self.env.get_template(f"{name}.{lang}.txt")
        subject = "".join(text.blocks["subject"](text.new_context(values)))
        return Email(one_line(subject), text.render(values),
                     self.env.get_template(f"{name}.{lang}.html").render(values))


@functools.cache
def default() -> Renderer:
    """The renderer of the shipped templates, checked once (the worker asks at start)."""
    return Renderer()


def render(stored: Mapping[str, object], language: str | None, public_url: str) -> Email:
    return default().render(stored, language, public_url)
