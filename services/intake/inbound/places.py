"""Where a text message says a report happened: the regencies, cities and provinces of the
official region list named in free text ("jalan rusak di kab. sijunjung", "Kota Padang"),
case, accents and punctuation ignored. Plain Python: the list comes in, a finding goes out.

Districts and villages are not matched: their names repeat across the country (there are
dozens of "Sukamaju"), so a match would be a guess; the sender is asked instead."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from services.infra.regions import Region

# What people write before a regency or city name, and which kind it points to.
QUALIFIERS = {"kab": "kabupaten", "kabupaten": "kabupaten", "kabu": "kabupaten",
              "kota": "kota", "kodya": "kota", "kotamadya": "kota",
              "provinsi": "provinsi", "prov": "provinsi", "propinsi": "provinsi"}
# Region names that are also everyday words ("batu besar di jalan", "puncak bukit", "serang"
# is to attack): they count only after a qualifier ("kota batu") or as the whole answer.
EVERYDAY_WORDS = frozenset({
    "agam", "alor", "badung", "banjar", "batang", "batu", "belu", "berau", "bone", "bungo",
    "buru", "ende", "kampar", "karo", "kaur", "kudus", "lahat", "landak", "malang", "metro",
    "muna", "palu", "paser", "pati", "puncak", "serang", "sigi", "sorong", "tual", "toba",
    "bangli", "asahan", "lingga", "kapuas", "maros"})
# Common short names of provinces.
PROVINCE_ALIASES = {"dki jakarta": "31", "jakarta": "31", "diy": "34", "ntb": "52",
                    "ntt": "53", "babel": "19", "kepri": "21", "sumbar": "13", "sumut": "12",
                    "sumsel": "16", "jabar": "32", "jateng": "33", "jatim": "35",
                    "kalbar": "61", "kalteng": "62", "kalsel": "63", "kaltim": "64",
                    "kaltara": "65", "sulut": "71", "sulteng": "72", "sulsel": "73",
                    "sultra": "74", "sulbar": "76", "malut": "82", "papua barat daya": "96"}
_PREFIX = re.compile(r"^(kabupaten|kota)( administrasi)? ")
_LONGEST = 6  # tokens in the longest name ("kepulauan siau tagulandang biaro" has four)


def tokens(text: str) -> list[str]:
    """Lower-case ASCII words: accents dropped, punctuation and hyphens are spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(ch if ch.isascii() else "" if unicodedata.combining(ch) else " "
                     for ch in decomposed).lower()
    return re.findall(r"[a-z0-9]+", folded)


@dataclass(frozen=True)
class Place:
    code: str
    name: str      # as the official list writes it: "Kabupaten Sijunjung"
    kind: str      # kabupaten | kota | provinsi


@dataclass(frozen=True)
class Finding:
    """One place (found), several it could be (ambiguous, best first) or none."""

    places: tuple[Place, ...]

    @property
    def found(self) -> Place | None:
        return self.places[0] if len(self.places) == 1 else None

    @property
    def ambiguous(self) -> bool:
        return len(self.places) > 1


class Gazetteer:
    """The regencies, cities and provinces of a region list, indexed by their names' words."""

    def __init__(self, regions: Iterable[Region]):
        self.by_name: dict[tuple[str, ...], list[Place]] = {}
        self.by_code: dict[str, Place] = {}
        for region in regions:
            if region.level == "provinsi":
                place, core = Place(region.code, region.name, "provinsi"), region.name
            elif region.level == "kabupaten_kota":
                lowered = region.name.lower()
                kind = "kota" if lowered.startswith("kota") else "kabupaten"
                place, core = Place(region.code, region.name, kind), _PREFIX.sub("", lowered)
            else:
                continue
            self.by_code[place.code] = place
            self._index(core, place)
            if "-" in core:  # Toli-Toli is also written Tolitoli
                self._index(core.replace("-", ""), place)
        for alias, code in PROVINCE_ALIASES.items():
            if code in self.by_code:
                self._index(alias, self.by_code[code])

    def _index(self, name: str, place: Place) -> None:
        key = tuple(tokens(name))
        if key and place not in self.by_name.setdefault(key, []):
            self.by_name[key].append(place)

    def __len__(self) -> int:
        return len(self.by_code)

    def find(self, text: str, among: Iterable[str] = ()) -> Finding:
        """The place `text` names. The most specific wins: a regency or city over its
        province, "padang pariaman" over "padang"; a name that two places share (Kabupaten
        and Kota Bogor) is ambiguous unless a qualifier says which. `among` (codes) narrows
        the answer to a question that offered those places: "kota", "kabupaten" or the
        number of the choice is then enough."""
        words = tokens(text)
        choices = [self.by_code[c] for c in among if c in self.by_code]
        if choices:
            picked = _pick(words, choices)
            if picked is not None:
                return Finding((picked,))
        matches = self._matches(words)
        places: list[Place] = []
        for candidates in matches:
            for place in candidates:
                if place not in places:
                    places.append(place)
        if any(p.kind != "provinsi" for p in places):
            named = {p.code for p in places if p.kind == "provinsi"}
            places = [p for p in places if p.kind != "provinsi"]
            inside = [p for p in places if p.code.split(".")[0] in named]
            places = inside or places
        if choices and len(places) > 1:
            places = [p for p in places if p in choices] or places
        return Finding(tuple(places))

    def _matches(self, words: list[str]) -> list[list[Place]]:
        """The places each name in `words` may be, longest names first, names inside a
        longer match dropped."""
        spans: list[tuple[int, int, list[Place]]] = []
        bare_answer = len(words) <= 2
        for start in range(len(words)):
            for length in range(min(_LONGEST, len(words) - start), 0, -1):
                key = tuple(words[start:start + length])
                places = self.by_name.get(key)
                if not places:
                    continue
                qualifier = QUALIFIERS.get(words[start - 1]) if start else None
                if (length == 1 and key[0] in EVERYDAY_WORDS and qualifier is None
                        and not bare_answer):
                    continue
                if qualifier is not None:
                    places = [p for p in places if p.kind == qualifier] or places
                spans.append((start, start + length, places))
                break
        kept = [s for s in spans
                if not any(o is not s and o[0] <= s[0] and s[1] <= o[1]
                           and (o[1] - o[0]) > (s[1] - s[0]) for o in spans)]
        return [places for _, _, places in kept]


def _pick(words: list[str], choices: list[Place]) -> Place | None:
    """The choice an answer to "KABUPATEN BOGOR atau KOTA BOGOR?" means: its number, or the
    one kind named."""
    for word in words:
        if word.isdigit() and 1 <= int(word) <= len(choices):
            return choices[int(word) - 1]
    kinds = {QUALIFIERS[w] for w in words if w in QUALIFIERS}
    if len(kinds) == 1:
        chosen = [p for p in choices if p.kind in kinds]
        if len(chosen) == 1:
            return chosen[0]
    return None
