"""How a rule is chosen for a report: rules for its subcategory first, from the most specific
region of the report's ancestry to the national rule (region ""), then rules for its category
the same way. The first rule whose agency is active wins; the rest are the hand-over
candidates (pelimpahan). Plain Python."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.routing.rules import AgencyRef, region_ancestry


@dataclass(frozen=True)
class RuleMatch:
    agency: AgencyRef
    matched_code: str     # the category or subcategory code of the rule
    matched_region: str   # the rule's region; "" for a national rule
    region_name: str = ""  # the rule region's name, when the directory knows it

    def describe(self) -> str:
        """The rule in words, for the decision's explanation:
        "KESEHATAN.BPJS nasional → BPJS Kesehatan"."""
        if not self.matched_region:
            where = "nasional"
        elif self.region_name:
            where = f"{self.region_name} ({self.matched_region})"
        else:
            where = self.matched_region
        return f"{self.matched_code} {where} → {self.agency.name}"


def split_codes(category: str, subcategory: str = "") -> tuple[str, str]:
    """(category, subcategory) as rules know them: a subcategory code passed as the category
    (KESEHATAN.BPJS) stands for itself and its category."""
    if not subcategory and "." in category:
        subcategory = category
    if (subcategory and not category) or "." in category:
        category = subcategory.split(".", 1)[0]
    return category, subcategory


def rule_keys(category: str, subcategory: str, region_code: str) -> list[tuple[str, str]]:
    """The (code, region) keys of the rules that may apply, best first."""
    category, subcategory = split_codes(category, subcategory)
    ancestry = region_ancestry(region_code) if region_code else [""]
    keys = [(subcategory, region) for region in ancestry] if subcategory else []
    if category:
        keys += [(category, region) for region in ancestry]
    return keys


def ordered(found: Iterable[tuple[str, str, AgencyRef]], keys: list[tuple[str, str]],
            region_names: dict[str, str] | None = None) -> list[RuleMatch]:
    """The rules `found` ((code, region, agency) of active agencies) in the order of `keys`,
    each agency once (at its best rule)."""
    rank = {key: i for i, key in enumerate(keys)}
    names = region_names or {}
    out, seen = [], set()
    for code, region, agency in sorted(found, key=lambda f: rank.get((f[0], f[1]), len(rank))):
        if (code, region) not in rank or agency.code in seen:
            continue
        seen.add(agency.code)
        out.append(RuleMatch(agency, code, region, names.get(region, "")))
    return out
