"""The labelled examples the classifier learns from, and the fixed split that keeps part of
them away from training so that reported accuracy is measured on text the model never saw.

The corpus is one JSON Lines file per category under corpus/ (`PUPR.jsonl`: one object per
line, {"title", "body", "subcategory", "region"}). Corrections (an admin recategorising in
triage, a ticket handed on after "not our authority") come from routing's `corrections`
table and are only ever trained on.

The split: each corpus example's key is the SHA-256 of its folded text (normalise.fold of
title and body); the example is held out when the key's first 8 hex digits, as a number,
modulo 100 fall below HELD_OUT_PERCENT (20). The side an example lands on depends only on
its own text, so adding examples never moves others, and copies of one text (up to case,
accents and punctuation) always land on the same side. Then, per subcategory, if chance left
no example on one side, the example whose key is nearest that side moves over, so every
subcategory is both learnt and measured.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from services.routing.classify.normalise import fold

PACKAGE_DIR = Path(__file__).resolve().parent
CORPUS_DIR = PACKAGE_DIR / "corpus"
TAXONOMY_FILE = PACKAGE_DIR.parent / "directory" / "categories.yaml"
HELD_OUT_PERCENT = 20
MAX_TEXT_CHARS = 20_000


class CorpusError(ValueError):
    """The corpus or the taxonomy is not usable; the message says which file and line."""


@dataclass(frozen=True)
class Example:
    title: str
    body: str
    subcategory: str          # e.g. KESEHATAN.PUSKESMAS, or a category code with none
    region: str = ""
    source: str = "corpus"    # "corpus" or "correction"

    @property
    def text(self) -> str:
        """Title and body as written; the split key is taken from it."""
        return join_text(self.title, self.body)

    @property
    def category(self) -> str:
        return category_of(self.subcategory)

    @property
    def key(self) -> str:
        return hashlib.sha256(fold(self.text).encode()).hexdigest()


def join_text(title: str, body: str) -> str:
    """The title, then the body."""
    return f"{title.strip()}\n{body.strip()}"[:MAX_TEXT_CHARS]


def category_of(label: str) -> str:
    """KESEHATAN.PUSKESMAS -> KESEHATAN; a bare category code is its own category."""
    return label.partition(".")[0]


@dataclass(frozen=True)
class Taxonomy:
    names: dict[str, str]                 # category code -> name, in the file's order
    subcategories: dict[str, list[str]]   # category code -> its subcategory codes

    @classmethod
    def load(cls, path: Path = TAXONOMY_FILE) -> Taxonomy:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CorpusError(f"{path}: cannot read the taxonomy: {exc}") from None
        names: dict[str, str] = {}
        subs: dict[str, list[str]] = {}
        for entry in (data or {}).get("categories") or []:
            code = entry["code"]
            names[code] = entry["name"]
            subs[code] = [s["code"] for s in entry.get("subcategories") or []]
        if not names:
            raise CorpusError(f"{path}: no categories")
        return cls(names, subs)

    def known(self, label: str) -> bool:
        category = category_of(label)
        return category in self.names and (label == category or
                                           label in self.subcategories[category])


def read_corpus(directory: Path = CORPUS_DIR, taxonomy: Taxonomy | None = None
                ) -> list[Example]:
    """Every example of every <CATEGORY>.jsonl, files in name order, lines in file order."""
    taxonomy = taxonomy or Taxonomy.load()
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise CorpusError(f"{directory}: no *.jsonl corpus files")
    examples: list[Example] = []
    for path in files:
        category = path.stem
        if category not in taxonomy.names:
            raise CorpusError(f"{path}: {category} is not a category code of the taxonomy "
                              f"({', '.join(taxonomy.names)})")
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                examples.append(_example(path, number, line, category, taxonomy))
    return examples


def _example(path: Path, number: int, line: str, category: str, taxonomy: Taxonomy
             ) -> Example:
    where = f"{path.name}:{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise CorpusError(f"{where}: expected an object with title, body, subcategory")
    title, body, sub = row.get("title"), row.get("body"), row.get("subcategory")
    if not isinstance(title, str) or not isinstance(body, str) or not (title + body).strip():
        raise CorpusError(f"{where}: title and body must be text, not both empty")
    if not isinstance(sub, str) or category_of(sub) != category or not taxonomy.known(sub):
        raise CorpusError(f"{where}: subcategory {sub!r} is not one of {category}'s "
                          f"({', '.join(taxonomy.subcategories[category])})")
    return Example(title, body, sub, str(row.get("region") or ""))


def corpus_digest(directory: Path = CORPUS_DIR) -> str:
    """SHA-256 over the corpus files' names and bytes, in name order."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.jsonl")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _bucket(key: str) -> int:
    return int(key[:8], 16) % 100


def split(examples: Sequence[Example], held_out_percent: int = HELD_OUT_PERCENT
          ) -> tuple[list[Example], list[Example]]:
    """(train, held_out) of corpus examples as the module docstring describes."""
    train: list[Example] = []
    held: list[Example] = []
    for example in examples:
        (held if _bucket(example.key) < held_out_percent else train).append(example)
    by_label: dict[str, tuple[list[Example], list[Example]]] = defaultdict(lambda: ([], []))
    for example in train:
        by_label[example.subcategory][0].append(example)
    for example in held:
        by_label[example.subcategory][1].append(example)
    for label in sorted(by_label):
        in_train, in_held = by_label[label]
        if len(in_train) + len(in_held) < 2:
            continue
        if not in_held:
            # The training example nearest the held-out side: the smallest bucket, then key.
            moved = min(in_train, key=lambda e: (_bucket(e.key), e.key))
            train.remove(moved)
            held.append(moved)
        elif not in_train:
            moved = max(in_held, key=lambda e: (_bucket(e.key), e.key))
            held.remove(moved)
            train.append(moved)
    order = {id(e): i for i, e in enumerate(examples)}
    train.sort(key=lambda e: order[id(e)])
    held.sort(key=lambda e: order[id(e)])
    return train, held


def training_set(train: Iterable[Example], held_out: Iterable[Example],
                 corrections: Iterable[Example]) -> list[Example]:
    """The corpus's training part plus the corrections, minus any correction whose text is
    also held out (it would leak the answer into the measurement)."""
    held_keys = {e.key for e in held_out}
    return [*train, *(c for c in corrections if c.key not in held_keys)]
