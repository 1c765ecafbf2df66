"""Routing decisions as plain Python: classify a report's text into a category, pick the
agency that handles that category where the report is, and decide whether it can be
dispatched without a national admin looking at it first. No I/O."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Protocol

TRIAGE_AGENCY = "ADMIN-NASIONAL"
AUTO_DISPATCH_CONFIDENCE = 0.6
MIN_BODY_CHARS = 20

REGION_CODE = re.compile(r"\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?", re.ASCII)


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    keywords: tuple[str, ...]


# Keywords are matched on whole words of the lower-cased, accent-free text. Phrases count once.
CATEGORIES: dict[str, Category] = {c.code: c for c in (
    Category("INFRASTRUKTUR", "Infrastruktur, jalan dan jembatan", (
        "jalan", "rusak", "berlubang", "lubang", "jembatan", "aspal", "drainase", "gorong",
        "gorong-gorong", "longsor", "trotoar", "lampu jalan", "irigasi", "bendungan")),
    Category("KESEHATAN", "Kesehatan", (
        "puskesmas", "rumah sakit", "rsud", "bpjs", "dokter", "obat", "pasien", "bidan",
        "vaksin", "imunisasi", "posyandu", "stunting", "perawat")),
    Category("PENDIDIKAN", "Pendidikan", (
        "sekolah", "guru", "siswa", "murid", "ppdb", "spmb", "zonasi", "kip", "rapor",
        "madrasah", "ijazah", "beasiswa", "pungutan sekolah")),
    Category("KEPENDUDUKAN", "Administrasi kependudukan", (
        "ktp", "e-ktp", "ektp", "kartu keluarga", "kk", "akta", "akte", "dukcapil", "nik",
        "surat pindah", "kependudukan")),
    Category("BANSOS", "Bantuan sosial", (
        "bansos", "bantuan sosial", "pkh", "bpnt", "blt", "sembako", "dtks", "penerima bantuan",
        "kartu sembako")),
    Category("LINGKUNGAN", "Lingkungan hidup dan kebersihan", (
        "sampah", "limbah", "pencemaran", "polusi", "banjir", "sungai", "tps", "bau",
        "penebangan", "tambang ilegal")),
)}


def valid_region_code(code: str) -> bool:
    return bool(REGION_CODE.fullmatch(code or ""))


def region_ancestry(code: str) -> list[str]:
    """The code and its parents, most specific first: 13.03.01 -> [13.03.01, 13.03, 13, ""]."""
    parts = code.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)] + [""]


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " " + re.sub(r"[^a-z0-9-]+", " ", text) + " "


@dataclass(frozen=True)
class Classification:
    category: str           # "" when nothing matched
    confidence: float       # 0..1
    hits: dict[str, int] = field(default_factory=dict)


def classify(text: str) -> Classification:
    """Keyword classifier: confidence is the winner's share of the evidence, damped so one
    stray word is not enough to skip a human."""
    normalised = _normalise(text)
    hits = {}
    for category in CATEGORIES.values():
        count = sum(1 for kw in category.keywords if f" {kw} " in normalised)
        if count:
            hits[category.code] = count
    if not hits:
        return Classification("", 0.0, hits)
    best = max(hits, key=lambda code: (hits[code], code))
    total = sum(hits.values())
    return Classification(best, round(hits[best] / (total + 1), 3), hits)


@dataclass(frozen=True)
class AgencyRef:
    code: str
    name: str
    level: str
    region_code: str = ""
    parent_code: str = ""


class Directory(Protocol):
    def agency(self, code: str) -> AgencyRef | None: ...

    def handler_for(self, category: str, region_code: str) -> AgencyRef | None:
        """The agency handling `category` in the most specific region of the code's ancestry."""
        ...


@dataclass(frozen=True)
class Draft:
    title: str
    body: str
    region_code: str
    category: str = ""        # chosen by the reporter, may be empty
    target_agency: str = ""   # asked for by the reporter, may be empty


@dataclass(frozen=True)
class Decision:
    category: str
    confidence: float
    agency: AgencyRef              # who gets the ticket now (the triage queue when not auto)
    auto_dispatch: bool
    explanation: str
    suggested: AgencyRef | None = None  # the handler found, even when a human verifies first


def decide(draft: Draft, directory: Directory) -> Decision:
    """Where the report goes, and whether a national admin must verify it first."""
    found = classify(f"{draft.title} {draft.body}")
    category, confidence = found.category, found.confidence
    reasons = []
    if draft.category in CATEGORIES:
        if not found.category or found.category == draft.category:
            category, confidence = draft.category, max(confidence, 0.9)
            reasons.append(f"kategori {draft.category} dipilih pelapor")
        else:
            # Reporter and text disagree: the wrong-agency complaint starts exactly here.
            category, confidence = draft.category, min(confidence, 0.5)
            reasons.append(f"kategori pilihan pelapor {draft.category} berbeda dengan isi "
                           f"laporan ({found.category})")
    elif category:
        reasons.append(f"isi laporan cocok dengan kategori {category} "
                       f"(keyakinan {confidence:.2f})")
    else:
        reasons.append("kategori tidak dapat ditentukan dari isi laporan")

    triage = directory.agency(TRIAGE_AGENCY) or AgencyRef(
        TRIAGE_AGENCY, "Admin Nasional SP4N-LAPOR!", "triage")
    agency = None
    if draft.target_agency:
        agency = directory.agency(draft.target_agency)
        if agency:
            reasons.append(f"instansi tujuan {agency.code} dipilih pelapor")
    if agency is None and category:
        agency = directory.handler_for(category, draft.region_code)
        if agency:
            reasons.append(f"{agency.name} menangani {category} untuk wilayah "
                           f"{agency.region_code or 'nasional'}")
    if agency is None:
        reasons.append("tidak ada instansi yang cocok; masuk antrean verifikasi admin nasional")
        return Decision(category, confidence, triage, False, "; ".join(reasons))

    problems = quality_problems(draft)
    auto = confidence >= AUTO_DISPATCH_CONFIDENCE and not problems
    if problems:
        reasons.append("perlu verifikasi: " + ", ".join(problems))
    elif not auto:
        reasons.append("keyakinan rendah; perlu verifikasi admin nasional")
    return Decision(category, confidence, agency if auto else triage, auto, "; ".join(reasons),
                    suggested=agency)


def quality_problems(draft: Draft) -> list[str]:
    problems = []
    if len(draft.body.strip()) < MIN_BODY_CHARS:
        problems.append("isi laporan terlalu singkat")
    if not draft.title.strip():
        problems.append("judul kosong")
    if not valid_region_code(draft.region_code):
        problems.append("kode wilayah tidak valid")
    return problems
