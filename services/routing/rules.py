"""Routing decisions as plain Python: given what the classifier read in a report (its
category, subcategory, confidence and the runners-up) and the directory's handling rules,
pick the agency, decide whether it can be dispatched without a national admin looking at it
first, and say why in words an officer can check. No I/O: the classifier and the directory
are passed in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

TRIAGE_AGENCY = "ADMIN-NASIONAL"
# Below this classifier confidence a national admin verifies first (ROUTING_AUTO_DISPATCH_
# CONFIDENCE); the reporter's own choice of category counts as confident when the text agrees.
AUTO_DISPATCH_CONFIDENCE = 0.6
MIN_BODY_CHARS = 20

REGION_CODE = re.compile(r"\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?", re.ASCII)


def valid_region_code(code: str) -> bool:
    return bool(REGION_CODE.fullmatch(code or ""))


def region_ancestry(code: str) -> list[str]:
    """The code and its parents, most specific first: 13.03.01 -> [13.03.01, 13.03, 13, ""]."""
    parts = code.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)] + [""]


@dataclass(frozen=True, slots=True)
class AgencyRef:
    code: str
    name: str
    level: str
    region_code: str = ""
    parent_code: str = ""


class Prediction(Protocol):
    """What the classifier read (services.routing.classify.model.Prediction)."""

    category: str
    subcategory: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...]
    model_version: str


class Taxonomy(Protocol):
    def category_of(self, code: str) -> str: ...

    def name(self, code: str) -> str: ...


class Match(Protocol):
    agency: AgencyRef

    def describe(self) -> str: ...


class Directory(Protocol):
    def agency(self, code: str) -> AgencyRef | None: ...

    def rule_for(self, category: str, subcategory: str, region_code: str) -> Match | None:
        """The handling rule for the report: subcategory rules first, then the category's,
        the most specific region of the report's ancestry first."""
        ...

    def categories(self) -> Taxonomy: ...


@dataclass(frozen=True)
class Draft:
    title: str
    body: str
    region_code: str
    category: str = ""        # chosen by the reporter (category or subcategory code), may be ""
    target_agency: str = ""   # asked for by the reporter, may be empty


@dataclass(frozen=True)
class Decision:
    category: str
    confidence: float
    agency: AgencyRef              # who gets the ticket now (the triage queue when not auto)
    auto_dispatch: bool
    explanation: str
    suggested: AgencyRef | None = None  # the handler found, even when a human verifies first
    subcategory: str = ""
    top: tuple[tuple[str, float], ...] = ()   # the classifier's top three categories
    rule: str = ""                 # the handling rule that chose the agency, in words
    model_version: str = ""
    threshold: float = AUTO_DISPATCH_CONFIDENCE
    names: tuple[tuple[str, str], ...] = ()    # directory names of the `top` codes, as decided

    def name(self, code: str) -> str:
        """A category's name in the directory when the decision was taken ("" if unknown)."""
        return dict(self.names).get(code, "")

    def detail(self) -> dict:
        """What is stored on the ticket and shown to staff: the decision, explained."""
        return {"category": self.category, "subcategory": self.subcategory,
                "confidence": round(self.confidence, 3),
                "top": [{"category": c, "name": self.name(c), "confidence": round(p, 3)}
                        for c, p in self.top],
                "rule": self.rule, "model_version": self.model_version,
                "auto_dispatch": self.auto_dispatch, "threshold": self.threshold,
                "suggested_agency": self.suggested.code if self.suggested else ""}


def decide(draft: Draft, directory: Directory, prediction: Prediction, *,
           threshold: float = AUTO_DISPATCH_CONFIDENCE) -> Decision:
    """Where the report goes, and whether a national admin must verify it first."""
    taxonomy = directory.categories()
    top = ((prediction.category, prediction.confidence), *prediction.alternatives)[:3]
    category, subcategory = prediction.category, prediction.subcategory
    confidence = prediction.confidence
    reasons = []
    chosen = taxonomy.category_of(draft.category) if draft.category else ""
    if chosen:
        if chosen == prediction.category:
            confidence = max(confidence, 0.9)
            if draft.category != chosen:
                subcategory = draft.category
            reasons.append(f"kategori {taxonomy.name(chosen)} dipilih pelapor dan sesuai "
                           "isi laporan")
        else:
            # Reporter and text disagree: the wrong-agency complaint starts exactly here.
            category, confidence = chosen, min(confidence, 0.5)
            subcategory = draft.category if draft.category != chosen else ""
            reasons.append(f"kategori pilihan pelapor {taxonomy.name(chosen)} berbeda dengan "
                           f"isi laporan ({taxonomy.name(prediction.category)})")
    else:
        reasons.append(f"isi laporan paling cocok dengan {taxonomy.name(category)} "
                       f"(keyakinan {confidence:.2f}; model {prediction.model_version})")

    names = tuple((code, taxonomy.name(code)) for code, _ in top)

    def decision(agency, auto, rule="", suggested=None):
        return Decision(category, confidence, agency, auto, "; ".join(reasons), suggested,
                        subcategory, top, rule, prediction.model_version, threshold,
                        names)

    triage = directory.agency(TRIAGE_AGENCY) or AgencyRef(
        TRIAGE_AGENCY, "Admin Nasional SP4N-LAPOR!", "triage")
    agency, rule = None, ""
    if draft.target_agency:
        agency = directory.agency(draft.target_agency)
        if agency:
            rule = f"instansi tujuan {agency.code} dipilih pelapor"
            reasons.append(rule)
    if agency is None:
        match = directory.rule_for(category, subcategory, draft.region_code)
        if match is not None:
            agency, rule = match.agency, match.describe()
            reasons.append(f"aturan {rule}")
    if agency is None:
        reasons.append("tidak ada instansi yang cocok; masuk antrean verifikasi admin nasional")
        return decision(triage, False)

    problems = quality_problems(draft)
    auto = confidence >= threshold and not problems
    if problems:
        reasons.append("perlu verifikasi: " + ", ".join(problems))
    elif not auto:
        reasons.append(f"keyakinan di bawah {threshold:.2f}; perlu verifikasi admin nasional")
    return decision(agency if auto else triage, auto, rule, suggested=agency)


def quality_problems(draft: Draft) -> list[str]:
    problems = []
    if len(draft.body.strip()) < MIN_BODY_CHARS:
        problems.append("isi laporan terlalu singkat")
    if not draft.title.strip():
        problems.append("judul kosong")
    if not valid_region_code(draft.region_code):
        problems.append("kode wilayah tidak valid")
    return problems

