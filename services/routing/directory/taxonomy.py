"""The taxonomy of complaint categories as data: the 19 national categories of
categories.yaml with their subcategories, plus what operators add in the directory file.
Routing's decisions take a Taxonomy instead of a hard-coded list. No I/O but reading the
bundled categories.yaml."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

NATIONAL_FILE = Path(__file__).with_name("categories.yaml")
# What intake accepts as a category (models.CATEGORY_CODE), and PARENT.SUB for subcategories.
CATEGORY_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,39}", re.ASCII)
SUBCATEGORY_PART = re.compile(r"[A-Z0-9][A-Z0-9_]*", re.ASCII)
MAX_CODE = 40
MAX_NAME = 200


class TaxonomyError(ValueError):
    """A category list that cannot be used; the message says where and what to fix."""


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    parent_code: str = ""  # set for a subcategory: the category it belongs to
    active: bool = True

    @property
    def is_subcategory(self) -> bool:
        return bool(self.parent_code)


class Taxonomy:
    """Categories and subcategories by code, in the order they were given."""

    def __init__(self, categories: Iterable[Category] = ()):
        self._by_code: dict[str, Category] = {}
        for category in categories:
            self._by_code[category.code] = category

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Category]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Taxonomy({len(self.top_level())} categories, {len(self)} codes)"

    def get(self, code: str) -> Category | None:
        return self._by_code.get(code)

    def name(self, code: str) -> str:
        """The name people see for a category or subcategory code; "" when unknown."""
        found = self._by_code.get(code)
        return found.name if found else ""

    def top_level(self) -> list[Category]:
        return [c for c in self._by_code.values() if not c.parent_code]

    def subcategories(self, code: str) -> list[Category]:
        return [c for c in self._by_code.values() if c.parent_code == code]

    def category_of(self, code: str) -> str:
        """The top-level category of a code: itself for a category, its parent for a
        subcategory, "" when unknown."""
        found = self._by_code.get(code)
        if found is None:
            return ""
        return found.parent_code or found.code

    def is_category(self, code: str) -> bool:
        found = self._by_code.get(code)
        return found is not None and not found.parent_code

    def is_subcategory(self, code: str) -> bool:
        found = self._by_code.get(code)
        return found is not None and bool(found.parent_code)

    def active(self) -> Taxonomy:
        """The active categories and the active subcategories of active categories."""
        live = {c.code for c in self if c.active and not c.parent_code}
        return Taxonomy(c for c in self if c.active and (c.code in live
                                                           or c.parent_code in live))


def check_code(code: object, where: str, parent: str = "") -> str:
    """A category code (or, with `parent`, a subcategory code PARENT.SUB), or TaxonomyError."""
    if not isinstance(code, str) or not code:
        raise TaxonomyError(f"{where}: code is required, e.g. PENIADAAN_MUDIK")
    if len(code) > MAX_CODE:
        raise TaxonomyError(f"{where}: code {code!r} is longer than {MAX_CODE} characters")
    if parent:
        head, _, part = code.partition(".")
        if head != parent or not SUBCATEGORY_PART.fullmatch(part):
            raise TaxonomyError(f"{where}: subcategory code {code!r} must be {parent}.NAME in "
                                f"capitals, digits and _ (e.g. {parent}.LAINNYA)")
    elif not CATEGORY_CODE.fullmatch(code):
        raise TaxonomyError(f"{where}: category code {code!r} must be capitals, digits and _, "
                            "starting with a letter (e.g. PENIADAAN_MUDIK)")
    return code


def check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TaxonomyError(f"{where}: name is required: the words people see")
    if len(name) > MAX_NAME:
        raise TaxonomyError(f"{where}: name is longer than {MAX_NAME} characters")
    return name.strip()


def parse(data: object, source: str = "categories") -> Taxonomy:
    """The taxonomy of a `categories:` list ({code, name, subcategories: [{code, name}]}),
    or TaxonomyError naming the entry to fix."""
    if not isinstance(data, list):
        raise TaxonomyError(f"{source}: expected a list of categories")
    out: list[Category] = []
    seen: set[str] = set()
    for i, entry in enumerate(data):
        where = f"{source}[{i}]"
        if not isinstance(entry, dict):
            raise TaxonomyError(f"{where}: expected {{code, name, subcategories}}")
        code = check_code(entry.get("code"), where)
        where = f"{source}[{i}] ({code})"
        if code in seen:
            raise TaxonomyError(f"{where}: {code} is listed twice")
        seen.add(code)
        out.append(Category(code, check_name(entry.get("name"), where)))
        for j, sub in enumerate(entry.get("subcategories") or ()):
            sub_where = f"{where}.subcategories[{j}]"
            if not isinstance(sub, dict):
                raise TaxonomyError(f"{sub_where}: expected {{code, name}}")
            sub_code = check_code(sub.get("code"), sub_where, parent=code)
            if sub_code in seen:
                raise TaxonomyError(f"{sub_where}: {sub_code} is listed twice")
            seen.add(sub_code)
            out.append(Category(sub_code, check_name(sub.get("name"), sub_where), code))
    return Taxonomy(out)


@cache
def national() -> Taxonomy:
    """The 19 national categories and their subcategories (categories.yaml)."""
    data = yaml.safe_load(NATIONAL_FILE.read_text(encoding="utf-8"))
    return parse((data or {}).get("categories"), NATIONAL_FILE.name)
