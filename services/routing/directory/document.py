"""The directory file operators edit (YAML): categories beyond the national taxonomy, the
kinds of office every province and regency/city has, where they are, agencies listed one by
one (national bodies, state companies, exceptions), and rules listed one by one. `expand`
turns it into what the database holds: every agency and every rule. `compress` does the
reverse for `directory export`. Plain Python, no database.

    format: lapor-directory/1
    categories:                       # beyond categories.yaml; removed ones are deactivated
      - {code: PENIADAAN_MUDIK, name: PENIADAAN MUDIK, subcategories: [...]}
    offices:                          # expanded for every region listed below
      - {kind: DINKES, regency: "Dinas Kesehatan {region}", province: "...", parent: KEMENKES,
         handles: [KESEHATAN]}
    regions: {"91": Provinsi Papua, "91.71": Kota Jayapura}
    agencies:                         # same code as an office: these fields win
      - {code: KEMENKES, name: Kementerian Kesehatan, level: national}
    rules:                            # agency: null removes a rule the offices make
      - {category: KESEHATAN.BPJS, region: "", agency: BPJS-KESEHATAN}
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import yaml

from services.infra.regions import valid_region_code
from services.routing.directory import taxonomy as tax
from services.routing.directory.taxonomy import Category, Taxonomy, TaxonomyError

FORMAT = "lapor-directory/1"
SECTIONS = ("format", "categories", "offices", "regions", "agencies", "rules")
LEVELS = ("national", "provincial", "regency", "triage")
TRIAGE_AGENCY = "ADMIN-NASIONAL"
# Intake's pattern for agency codes (models.AGENCY_CODE).
AGENCY_CODE = re.compile(r"[A-Z0-9][A-Z0-9.\-]{1,39}", re.ASCII)
KIND_CODE = re.compile(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)*", re.ASCII)
PLACEHOLDERS = ("region", "short", "code", "province", "kind")
MAX_NAME = 200
# Prefixes left out of {short}: "Polres {short}" is Polres Sijunjung, not Polres Kabupaten
# Sijunjung. Longest first.
SHORT_PREFIXES = ("Kabupaten Administrasi ", "Kota Administrasi ", "Provinsi ", "Kabupaten ",
                  "Kota ")


class DirectoryError(ValueError):
    """A directory file that cannot be loaded: every problem found, each saying where."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    level: str                 # national | provincial | regency | triage
    region_code: str = ""
    parent_code: str = ""
    active: bool = True


@dataclass(frozen=True)
class OfficeKind:
    """One kind of office present in every listed region: names and codes are templates over
    {region} (the region as office names write it), {short} (without Kabupaten/Kota/Provinsi),
    {code} (the region's code), {province} (its province's code) and {kind}."""

    kind: str
    regency: str = ""          # name template of the regency/city office; "" for none
    province: str = ""         # name template of the province office; "" for none
    parent: str = ""           # parent of the province office (a national agency)
    # Parent of a regency office: by default the province office of the same kind, or
    # `parent` when the kind has none.
    regency_parent: str = ""
    regency_code: str = "{kind}-{code}"
    province_code: str = "{kind}-{code}"
    handles: tuple[str, ...] = ()  # categories and subcategories its offices handle


@dataclass
class Document:
    """A parsed directory file, not yet expanded."""

    categories: list[Category] = field(default_factory=list)
    offices: list[OfficeKind] = field(default_factory=list)
    regions: dict[str, str] = field(default_factory=dict)
    agencies: list[dict] = field(default_factory=list)  # code plus the fields given
    rules: list[tuple[str, str, str | None]] = field(default_factory=list)


@dataclass
class Directory:
    """What the database holds: categories beyond the national ones, every agency, every
    rule ((category or subcategory code, region) -> agency code)."""

    categories: dict[str, Category] = field(default_factory=dict)
    agencies: dict[str, Agency] = field(default_factory=dict)
    rules: dict[tuple[str, str], str] = field(default_factory=dict)


class _Problems:
    def __init__(self, source: str):
        self.source = source
        self.found: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.found.append(f"{self.source}: {where}: {message}" if where
                          else f"{self.source}: {message}")

    def raise_any(self) -> None:
        if self.found:
            raise DirectoryError(self.found)


# -- reading -----------------------------------------------------------------------------------

def load_text(text: str, source: str = "directory") -> Document:
    """Parses a directory file's text; DirectoryError lists what to fix."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise DirectoryError([f"{source}: {where}: not valid YAML "
                              f"({getattr(exc, 'problem', None) or exc})"]) from None
    return parse(data, source)


def parse(data: object, source: str = "directory") -> Document:
    problems = _Problems(source)
    if not isinstance(data, dict):
        problems.add("", f"expected a mapping with the sections {', '.join(SECTIONS)}")
        problems.raise_any()
    for key in data:
        if key not in SECTIONS:
            problems.add("", f"unknown section {key!r}; the sections are {', '.join(SECTIONS)}")
    if data.get("format") != FORMAT:
        problems.add("format", f"must be {FORMAT} (got {data.get('format')!r})")
    doc = Document()
    doc.categories = _parse_categories(data.get("categories") or [], problems)
    doc.offices = _parse_offices(data.get("offices") or [], problems)
    doc.regions = _parse_regions(data.get("regions") or {}, problems)
    doc.agencies = _parse_agencies(data.get("agencies") or [], problems)
    doc.rules = _parse_rules(data.get("rules") or [], problems)
    problems.raise_any()
    return doc


def _list(value: object, where: str, problems: _Problems) -> list:
    if not isinstance(value, list):
        problems.add(where, "expected a list")
        return []
    return value


def _mapping(entry: object, where: str, keys: tuple[str, ...], problems: _Problems) -> dict:
    if not isinstance(entry, dict):
        problems.add(where, f"expected a mapping with {', '.join(keys)}")
        return {}
    for key in entry:
        if key not in keys:
            problems.add(where, f"unknown field {key!r}; the fields are {', '.join(keys)}")
    return entry


def _text(entry: dict, key: str, where: str, problems: _Problems, *,
          required: bool = False) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            problems.add(where, f"{key} is required")
        return ""
    if not isinstance(value, str):
        problems.add(where, f"{key} must be text (got {value!r})")
        return ""
    if len(value) > MAX_NAME:
        problems.add(where, f"{key} is longer than {MAX_NAME} characters")
    return value.strip()


def _region(value: object, where: str, problems: _Problems) -> str:
    """A region code as written: numbers are refused, since YAML reads 13.10 as 13.1."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        problems.add(where, f"region {value!r} must be quoted, e.g. \"13.10\" (YAML reads an "
                            "unquoted 13.10 as the number 13.1)")
        return ""
    if not valid_region_code(value):
        problems.add(where, f"region {value!r} is not a Kemendagri code like \"13\" or "
                            "\"13.03\", or \"\" for national")
        return ""
    return value


def _active(entry: dict, where: str, problems: _Problems) -> bool | None:
    value = entry.get("active")
    if value is not None and not isinstance(value, bool):
        problems.add(where, f"active must be true or false (got {value!r})")
        return None
    return value


def _parse_categories(data: object, problems: _Problems) -> list[Category]:
    out = []
    keys = ("code", "name", "parent", "subcategories", "active")
    for i, raw in enumerate(_list(data, "categories", problems)):
        where = f"categories[{i}]"
        entry = _mapping(raw, where, keys, problems)
        if not entry:
            continue
        parent = _text(entry, "parent", where, problems)
        active = _active(entry, where, problems)
        try:
            code = tax.check_code(entry.get("code"), where, parent=parent)
            name = tax.check_name(entry.get("name"), where)
        except TaxonomyError as exc:
            problems.found.append(f"{problems.source}: {exc}")
            continue
        if parent and entry.get("subcategories"):
            problems.add(where, "a subcategory (with parent) cannot have subcategories")
        out.append(Category(code, name, parent, active is not False))
        for j, raw_sub in enumerate(_list(entry.get("subcategories") or [],
                                          f"{where}.subcategories", problems)):
            sub_where = f"{where}.subcategories[{j}]"
            sub = _mapping(raw_sub, sub_where, ("code", "name", "active"), problems)
            if not sub:
                continue
            sub_active = _active(sub, sub_where, problems)
            try:
                out.append(Category(tax.check_code(sub.get("code"), sub_where, parent=code),
                                    tax.check_name(sub.get("name"), sub_where), code,
                                    sub_active is not False))
            except TaxonomyError as exc:
                problems.found.append(f"{problems.source}: {exc}")
    return out


def _template(entry: dict, key: str, where: str, problems: _Problems) -> str:
    value = _text(entry, key, where, problems)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        problems.add(where, f"{key}: {exc} (write placeholders as {{region}})")
        return ""
    for name in names:
        if name not in PLACEHOLDERS:
            problems.add(where, f"{key}: unknown placeholder {{{name}}}; use "
                                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    return value


def _parse_offices(data: object, problems: _Problems) -> list[OfficeKind]:
    out, seen = [], set()
    keys = ("kind", "regency", "province", "parent", "regency_parent", "regency_code",
            "province_code", "handles")
    for i, raw in enumerate(_list(data, "offices", problems)):
        where = f"offices[{i}]"
        entry = _mapping(raw, where, keys, problems)
        if not entry:
            continue
        kind = _text(entry, "kind", where, problems, required=True)
        if kind and not KIND_CODE.fullmatch(kind):
            problems.add(where, f"kind {kind!r} must be capitals and digits, e.g. DINKES")
        where = f"offices[{i}] ({kind})"
        if kind in seen:
            problems.add(where, f"kind {kind} is listed twice")
        seen.add(kind)
        handles = entry.get("handles") or []
        if not isinstance(handles, list) or not all(isinstance(h, str) for h in handles):
            problems.add(where, "handles must be a list of category codes, e.g. [KESEHATAN]")
            handles = []
        office = OfficeKind(
            kind=kind, regency=_template(entry, "regency", where, problems),
            province=_template(entry, "province", where, problems),
            parent=_template(entry, "parent", where, problems),
            regency_parent=_template(entry, "regency_parent", where, problems),
            regency_code=_template(entry, "regency_code", where, problems) or "{kind}-{code}",
            province_code=_template(entry, "province_code", where, problems)
            or "{kind}-{code}",
            handles=tuple(handles))
        if not office.regency and not office.province:
            problems.add(where, "give a name template for regency and/or province offices, "
                                "e.g. regency: \"Dinas Kesehatan {region}\"")
        out.append(office)
    return out


def _parse_regions(data: object, problems: _Problems) -> dict[str, str]:
    if not isinstance(data, dict):
        problems.add("regions", "expected a mapping of region code to name, e.g. "
                                "\"13.03\": Kabupaten Sijunjung")
        return {}
    out = {}
    for key, name in data.items():
        where = f"regions[{key!r}]"
        code = _region(key, where, problems)
        if not code:
            continue
        if code.count(".") > 1:
            problems.add(where, "offices are for provinces (\"13\") and regencies/cities "
                                "(\"13.03\") only")
        if not isinstance(name, str) or not name.strip():
            problems.add(where, "give the region's name as office names write it, e.g. "
                                "Kabupaten Sijunjung or Provinsi Sumatera Barat")
            continue
        out[code] = name.strip()
    return out


def _parse_agencies(data: object, problems: _Problems) -> list[dict]:
    out, seen = [], set()
    keys = ("code", "name", "level", "region", "parent", "active")
    for i, raw in enumerate(_list(data, "agencies", problems)):
        where = f"agencies[{i}]"
        entry = _mapping(raw, where, keys, problems)
        if not entry:
            continue
        code = _text(entry, "code", where, problems, required=True)
        if code and not AGENCY_CODE.fullmatch(code):
            problems.add(where, f"code {code!r} must be 2 to 40 capitals, digits, dots and "
                                "dashes, e.g. DINKES-91.71")
        where = f"agencies[{i}] ({code})"
        if code in seen:
            problems.add(where, f"{code} is listed twice")
        seen.add(code)
        given: dict = {"code": code}
        if "name" in entry:
            given["name"] = _text(entry, "name", where, problems, required=True)
        if "level" in entry:
            level = _text(entry, "level", where, problems, required=True)
            if level not in LEVELS:
                problems.add(where, f"level {level!r} is not one of {', '.join(LEVELS)}")
            given["level"] = level
        if "region" in entry:
            given["region_code"] = _region(entry.get("region"), where, problems)
        if "parent" in entry:
            given["parent_code"] = _text(entry, "parent", where, problems)
        if "active" in entry:
            active = _active(entry, where, problems)
            if active is not None:
                given["active"] = active
        out.append(given)
    return out


def _parse_rules(data: object, problems: _Problems) -> list[tuple[str, str, str | None]]:
    out, seen = [], set()
    for i, raw in enumerate(_list(data, "rules", problems)):
        where = f"rules[{i}]"
        entry = _mapping(raw, where, ("category", "region", "agency"), problems)
        if not entry:
            continue
        code = _text(entry, "category", where, problems, required=True)
        if "region" not in entry:
            problems.add(where, "region is required: a code such as \"13.03\", or \"\" for "
                                "the national rule")
        region = _region(entry.get("region"), where, problems)
        if "agency" not in entry:
            problems.add(where, "agency is required: an agency code, or null to remove the "
                                "rule the offices would make")
        agency = entry.get("agency")
        if agency is not None and not isinstance(agency, str):
            problems.add(where, f"agency must be an agency code or null (got {agency!r})")
            agency = None
        if (code, region) in seen:
            problems.add(where, f"a second rule for {code} in {region or 'nasional'}")
        seen.add((code, region))
        out.append((code, region, agency.strip() if isinstance(agency, str) else None))
    return out


# -- expanding ----------------------------------------------------------------------------------

def short_names(regions: Mapping[str, str]) -> dict[str, str]:
    """{short} of each region: its name without Kabupaten/Kota/Provinsi; a city sharing its
    name with a regency is "<name> Kota" (Polres Solok Kota beside Polres Solok)."""
    out = {}
    for code, name in regions.items():
        prefix = next((p for p in SHORT_PREFIXES if name.startswith(p)), "")
        out[code] = name[len(prefix):]
    regency_shorts = {out[c] for c, n in regions.items()
                      if c.count(".") == 1 and n.startswith("Kabupaten ")}
    for code, name in regions.items():
        if name.startswith("Kota ") and not name.startswith("Kota Administrasi ") \
                and out[code] in regency_shorts:
            out[code] = f"{out[code]} Kota"
    return out


def _fill(template: str, values: dict[str, str]) -> str:
    return template.format_map(values) if template else ""


def expand_offices(offices: Iterable[OfficeKind], regions: Mapping[str, str]
                   ) -> tuple[dict[str, Agency], dict[tuple[str, str], str], list[str]]:
    """The agencies and rules the office kinds make over `regions`, and the codes two kinds
    both make."""
    agencies: dict[str, Agency] = {}
    rules: dict[tuple[str, str], str] = {}
    clashes = []
    shorts = short_names(regions)
    provinces = [c for c in regions if "." not in c]
    regencies = [c for c in regions if c.count(".") == 1]
    for office in offices:
        province_office: dict[str, str] = {}
        for level, codes, name_t, code_t in (
                ("provincial", provinces, office.province, office.province_code),
                ("regency", regencies, office.regency, office.regency_code)):
            if not name_t:
                continue
            for region in codes:
                province = region.split(".")[0]
                values = {"region": regions[region], "short": shorts[region], "code": region,
                          "province": province, "kind": office.kind}
                code = _fill(code_t, values)
                if level == "provincial":
                    parent = _fill(office.parent, values)
                    province_office[region] = code
                elif office.regency_parent:
                    parent = _fill(office.regency_parent, values)
                else:
                    parent = province_office.get(province) or _fill(office.parent, values)
                if code in agencies:
                    clashes.append(code)
                agencies[code] = Agency(code, _fill(name_t, values), level, region, parent)
                for category in office.handles:
                    rules[(category, region)] = code
    return agencies, rules, clashes


def expand(doc: Document, national: Taxonomy | None = None,
           source: str = "directory") -> Directory:
    """Every agency and rule the document stands for; DirectoryError lists what is
    inconsistent (unknown categories, parents or agencies, cycles of parents)."""
    national = national if national is not None else tax.national()
    problems = _Problems(source)
    out = Directory()
    known = _expand_categories(doc, national, out, problems)
    for i, office in enumerate(doc.offices):
        for code in office.handles:
            if code not in known:
                problems.add(f"offices[{i}] ({office.kind})",
                             f"handles {code}, which is neither a national category nor one "
                             "of this file's categories")
    out.agencies, out.rules, clashes = expand_offices(doc.offices, doc.regions)
    for code in sorted(set(clashes)):
        problems.add("offices", f"two kinds of office both make {code}")

    for i, given in enumerate(doc.agencies):
        code = given["code"]
        where = f"agencies[{i}] ({code})"
        fields = {k: v for k, v in given.items() if k != "code"}
        if code in out.agencies:
            out.agencies[code] = replace(out.agencies[code], **fields)
            continue
        for required in ("name", "level"):
            if required not in fields:
                problems.add(where, f"{required} is required for an agency that no office "
                                    "kind makes")
        if "name" in fields and "level" in fields:
            out.agencies[code] = Agency(code, **fields)

    for i, (code, region, agency) in enumerate(doc.rules):
        where = f"rules[{i}] ({code} {region or 'nasional'})"
        if code not in known:
            problems.add(where, f"{code} is neither a national category nor one of this "
                                "file's categories")
        if agency is None:
            out.rules.pop((code, region), None)
        else:
            out.rules[(code, region)] = agency
    _check_agencies(out, problems)
    for (code, region), agency in out.rules.items():
        if agency not in out.agencies:
            problems.add("rules", f"{code} in {region or 'nasional'} goes to {agency}, which "
                                  "is not an agency of this file")
    problems.raise_any()
    return out


def _expand_categories(doc: Document, national: Taxonomy, out: Directory,
                       problems: _Problems) -> set[str]:
    known = {c.code for c in national}
    for category in doc.categories:
        where = f"categories ({category.code})"
        if category.code in national:
            problems.add(where, f"{category.code} is a national category "
                                "(categories.yaml); it cannot be redefined here")
            continue
        if category.code in out.categories:
            problems.add(where, f"{category.code} is listed twice")
            continue
        if category.parent_code and not (national.is_category(category.parent_code) or (
                category.parent_code in out.categories
                and not out.categories[category.parent_code].parent_code)):
            problems.add(where, f"parent {category.parent_code} is not a category")
            continue
        out.categories[category.code] = category
        known.add(category.code)
    return known


def _check_agencies(out: Directory, problems: _Problems) -> None:
    for agency in out.agencies.values():
        where = f"agency {agency.code}"
        if agency.level in ("national", "triage") and agency.region_code:
            problems.add(where, f"a {agency.level} agency has no region (got "
                                f"{agency.region_code!r})")
        if agency.level == "provincial" and agency.region_code.count(".") != 0 or (
                agency.level == "regency" and agency.region_code.count(".") < 1):
            problems.add(where, f"a {agency.level} agency's region must be a "
                                f"{'province' if agency.level == 'provincial' else 'regency'} "
                                f"code (got {agency.region_code!r})")
        if agency.parent_code and agency.parent_code not in out.agencies:
            problems.add(where, f"parent {agency.parent_code} is not an agency of this file")
    triage = out.agencies.get(TRIAGE_AGENCY)
    if triage is None or not triage.active or triage.level != "triage":
        problems.add("agencies", f"{TRIAGE_AGENCY} (level triage: the national admin's "
                                 "verification queue) must be in the file and active")
    # Escalation climbs parents: a cycle would climb forever.
    for start in out.agencies:
        seen, code = set(), start
        while code and code in out.agencies and code not in seen:
            seen.add(code)
            code = out.agencies[code].parent_code
        if code == start:
            problems.add(f"agency {start}", "its parents lead back to itself: "
                                            + " → ".join(_chain(out, start)))


def _chain(out: Directory, start: str) -> list[str]:
    chain, code = [start], out.agencies[start].parent_code
    while code and code != start and len(chain) < 20:
        chain.append(code)
        code = out.agencies[code].parent_code
    return [*chain, start]


# -- writing ------------------------------------------------------------------------------------

def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True,
                          sort_keys=False).strip().removesuffix("...").strip()


HEADER = f"""\
# LAPOR directory: categories beyond the national taxonomy, the offices of every province and
# regency/city, national agencies, and who handles what where. Load it with
#   python -m services.routing directory load FILE
# (idempotent: loading it twice changes nothing; docs/directory.md explains every section).
format: {FORMAT}
"""

CATEGORIES_NOTE = """
# Categories and subcategories beyond the national taxonomy (categories.yaml, fixed). A
# category removed from this list is deactivated, never deleted. For example:
#   - code: PENIADAAN_MUDIK
#     name: PENIADAAN MUDIK
#     subcategories:
#       - {code: PENIADAAN_MUDIK.PENYEKATAN, name: Penyekatan dan pemeriksaan perjalanan}
#   - {code: KESEHATAN.DBD, name: Demam berdarah, parent: KESEHATAN}
"""

OFFICES_NOTE = """
# Kinds of office, made for every region listed under `regions`: a province office
# (`province`, its parent `parent`) and a regency/city office (`regency`, its parent the
# province office of the same kind unless `regency_parent` says otherwise), each handling
# the codes in `handles` in its own region. In names and codes: {region} is the region as
# written under `regions`, {short} the same without Kabupaten/Kota/Provinsi, {code} the
# region's code, {province} its province's code; codes default to {kind}-{code}.
"""

REGIONS_NOTE = """
# Where the offices are: provinces and regencies/cities, written as office names write them.
"""

AGENCIES_NOTE = """
# Agencies listed one by one: national ministries and agencies, state companies, the triage
# queue, and exceptions to the offices above (the same code: the fields given here win;
# `active: false` closes an office). An agency no longer in the file is deactivated.
"""

RULES_NOTE = """
# Rules listed one by one: (category or subcategory, region) -> agency; region "" is the
# national rule. A subcategory's rules come before its category's, and within each the most
# specific region of the report wins. `agency: null` removes a rule the offices make.
"""


def dump(data: dict) -> str:
    """The file's text for document data (as `generate` or `compress` make it)."""
    lines = [HEADER.rstrip("\n"), CATEGORIES_NOTE.rstrip("\n")]
    categories = data.get("categories") or []
    if not categories:
        lines.append("categories: []")
    else:
        lines.append("categories:")
        for category in categories:
            subs = category.get("subcategories")
            head = {k: v for k, v in category.items() if k != "subcategories"}
            if not subs:
                lines.append(f"  - {_flow(head)}")
                continue
            first = True
            for key, value in head.items():
                lines.append(f"  {'- ' if first else '  '}{key}: {_flow(value)}")
                first = False
            lines.append("    subcategories:")
            lines += [f"      - {_flow(sub)}" for sub in subs]
    lines.append(OFFICES_NOTE.rstrip("\n"))
    offices = data.get("offices") or []
    lines.append("offices:" if offices else "offices: []")
    for office in offices:
        first = True
        for key, value in office.items():
            lines.append(f"  {'- ' if first else '  '}{key}: {_flow(value)}")
            first = False
    lines.append(REGIONS_NOTE.rstrip("\n"))
    regions = data.get("regions") or {}
    lines.append("regions:" if regions else "regions: {}")
    lines += [f"  {_flow(code)}: {_flow(name)}" for code, name in regions.items()]
    lines.append(AGENCIES_NOTE.rstrip("\n"))
    agencies = data.get("agencies") or []
    lines.append("agencies:" if agencies else "agencies: []")
    lines += [f"  - {_flow(agency)}" for agency in agencies]
    lines.append(RULES_NOTE.rstrip("\n"))
    rules = data.get("rules") or []
    lines.append("rules:" if rules else "rules: []")
    lines += [f"  - {_flow(rule)}" for rule in rules]
    return "\n".join(lines) + "\n"


def office_data(office: OfficeKind) -> dict:
    """An office kind as the file writes it (defaults left out)."""
    data: dict = {"kind": office.kind}
    for key in ("regency", "province", "parent", "regency_parent"):
        if getattr(office, key):
            data[key] = getattr(office, key)
    for key in ("regency_code", "province_code"):
        if getattr(office, key) != "{kind}-{code}":
            data[key] = getattr(office, key)
    data["handles"] = list(office.handles)
    return data


def agency_data(agency: Agency) -> dict:
    data: dict = {"code": agency.code, "name": agency.name, "level": agency.level}
    if agency.region_code:
        data["region"] = agency.region_code
    if agency.parent_code:
        data["parent"] = agency.parent_code
    if not agency.active:
        data["active"] = False
    return data


def categories_data(categories: Iterable[Category]) -> list[dict]:
    """Categories beyond the national ones as the file writes them: new categories with their
    subcategories nested, new subcategories of national categories with their parent."""
    categories = list(categories)
    tops = {c.code for c in categories if not c.parent_code}
    out = []
    for category in categories:
        if category.parent_code:
            if category.parent_code in tops:
                continue
            entry = {"code": category.code, "name": category.name,
                     "parent": category.parent_code}
        else:
            entry = {"code": category.code, "name": category.name}
            subs = [_category_entry(s) for s in categories if s.parent_code == category.code]
            if subs:
                entry["subcategories"] = subs
        if not category.active:
            entry["active"] = False
        out.append(entry)
    return out


def _category_entry(category: Category) -> dict:
    entry = {"code": category.code, "name": category.name}
    if not category.active:
        entry["active"] = False
    return entry


def rule_data(code: str, region: str, agency: str | None) -> dict:
    return {"category": code, "region": region, "agency": agency}


# -- exporting ----------------------------------------------------------------------------------

def compress(directory: Directory, offices: Iterable[OfficeKind],
             regions: Mapping[str, str]) -> dict:
    """Document data standing for `directory`, written as compactly as the office kinds
    allow: a kind is used when every office it makes over the regions where it is found
    exists and at least half of them are exactly as it makes them; the rest is listed one
    by one. Expanding the result gives back `directory` exactly (checked: otherwise
    everything is listed one by one)."""
    explicit = _explicit(directory)
    offices = list(offices)
    listed: dict[str, str] = {}
    for code, name in regions.items():
        if code.count(".") > 1:
            continue
        made, _, _ = expand_offices(offices, {code: name})
        if any(c in directory.agencies for c in made):
            listed[code] = name
    chosen = []
    for office in offices:
        made, _, _ = expand_offices([office], listed)
        exact = sum(1 for code, agency in made.items() if directory.agencies.get(code) == agency)
        if made and all(code in directory.agencies for code in made) \
                and exact * 2 >= len(made):
            chosen.append(office)
    if not chosen:
        return explicit
    listed = {code: name for code, name in listed.items()
              if any(c in directory.agencies for c in expand_offices(chosen, {code: name})[0])}
    made, made_rules, _ = expand_offices(chosen, listed)
    agencies = []
    for code, agency in directory.agencies.items():
        expected = made.get(code)
        if expected is None:
            agencies.append(agency_data(agency))
        elif expected != agency:
            agencies.append(_difference(expected, agency))
    rules = [rule_data(code, region, agency)
             for (code, region), agency in directory.rules.items()
             if made_rules.get((code, region)) != agency]
    rules += [rule_data(code, region, None) for (code, region) in made_rules
              if (code, region) not in directory.rules]
    data = {"format": FORMAT, "categories": categories_data(directory.categories.values()),
            "offices": [office_data(o) for o in chosen], "regions": listed,
            "agencies": agencies, "rules": rules}
    try:
        again = expand(parse(yaml.safe_load(dump(data)), "export"),
                       source="export")
    except DirectoryError:
        return explicit
    return data if again == directory else explicit


def _explicit(directory: Directory) -> dict:
    return {"format": FORMAT, "categories": categories_data(directory.categories.values()),
            "offices": [], "regions": {},
            "agencies": [agency_data(a) for a in directory.agencies.values()],
            "rules": [rule_data(c, r, a) for (c, r), a in directory.rules.items()]}


def _difference(expected: Agency, actual: Agency) -> dict:
    """An exception entry: the code and the fields that differ from what the office kind
    makes."""
    entry: dict = {"code": actual.code}
    for key, field_name in (("name", "name"), ("level", "level"), ("region", "region_code"),
                            ("parent", "parent_code"), ("active", "active")):
        if getattr(actual, field_name) != getattr(expected, field_name):
            entry[key] = getattr(actual, field_name)
    return entry
