"""Duplicates: a new report that says what an open ticket of the same regency and category
already says is linked to that ticket (its master) instead of reaching an agency a second
time; near matches wait for the national admin, who links or dismisses them. Never merged
silently: only near-identical text links on its own (docs/duplicates.md has the calibration).

Similarity is the cosine of TF-IDF vectors over character n-grams (3 to 5, within words) of
the normalised text (classify.normalise: slang, abbreviations and affixes undone), with the
report's numbers kept as tokens of their own; the IDF comes from the classifier's corpus, so
a score means the same whatever the candidates are. Two reports naming different numbers (a
school, an RT, a kilometre, an amount) are never linked on their own however alike the rest.

Which tickets are compared: open ones (not closed, not archived, not themselves linked) of
the same category in the same regency (the first two levels of the region code), submitted
within 30 days before the new one. To stay fast with thousands of those, a word-level cosine
(vectors kept per ticket in a bounded cache: a ticket's text never changes) shortlists the
closest, and only those are scored on character n-grams.

The pure part (normalising, scoring, judging) has no I/O; `Duplicates` reads the candidates
and stores the suggestions in the caller's transaction. Linking itself is a ticket command
(commands.Tickets.link_duplicate), the same for the system and the national admin.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from sqlalchemy.engine import Connection

from services.infra import db
from services.infra.db import as_utc
from services.routing import storage
from services.routing.classify.normalise import normalise
from services.routing.tickets.statemachine import ACTIVE

log = logging.getLogger(__name__)

# Calibrated in docs/duplicates.md: every near-identical rephrasing of the hand-made set
# scores at least 0.86, no different complaint about the same street above 0.71.
LINK_AT = 0.85
SUGGEST_AT = 0.60
# A one-line message ("pkh blm cair") says too little to be called the same report by its
# words alone: two reports of which one is shorter than this many words are only suggested.
MIN_LINK_WORDS = 12
WINDOW = timedelta(days=30)
MAX_CANDIDATES = 5_000     # the most recent open ones, should a regency ever have more
# Shortlisted candidates' character n-gram vectors are remembered up to this many bytes of
# arrays: a report of a few hundred characters takes about 4 KB, one of 20,000 characters
# a few hundred, so the budget, not a count, keeps routing within its memory.
SHORTLISTED_BYTES = 4_000_000
SHORTLIST = 20             # scored on character n-grams after the word-level pass
MAX_SUGGESTIONS = 5        # per new ticket, the most similar first
# Tickets whose prepared text is kept: 1.2 KB each (tracemalloc over 3,000 corpus reports),
# so 7 MB; the most recent six thousand, the candidates most new reports meet.
CACHE_SIZE = 6_000
CORPUS_DIR = Path(__file__).resolve().parents[1] / "classify" / "corpus"
CORPUS_SAMPLE = 4_000      # corpus texts the IDF is learnt from (evenly spread)

DUPLICATES = Counter("lapor_duplicates_total",
                     "New tickets linked to an open one (linked) or suggested to the national "
                     "admin as a possible duplicate (suggested)", ["outcome"])
for _outcome in ("linked", "suggested"):
    DUPLICATES.labels(_outcome)
CHECK_SECONDS = Histogram("lapor_duplicate_check_seconds",
                          "Time to compare a new ticket with its candidates",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))


# -- text -----------------------------------------------------------------------------------------
_NUMBER = re.compile(r"\d+(?:[.,]\d{3})*")


def regency_of(region_code: str) -> str:
    """The regency (kabupaten/kota) a region code lies in: 13.03.01.2001 -> 13.03. A code of
    a province alone stays as it is."""
    return ".".join(region_code.split(".")[:2])


def report_text(title: str, body: str, address: str = "") -> str:
    return "\n".join(part for part in (title, body, address) if part)


def numbers_in(text: str) -> frozenset[str]:
    """The numbers a text names, without thousands separators or leading zeros: "Rp 150.000"
    and "Rp150.000" are both 150000, "SMPN 02" is 2."""
    return frozenset(re.sub(r"[.,]", "", n).lstrip("0") or "0" for n in _NUMBER.findall(text))


def numbers_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """Each text names a number the other does not (SMPN 2 and SMPN 5, km 12 and km 14).
    One text naming a number the other leaves out ("3 bulan" and "tiga bulan") is no
    conflict."""
    return bool(a - b) and bool(b - a)


def word_count(prepared: str) -> int:
    """The words of a prepared text, its number tokens left out."""
    return sum(1 for w in prepared.split() if not (w[0] == "n" and w[1:].isdigit()))


def prepared_text(text: str) -> str:
    """What the vectors are made of: the normalised words, then each number as its own
    token (the normaliser folds numbers together; here they tell reports apart)."""
    numbers = " ".join(f"n{n}" for n in sorted(numbers_in(text)))
    return f"{normalise(text)} {numbers}".strip()


@dataclass(frozen=True)
class Prepared:
    """A report's text ready for comparing: normalised, its numbers, and its word vector
    (its words' hashes, sorted, and their weights, kept small for the cache)."""

    text: str
    numbers: frozenset[str]
    word_columns: np.ndarray
    word_weights: np.ndarray

    @property
    def words(self) -> int:
        return word_count(self.text)


# -- similarity ------------------------------------------------------------------------------------
def word_keys(text: str) -> np.ndarray:
    """The words of a prepared text as 64-bit keys (Python's hash, fixed for the process:
    nothing hashed is stored)."""
    return np.fromiter(map(hash, text.split()), dtype=np.int64)


def char_keys(text: str, low: int = 3, high: int = 5) -> np.ndarray:
    """The character n-grams of a prepared text as 64-bit keys, one per occurrence: the
    n-grams within space-padded words that scikit-learn's analyzer="char_wb" makes (a
    padded word no longer than n counts once, whole, and not again for longer n). An
    n-gram of ASCII characters, nearly all of them, has its characters and length packed
    into its key exactly; any other is hashed, into keys no packed one can take."""
    return _char_keys(text.split(), low, high)[0]


def _char_keys(words: list[str], low: int = 3,
               high: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """char_keys of these words, and the number of the word each key comes from."""
    if not words:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    padded = "".join(f" {w} " for w in words)
    codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    word = np.repeat(np.arange(len(words)), [len(w) + 2 for w in words])
    wide = codes >= 128
    keys, of_word = [], []
    for n in range(low, high + 1):
        m = len(codes) - n + 1
        if m <= 0:
            break
        inside = word[:m] == word[n - 1:]   # the window lies within one padded word
        of_word.append(word[:m][inside])
        key = np.full(m, n << 35, dtype=np.int64)
        for k in range(n):
            key |= codes[k:k + m] << (7 * k)
        if wide.any():
            other = np.lib.stride_tricks.sliding_window_view(wide, n).any(axis=1)
            for i in np.flatnonzero(inside & other):
                key[i] = (hash(padded[i:i + n]) & (2**61 - 1)) | 2**61
        keys.append(key[inside])
    return np.concatenate(keys), np.concatenate(of_word)


@dataclass(frozen=True)
class Vector:
    """A sparse TF-IDF vector: its terms' hashes (sorted, unique) and their weights (unit
    length together)."""

    keys: np.ndarray
    weights: np.ndarray

    def dot(self, other: Vector) -> float:
        _, mine, theirs = np.intersect1d(self.keys, other.keys, assume_unique=True,
                                         return_indices=True)
        return float(self.weights[mine] @ other.weights[theirs])


class _Idf:
    """Smoothed IDF, ln((1 + n) / (1 + df)) + 1 as scikit-learn's TfidfTransformer has it,
    by term key: sorted keys of the reference terms and their IDF in two arrays (a few
    MB where a dict of the strings would take tens). A term the reference never saw (a
    street's name) gets the highest IDF. Without reference texts every term weighs 1."""

    def __init__(self, documents: Iterable[np.ndarray]):
        n, keys, df = 0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        chunk: list[np.ndarray] = []
        for terms in itertools.chain(documents, [None]):
            if terms is not None:
                n += 1
                chunk.append(np.unique(terms))
            # Counted a few hundred documents at a time: all of a corpus's terms at once
            # would hold 20-30 MB more while routing starts.
            if chunk and (terms is None or len(chunk) == 256):
                merged, counts = np.unique(np.concatenate([keys, *chunk]), return_inverse=True)
                df = np.bincount(counts, weights=np.concatenate(
                    [df, np.ones(sum(map(len, chunk)), dtype=np.int64)])).astype(np.int64)
                keys, chunk = merged, []
        self.keys = keys
        self.idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        self.unseen = math.log(1.0 + n) + 1.0 if n else 1.0

    def vector(self, terms: np.ndarray) -> Vector:
        """Sublinear TF (1 + ln count) times IDF of a text's term keys (one per occurrence),
        scaled to unit length."""
        keys, counts = np.unique(terms, return_counts=True)
        weights = self.weights(keys, counts)
        norm = math.sqrt(float(weights @ weights))
        return Vector(keys, weights / norm if norm else weights)

    def weights(self, keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Sublinear TF times IDF of terms (keys) counted `counts` times in their text."""
        weights = 1.0 + np.log(counts)
        if len(self.keys):
            at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            weights *= np.where(self.keys[at] == keys, self.idf[at], self.unseen)
        return weights


class Similarity:
    """TF-IDF cosine between reports, IDF learnt once from reference texts (the classifier's
    corpus). Terms are kept by their hash (Python's, fixed for the process: nothing hashed
    is stored), so words and n-grams the corpus never saw count too, with the highest IDF.

    The arithmetic is scikit-learn's HashingVectorizer + TfidfTransformer(sublinear_tf=True)
    + cosine, without its 2²⁰-column tables and with 64-bit hashes instead of 20-bit ones
    (fewer collisions); tests/unit/routing/test_duplicates_parity.py holds the decisions on
    the hand-made pairs equal to that pipeline's."""

    def __init__(self, reference: Iterable[str] = ()):
        texts = [prepared_text(t) for t in reference]
        # Without reference texts every feature weighs the same (plain TF cosine): scores are
        # then higher than calibrated, so say so.
        if not texts:
            log.warning("no reference texts for duplicate detection: IDF not used, "
                        "similarities are not the calibrated ones")
        self.chars = _Idf(char_keys(t) for t in texts)
        self.words = _Idf(word_keys(t) for t in texts)
        # Shortlisted candidates' character n-gram vectors, by their prepared text: the open
        # tickets of a busy regency are shortlisted again for report after report.
        # A very long report's vector (an eighth of the budget) is computed each time.
        self._shortlisted = _Lru(SHORTLISTED_BYTES, _nbytes, SHORTLISTED_BYTES // 8)

    def prepare(self, text: str) -> Prepared:
        return self.prepare_many([text])[0]

    def prepare_many(self, texts: Sequence[str]) -> list[Prepared]:
        out = []
        for text in texts:
            prepared = prepared_text(text)
            words = self.words.vector(word_keys(prepared))
            out.append(Prepared(prepared, numbers_in(text), words.keys,
                                words.weights.astype(np.float32)))
        return out

    def char_vector(self, prepared: str) -> Vector:
        """The character n-gram vector of a prepared text (prepared_text)."""
        return self.chars.vector(char_keys(prepared))

    def similarity(self, a: str, b: str) -> float:
        """The score of two texts (0..1), as detection computes it."""
        return self.char_vector(prepared_text(a)).dot(self.char_vector(prepared_text(b)))

    def matrix(self, prepared: Sequence[str]) -> np.ndarray:
        """Every pair's score among prepared texts (prepared_text), as a square array."""
        vectors = [self.char_vector(t) for t in prepared]
        if not vectors:
            return np.zeros((0, 0))
        # Terms numbered over these texts only, in blocks of columns: a dense texts × terms
        # array of a whole corpus file would not fit.
        keys = np.unique(np.concatenate([v.keys for v in vectors]))
        out = np.zeros((len(vectors), len(vectors)))
        block = max(1, 4_000_000 // len(vectors))
        for start in range(0, len(keys), block):
            dense = np.zeros((len(vectors), min(block, len(keys) - start)))
            for row, v in enumerate(vectors):
                columns = np.searchsorted(keys, v.keys) - start
                inside = (columns >= 0) & (columns < dense.shape[1])
                dense[row, columns[inside]] = v.weights[inside]
            out += dense @ dense.T
        return out

    def scores(self, new: Prepared, candidates: Sequence[Prepared],
               shortlist: int = SHORTLIST) -> list[float]:
        """The score of each candidate against `new`: the character n-gram cosine for the
        `shortlist` closest by words, 0 for the rest (far below any threshold)."""
        if not candidates:
            return []
        # Every candidate's word terms in one array, looked up among the new report's.
        lengths = np.fromiter((len(c.word_columns) for c in candidates), dtype=np.int64,
                              count=len(candidates))
        keys = np.concatenate([c.word_columns for c in candidates])
        weights = np.concatenate([c.word_weights for c in candidates]).astype(np.float64)
        words = np.zeros(len(candidates))
        if len(new.word_columns) and len(keys):
            at = np.minimum(np.searchsorted(new.word_columns, keys), len(new.word_columns) - 1)
            hit = new.word_columns[at] == keys
            rows = np.repeat(np.arange(len(candidates)), lengths)
            words = np.bincount(rows[hit], weights=weights[hit]
                                * new.word_weights[at[hit]].astype(np.float64),
                                minlength=len(candidates))
        closest = np.argsort(-words, kind="stable")[:shortlist]
        closest = [int(i) for i in closest if words[i] > 0]
        out = [0.0] * len(candidates)
        if closest:
            mine = self.char_vector(new.text)
            shortlisted = self.char_scores(mine, [candidates[i].text for i in closest])
            for i, score in zip(closest, shortlisted, strict=True):
                out[i] = min(1.0, float(score))
        return out

    def char_scores(self, mine: Vector, prepared: Sequence[str]) -> np.ndarray:
        """`mine`'s character n-gram cosine with each prepared text: char_vector(text).dot
        for all of them in one pass over their n-grams, which took a third of screening
        when done text by text (docs/performance.md). Each text's vector is remembered
        (up to SHORTLISTED_BYTES of them), and the sums run in the same order either way, so a
        remembered text scores exactly as a new one."""
        vectors = self._char_vectors(prepared)
        keys = np.concatenate([k for k, _ in vectors]) if vectors else np.zeros(0, np.int64)
        if not len(mine.keys) or not len(keys):
            return np.zeros(len(prepared))
        weights = np.concatenate([w for _, w in vectors])
        text_of = np.repeat(np.arange(len(vectors)), [len(k) for k, _ in vectors])
        at = np.minimum(np.searchsorted(mine.keys, keys), len(mine.keys) - 1)
        hit = mine.keys[at] == keys
        return np.bincount(text_of[hit], weights=weights[hit] * mine.weights[at[hit]],
                           minlength=len(prepared))

    def _char_vectors(self, prepared: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each text's distinct n-gram keys (ascending) and their unit-length weights: the
        remembered ones as they are, the others in one pass and then remembered."""
        found = self._shortlisted.get_many(prepared)
        missing = [text for text in dict.fromkeys(prepared) if text not in found]
        if missing:
            made = self._char_vectors_of(missing)
            self._shortlisted.put_many(made)
            found.update(made)
        return [found[text] for text in prepared]

    def _char_vectors_of(self, prepared: Sequence[str]) -> dict[str, tuple[np.ndarray,
                                                                           np.ndarray]]:
        words = [text.split() for text in prepared]
        keys, of_word = _char_keys([w for text in words for w in text])
        text_of = np.repeat(np.arange(len(words)), [len(w) for w in words])[of_word]
        if not len(keys):
            nothing = (keys, np.zeros(0))
            return dict.fromkeys(prepared, nothing)
        # Each text's distinct terms and their counts: sorted by text, then by key.
        order = np.lexsort((keys, text_of))
        keys, text_of = keys[order], text_of[order]
        starts = np.flatnonzero(np.concatenate((
            [True], (keys[1:] != keys[:-1]) | (text_of[1:] != text_of[:-1]))))
        counts = np.diff(np.append(starts, len(keys)))
        keys, text_of = keys[starts], text_of[starts]
        weights = self.chars.weights(keys, counts)
        norms = np.sqrt(np.bincount(text_of, weights=weights * weights,
                                    minlength=len(prepared)))
        weights = weights / np.where(norms > 0, norms, 1.0)[text_of]
        bounds = np.searchsorted(text_of, np.arange(len(prepared) + 1))
        # Copies: a slice would keep its whole batch alive while any one text is remembered.
        return {text: (keys[bounds[i]:bounds[i + 1]].copy(),
                       weights[bounds[i]:bounds[i + 1]].copy())
                for i, text in enumerate(prepared)}


def _nbytes(vector: tuple[np.ndarray, np.ndarray]) -> int:
    return vector[0].nbytes + vector[1].nbytes


def corpus_texts(directory: Path = CORPUS_DIR, limit: int = CORPUS_SAMPLE) -> list[str]:
    """Title and body of the classifier's corpus examples (every JSON Lines file), at most
    `limit`, spread evenly over the files' lines so every category has its say."""
    texts = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                example = json.loads(line)
            except ValueError:
                continue  # the classifier's loader reports bad lines; here they just count out
            if isinstance(example, dict):
                texts.append(report_text(str(example.get("title") or ""),
                                         str(example.get("body") or "")))
    if len(texts) > limit:
        step = len(texts) / limit
        texts = [texts[int(i * step)] for i in range(limit)]
    return texts


@cache
def default_similarity() -> Similarity:
    """The similarity over the shipped corpus, built once per process (about a second)."""
    started = time.monotonic()
    similarity = Similarity(corpus_texts())
    log.info("duplicate detection ready in %.1f s", time.monotonic() - started)
    return similarity


# -- judging ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    tracking_id: str
    similarity: float
    submitted_at: datetime
    numbers_conflict: bool = False
    too_short: bool = False       # one of the two is shorter than MIN_LINK_WORDS


@dataclass(frozen=True)
class Verdict:
    """What to do with a new ticket: link it to `master`, or suggest `suggestions` (most
    similar first) to the national admin, or neither."""

    master: Match | None = None
    suggestions: tuple[Match, ...] = ()

    @property
    def held(self) -> bool:
        """The ticket waits for the national admin instead of going to an agency."""
        return self.master is not None or bool(self.suggestions)


def judge(matches: Iterable[Match], link_at: float = LINK_AT,
          suggest_at: float = SUGGEST_AT) -> Verdict:
    """The master is the earliest near-identical open ticket (numbers not in conflict, both
    long enough to tell); the rest at or above `suggest_at` are suggestions, unless the
    ticket is linked."""
    matches = list(matches)
    linkable = [m for m in matches if m.similarity >= link_at and not m.numbers_conflict
                and not m.too_short]
    if linkable:
        return Verdict(master=min(linkable, key=lambda m: (m.submitted_at, m.tracking_id)))
    near = sorted((m for m in matches if m.similarity >= suggest_at),
                  key=lambda m: (-m.similarity, m.tracking_id))
    return Verdict(suggestions=tuple(near[:MAX_SUGGESTIONS]))


# -- in routing's database -------------------------------------------------------------------------
@cache
def _candidates_query(with_districts: bool, sqlite: bool = False) -> db.Statement:
    """The candidates' query, built once: SQLAlchemy walks a newly built statement to find
    its cached compilation, which cost as much as running it.

    With districts (a report placed in a district or village of the regency too), the
    regency's own code or any under it, as one range of the index. With an OR of the two,
    SQLite read every open ticket of the category in the country (its LIKE ignores case,
    so no index serves it) and PostgreSQL made two index scans at best (one filtering the
    region when it had no statistics). On PostgreSQL a LIKE of the regency's code as a
    prefix, which the index (in pattern order) reads as a range, the exact test beside it;
    on SQLite the range from the regency's code up to it with "/" (the character after
    ".") at its end, compared byte by byte."""
    t = storage.tickets
    where_region = t.c.region_code == sa.bindparam("regency")
    if with_districts and sqlite:
        where_region = sa.and_(t.c.region_code >= sa.bindparam("regency"),
                               t.c.region_code < sa.bindparam("beyond"))
    elif with_districts:
        where_region = sa.and_(t.c.region_code.like(sa.bindparam("prefix")), sa.or_(
            where_region, t.c.region_code.like(sa.bindparam("within"))))
    return db.Statement(
        sa.select(t.c.tracking_id, t.c.submitted_at)
        .where(t.c.category == sa.bindparam("category"), where_region,
               t.c.state.in_([s.value for s in ACTIVE]), t.c.duplicate_of == "",
               t.c.submitted_at >= sa.bindparam("since"),
               t.c.tracking_id != sa.bindparam("tracking_id"))
        .order_by(t.c.submitted_at.desc(), t.c.tracking_id)
        .limit(MAX_CANDIDATES))


class _Lru:
    """Values by key, least recently used out first once their weights (each 1 unless
    `weigh` says otherwise) pass `budget`; a value heavier than `largest` is not kept.
    Shared by threads."""

    def __init__(self, budget: int, weigh: Callable[[object], int] = lambda _value: 1,
                 largest: int | None = None):
        self.budget, self.weigh, self.largest = budget, weigh, largest
        self.weight = 0
        self._items: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict:
        found = {}
        with self._lock:
            for key in keys:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    found[key] = hit
        return found

    def put_many(self, items: dict) -> None:
        with self._lock:
            for key, value in items.items():
                weight = self.weigh(value)
                if self.largest is not None and weight > self.largest:
                    continue
                replaced = self._items.pop(key, None)
                if replaced is not None:
                    self.weight -= self.weigh(replaced)
                self._items[key] = value
                self.weight += weight
            while self.weight > self.budget:
                _, dropped = self._items.popitem(last=False)
                self.weight -= self.weigh(dropped)


@dataclass(frozen=True)
class Suggestion:
    """A suggested pair as a ticket shows it: the other ticket, how alike, what was decided
    ("" while pending, linked, dismissed)."""

    tracking_id: str
    similarity: float
    resolution: str


class Duplicates:
    """Finds a new ticket's duplicates among the open tickets and keeps the suggestions."""

    def __init__(self, similarity: Similarity | None = None, *, link_at: float = LINK_AT,
                 suggest_at: float = SUGGEST_AT, window: timedelta = WINDOW,
                 cache_size: int = CACHE_SIZE):
        if not 0 < suggest_at <= link_at <= 1:
            raise ValueError("duplicate thresholds: 0 < suggest_at <= link_at <= 1")
        self._similarity = similarity
        self.link_at, self.suggest_at, self.window = link_at, suggest_at, window
        self._cache = _Lru(cache_size)

    @property
    def similarity(self) -> Similarity:
        if self._similarity is None:
            self._similarity = default_similarity()
        return self._similarity

    def find(self, conn: Connection, tracking_id: str, *, title: str, body: str,
             address: str, region_code: str, category: str,
             submitted_at: datetime) -> Verdict:
        """The verdict for a new report against the open tickets it may repeat."""
        started = time.monotonic()
        # Kept for when this ticket is a candidate itself: its text never changes.
        new = self.similarity.prepare(report_text(title, body, address))
        self._cache.put_many({tracking_id: new})
        rows = self.candidates(conn, tracking_id, region_code, category, submitted_at)
        if not rows:
            return Verdict()
        prepared = self._prepared(conn, [r.tracking_id for r in rows])
        scores = self.similarity.scores(new, [prepared[r.tracking_id] for r in rows])
        verdict = judge((Match(r.tracking_id, round(s, 4), as_utc(r.submitted_at),
                               numbers_conflict(new.numbers, prepared[r.tracking_id].numbers),
                               min(new.words, prepared[r.tracking_id].words) < MIN_LINK_WORDS)
                         for r, s in zip(rows, scores, strict=True) if s >= self.suggest_at),
                        self.link_at, self.suggest_at)
        CHECK_SECONDS.observe(time.monotonic() - started)
        return verdict

    def candidates(self, conn: Connection, tracking_id: str, region_code: str,
                   category: str, submitted_at: datetime) -> list:
        """Open tickets of the category in the regency, submitted within the window before
        `submitted_at` (most recent first, at most MAX_CANDIDATES)."""
        regency = regency_of(region_code)
        return _candidates_query("." in regency, not db.is_postgres(conn)).all(conn, {
            "category": category, "regency": regency, "within": f"{regency}.%",
            "prefix": f"{regency}%", "beyond": f"{regency}/",
            "since": as_utc(submitted_at) - self.window, "tracking_id": tracking_id})

    def _prepared(self, conn: Connection, tracking_ids: list[str]) -> dict[str, Prepared]:
        found = self._cache.get_many(tracking_ids)
        missing = [tid for tid in tracking_ids if tid not in found]
        t = storage.tickets
        for start in range(0, len(missing), 500):
            rows = conn.execute(sa.select(t.c.tracking_id, t.c.title, t.c.body, t.c.address)
                                .where(t.c.tracking_id.in_(missing[start:start + 500]))).all()
            ready = self.similarity.prepare_many([report_text(r.title, r.body, r.address)
                                                  for r in rows])
            fresh = {row.tracking_id: p for row, p in zip(rows, ready, strict=True)}
            self._cache.put_many(fresh)
            found.update(fresh)
        return found

    @staticmethod
    def suggest(conn: Connection, tracking_id: str, matches: Iterable[Match],
                now: datetime) -> int:
        """Stores the suggestions of a new ticket (once: a redelivered event adds none)."""
        d = storage.duplicate_suggestions
        added = 0
        for match in matches:
            if conn.execute(sa.select(d.c.tracking_id).where(
                    d.c.tracking_id == tracking_id, d.c.candidate == match.tracking_id)).first():
                continue
            conn.execute(d.insert().values(tracking_id=tracking_id,
                                           candidate=match.tracking_id,
                                           similarity=match.similarity, created_at=now))
            added += 1
        if added:
            DUPLICATES.labels("suggested").inc()
        return added


def hold_for_admin(decision, verdict: Verdict, triage):
    """The routing decision for a ticket that may repeat an open one: the national admin's
    triage queue instead of an agency (the agency routing chose stays the suggested one), and
    why, in the explanation. `decision` is rules.Decision."""
    if not verdict.held:
        return decision
    if verdict.master is not None:
        why = (f"hampir sama dengan laporan {verdict.master.tracking_id} yang masih terbuka "
               f"(kemiripan {verdict.master.similarity:.2f}): digabungkan")
    else:
        why = "mirip laporan terbuka " + ", ".join(
            f"{m.tracking_id} ({m.similarity:.2f})" for m in verdict.suggestions) + \
            ": menunggu keputusan admin nasional apakah duplikat"
    explanation = "; ".join(filter(None, [decision.explanation, why]))
    if not decision.auto_dispatch:
        return replace(decision, explanation=explanation)
    return replace(decision, auto_dispatch=False, agency=triage, explanation=explanation,
                   suggested=decision.suggested or decision.agency)


def pair_similarity(conn: Connection, a: str, b: str,
                    similarity: Similarity | None = None) -> float:
    """The score of two tickets: their suggestion's when there is one, else computed now."""
    stored = stored_similarity(conn, a, b)
    if stored is not None:
        return stored
    t = storage.tickets
    texts = {r.tracking_id: report_text(r.title, r.body, r.address) for r in conn.execute(
        sa.select(t.c.tracking_id, t.c.title, t.c.body, t.c.address)
        .where(t.c.tracking_id.in_([a, b])))}
    if len(texts) != 2:
        return 0.0
    return round((similarity or default_similarity()).similarity(texts[a], texts[b]), 4)


def stored_similarity(conn: Connection, a: str, b: str) -> float | None:
    d = storage.duplicate_suggestions
    return conn.execute(sa.select(d.c.similarity).where(sa.or_(
        sa.and_(d.c.tracking_id == a, d.c.candidate == b),
        sa.and_(d.c.tracking_id == b, d.c.candidate == a))).limit(1)).scalar()


def suggestions_of(conn: Connection, tracking_id: str) -> list[Suggestion]:
    """The pairs a ticket is part of, on either side, most similar first. A pending one whose
    other ticket has closed meanwhile is left out: nothing is left to decide."""
    d, t = storage.duplicate_suggestions, storage.tickets
    rows = conn.execute(sa.select(d).where(sa.or_(d.c.tracking_id == tracking_id,
                                                  d.c.candidate == tracking_id))).all()
    others = {r.candidate if r.tracking_id == tracking_id else r.tracking_id: r for r in rows}
    open_ = set(conn.execute(sa.select(t.c.tracking_id).where(
        t.c.tracking_id.in_([tracking_id, *others]),
        t.c.state.in_([s.value for s in ACTIVE]))).scalars()) if others else set()
    shown = [Suggestion(other, float(r.similarity), r.resolution)
             for other, r in others.items()
             if r.resolution or (other in open_ and tracking_id in open_)]
    return sorted(shown, key=lambda s: (-s.similarity, s.tracking_id))


# -- calibration and speed (python -m services.routing.tickets.duplicates) -----------------------
PAIRS_FILE = Path(__file__).with_name("duplicate_pairs.jsonl")
LABELS = {"same": "near-identical: the same report again, forwarded or lightly edited",
          "same_event": "the same problem told independently by another reporter",
          "different": "the same place (or the same words), another problem"}


def read_pairs(path: Path = PAIRS_FILE) -> list[dict]:
    """The hand-made calibration pairs: {"label", "category", "note", "a", "b"}, a and b
    each {"title", "body"}."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def pair_outcome(similarity: Similarity, pair: dict, link_at: float = LINK_AT,
                 suggest_at: float = SUGGEST_AT) -> tuple[float, str]:
    """(score, "linked" | "suggested" | "apart") for a calibration pair."""
    a = report_text(pair["a"]["title"], pair["a"]["body"])
    b = report_text(pair["b"]["title"], pair["b"]["body"])
    score = similarity.similarity(a, b)
    conflict = numbers_conflict(numbers_in(a), numbers_in(b))
    short = min(word_count(prepared_text(a)), word_count(prepared_text(b))) < MIN_LINK_WORDS
    verdict = judge([Match("b", score, datetime.min, conflict, short)], link_at, suggest_at)
    return score, ("linked" if verdict.master else "suggested" if verdict.suggestions
                   else "apart")


def calibrate(similarity: Similarity, pairs: list[dict]) -> str:
    """The table docs/duplicates.md shows: each pair's score and outcome, per label."""
    lines = [f"thresholds: link at {LINK_AT:.2f} (numbers agreeing, both of "
             f"{MIN_LINK_WORDS} words or more), suggest at {SUGGEST_AT:.2f}", ""]
    for label, meaning in LABELS.items():
        rows = sorted(((*pair_outcome(similarity, p), p["note"] or p["b"]["title"])
                       for p in pairs if p["label"] == label), reverse=True)
        if not rows:
            continue
        counts = {o: sum(1 for r in rows if r[1] == o) for o in ("linked", "suggested", "apart")}
        lines.append(f"{label} ({meaning}): {len(rows)} pairs, min {rows[-1][0]:.2f}, "
                     f"median {float(np.median([r[0] for r in rows])):.2f}, "
                     f"max {rows[0][0]:.2f}; " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        lines += [f"  {score:.2f}  {outcome:9s}  {note}" for score, outcome, note in rows]
        lines.append("")
    return "\n".join(lines)


def background(similarity: Similarity) -> str:
    """How often two different corpus reports of one category (all regions together, so
    more than any regency's open tickets in a month) reach each threshold, and how many of
    them detection would link: the false-suggestion and false-link rates per pair."""
    scores, linked = [], 0
    for path in sorted(CORPUS_DIR.glob("*.jsonl")):
        texts = [report_text(str(e.get("title") or ""), str(e.get("body") or ""))
                 for e in map(json.loads, filter(str.strip, path.read_text(
                     encoding="utf-8").splitlines()))]
        prepared = [prepared_text(t) for t in texts]
        matrix = similarity.matrix(prepared)
        upper = np.triu_indices(len(texts), 1)
        scores.append(matrix[upper])
        for i, j in zip(*upper, strict=True):
            if matrix[i, j] >= LINK_AT and not numbers_conflict(
                    numbers_in(texts[i]), numbers_in(texts[j])) and min(
                    word_count(prepared[i]), word_count(prepared[j])) >= MIN_LINK_WORDS:
                linked += 1
    every = np.concatenate(scores) if scores else np.zeros(0)
    if not every.size:
        return "no corpus"
    lines = [f"corpus pairs of one category at or above {t:.2f}: "
             f"{int((every >= t).sum())} of {every.size} ({(every >= t).mean():.1e})"
             for t in (0.5, SUGGEST_AT, 0.7, LINK_AT)]
    return "\n".join([*lines, f"corpus pairs detection would link: {linked}"])


def bench(open_tickets: int, checks: int = 50) -> str:
    """Seconds per check with `open_tickets` open tickets of one category in one regency,
    in a throwaway SQLite database: the first check (corpus IDF learnt, cache filled) and
    then p50/p99 of the next ones."""
    import random
    import tempfile

    from services.infra import db

    rng = random.Random(7)
    texts = corpus_texts() or ["Jalan rusak berlubang di depan pasar"]
    places = ["Muaro", "Sijunjung", "Kamang", "Tanjung Gadang", "Kupitan", "Lubuk Tarok",
              "Sumpur Kudus", "Koto VII", "IV Nagari", "Padang Sibusuk"]
    now = datetime.now().astimezone()
    with tempfile.TemporaryDirectory() as directory:
        engine = db.make_engine(f"sqlite:///{directory}/bench.db")
        storage.metadata.create_all(engine)
        with engine.begin() as conn:
            rows = []
            for i in range(open_tickets):
                text = rng.choice(texts)
                rows.append(dict(
                    ticket_id=f"t{i}", tracking_id=f"LPR-B{i:08d}", state="DISPATCHED",
                    agency_code="PUPR-13.03", category="PUPR", kind="PENGADUAN",
                    title=text.split("\n")[0][:80], body=f"{text} Nagari {rng.choice(places)} "
                    f"RT {rng.randint(1, 20)}.", region_code=f"13.03.{rng.randint(1, 8):02d}",
                    anonymous=False, confidential=False,
                    submitted_at=now - timedelta(days=rng.uniform(0, 29)),
                    created_at=now, updated_at=now))
            conn.execute(storage.tickets.insert(), rows)
        duplicates = Duplicates()
        timings = []
        for i in range(checks + 1):
            text = rng.choice(texts)
            with engine.connect() as conn:
                started = time.perf_counter()
                duplicates.find(conn, f"LPR-N{i:08d}", title=text[:60], body=text,
                                address="", region_code="13.03.01", category="PUPR",
                                submitted_at=now)
                timings.append(time.perf_counter() - started)
        engine.dispose()
    first, rest = timings[0], sorted(timings[1:])
    return (f"{open_tickets} open tickets of one category in one regency: first check "
            f"{first * 1000:.0f} ms (learns the corpus IDF, prepares every candidate), then "
            f"p50 {rest[len(rest) // 2] * 1000:.1f} ms, p99 "
            f"{rest[min(len(rest) - 1, int(len(rest) * 0.99))] * 1000:.1f} ms per check")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m services.routing.tickets.duplicates",
                                     description="calibration and speed of duplicate "
                                                 "detection (docs/duplicates.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("calibrate", help="score the hand-made pairs and the corpus background")
    speed = sub.add_parser("bench", help="time a check against many open tickets")
    speed.add_argument("--tickets", type=int, default=3000)
    args = parser.parse_args(argv)
    if args.command == "calibrate":
        similarity = default_similarity()
        print(calibrate(similarity, read_pairs()))
        print(background(similarity))
    else:
        print(bench(args.tickets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
