"""The Kemendagri region list as a file: the official CSV (kode,nama,level) that routing and
intake both import, each into its own table. Plain Python: reading and checking only."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

# Province "13", regency/city "13.03", district "13.03.01", village "13.03.01.2001".
REGION_CODE = re.compile(r"\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?", re.ASCII)
LEVELS = ("provinsi", "kabupaten_kota", "kecamatan", "desa_kelurahan")


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str  # provinsi | kabupaten_kota | kecamatan | desa_kelurahan


def valid_region_code(code: str) -> bool:
    return bool(REGION_CODE.fullmatch(code or ""))


def level_of(code: str) -> str:
    """The level a well-formed code belongs to: 13.03 is a kabupaten_kota."""
    return LEVELS[code.count(".")]


def parent_code(code: str) -> str | None:
    return code.rsplit(".", 1)[0] if "." in code else None


def read_regions_csv(path: Path) -> list[Region]:
    """Reads the Kemendagri list (columns kode, nama, level); raises ValueError naming the
    line that is wrong and what to write instead."""
    try:
        return _read(path)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); save the list as "
                         "UTF-8 CSV") from None


def _read(path: Path) -> list[Region]:
    out: list[Region] = []
    seen: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"kode", "nama", "level"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                             "expected kode,nama,level")
        for row in reader:
            line = reader.line_num  # the file's own line number, blank lines included
            if None in (row["kode"], row["nama"], row["level"]):
                raise ValueError(f"{path}:{line}: expected three fields kode,nama,level")
            code, name, level = row["kode"].strip(), row["nama"].strip(), row["level"].strip()
            if not valid_region_code(code):
                raise ValueError(f"{path}:{line}: {code!r} is not a Kemendagri code "
                                 "like 13 or 13.03 or 13.03.01 or 13.03.01.2001")
            if level not in LEVELS:
                raise ValueError(f"{path}:{line}: level {level!r} is not one of "
                                 f"{', '.join(LEVELS)}")
            if level != level_of(code):
                raise ValueError(f"{path}:{line}: {code} is a {level_of(code)} code, but the "
                                 f"line says {level}")
            if not name:
                raise ValueError(f"{path}:{line}: empty name for {code}")
            if code in seen:
                raise ValueError(f"{path}:{line}: {code} is already on line {seen[code]}; "
                                 "each code once")
            seen[code] = line
            out.append(Region(code, name, level))
    return out
