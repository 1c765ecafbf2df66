"""The learned classifier: a linear model over word n-grams (1-2, of the stemmed text) and
character n-grams (3-5 within words, of the unstemmed standard text), trained to predict a
report's subcategory. A category's probability is the sum of its subcategories'.

Training uses scikit-learn: two TfidfVectorizers (sublinear tf) in a FeatureUnion and a
LinearSVC whose scores become probabilities by temperature scaling (CalibratedClassifierCV,
one temperature fitted on 3-fold cross-validated scores of the training part: the ranking
stays the SVM's and the probabilities sum to one). Logistic regression over the same
features was measured too; docs/classifier.md has both and why this one.

What routing serves is the fitted model's arithmetic only (vocabularies, idf weights,
coefficients, the temperature) in a `LinearModel`, computed here with numpy and saved as
model.npz (arrays) and model.json (vocabularies, labels, the temperature), neither a pickle:
a prediction takes well under a millisecond and loading it imports neither scikit-learn nor
SciPy. Its features are computed in float32 and summed in the order scikit-learn uses, so
its probabilities are scikit-learn's predict_proba to 1e-9 (tests/integration/
test_classifier_runtime.py, over the whole corpus). The fitted scikit-learn pipeline is saved
beside it (pipeline.joblib) for tools that study the model; routing never loads it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import platform
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from services.routing.classify import normalise as normaliser
from services.routing.classify.corpus import MAX_TEXT_CHARS, Example, category_of

ARRAYS_FILE = "model.npz"
MODEL_FILE = "model.json"
PIPELINE_FILE = "pipeline.joblib"     # the scikit-learn pipeline, for tools only
CARD_FILE = "card.json"
OLD_MODEL_FILE = "model.joblib"       # format 2 and before: a pickle routing loaded
# Bump when a change here alters what a model file holds or how features are computed:
# models of another format are then rebuilt (the normaliser's code is hashed instead).
FORMAT = 4

PARAMS: dict = {
    "format": FORMAT,
    # The title is read twice: it says the most in the fewest words (cross-validation on the
    # training part: +0.4 points of accuracy over reading it once).
    "title_repeats": 2,
    "words": {"ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True},
    "chars": {"ngram_range": [3, 5], "min_df": 2, "sublinear_tf": True},
    # C by cross-validation on the training part (title read twice): 0.25 91.2%, 0.5 91.8%,
    # 1 91.9%, 2 92.1%, 4 92.0% category accuracy.
    "classifier": {"kind": "linear_svc", "C": 2.0, "calibration": "temperature",
                   "calibration_folds": 3},
}

_SOURCES = (Path(normaliser.__file__), Path(normaliser.__file__).with_name("slang.py"))


class ModelError(RuntimeError):
    """A model cannot be built or loaded; the message says what to run or fix."""


def library_versions() -> dict[str, str]:
    """What a model's numbers depend on besides its inputs (read without importing)."""
    versions = {"python": ".".join(platform.python_version_tuple()[:2])}
    for name in ("scikit-learn", "numpy", "scipy", "joblib"):
        versions[name] = metadata.version(name)
    return versions


def code_digest() -> str:
    """The normaliser's code: a model is only valid with the code that turned its training
    text into words."""
    digest = hashlib.sha256()
    for path in _SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def model_version(corpus_digest: str, corrections: Sequence[Example], params: dict) -> str:
    """A short hash of everything that decides the model: corpus, corrections, parameters,
    library versions and the code that makes features. Same inputs, same version."""
    digest = hashlib.sha256()
    digest.update(corpus_digest.encode())
    for example in corrections:
        digest.update(json.dumps([example.title, example.body, example.subcategory],
                                 ensure_ascii=False).encode() + b"\n")
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(json.dumps(library_versions(), sort_keys=True).encode())
    digest.update(code_digest().encode())
    return digest.hexdigest()[:12]


def model_input(title: str, body: str, title_repeats: int = 1) -> str:
    """What the model reads of a report: the title (`title_repeats` times), then the body."""
    title = title.strip()
    return "\n".join([title] * title_repeats + [body.strip()])[:MAX_TEXT_CHARS]


# -- training (scikit-learn, imported only here) -------------------------------------------

def make_pipeline(params: dict = PARAMS):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.svm import LinearSVC

    words, chars, clf = params["words"], params["chars"], params["classifier"]
    if clf["kind"] != "linear_svc":
        raise ModelError(f"unknown classifier kind {clf['kind']!r}")
    features = FeatureUnion([
        ("words", TfidfVectorizer(
            preprocessor=normaliser.normalise, token_pattern=r"\S+", lowercase=False,
            ngram_range=tuple(words["ngram_range"]), min_df=words["min_df"],
            sublinear_tf=words["sublinear_tf"], dtype=np.float32)),
        ("chars", TfidfVectorizer(
            preprocessor=normaliser.surface, analyzer="char_wb", lowercase=False,
            ngram_range=tuple(chars["ngram_range"]), min_df=chars["min_df"],
            sublinear_tf=chars["sublinear_tf"], dtype=np.float32)),
    ])
    classifier = CalibratedClassifierCV(LinearSVC(C=clf["C"], random_state=0),
                                        method=clf["calibration"],
                                        cv=clf["calibration_folds"], ensemble=False)
    return Pipeline([("features", features), ("classifier", classifier)])


def fit_pipeline(examples: Sequence[Example], params: dict = PARAMS):
    """The fitted scikit-learn pipeline (deterministic for the same examples)."""
    labels = [e.subcategory for e in examples]
    counts = Counter(labels)
    folds = params["classifier"]["calibration_folds"]
    if len(counts) < 3:
        raise ModelError("the training set needs at least three labels")
    # Cross-validated calibration needs each label in every fold; a rarer label's examples
    # are repeated, which weighs it only as much as the folds require.
    padded = list(examples)
    for label, count in sorted(counts.items()):
        if count < folds:
            first = next(e for e in examples if e.subcategory == label)
            padded.extend([first] * (folds - count))
    pipeline = make_pipeline(params)
    repeats = params["title_repeats"]
    pipeline.fit([model_input(e.title, e.body, repeats) for e in padded],
                 [e.subcategory for e in padded])
    # The SVM's coefficients rounded to float32 once fitted: routing holds them in half the
    # memory (16 MB instead of 33), and the pipeline computes with the same numbers, so the
    # two still agree to 1e-9. On the corpus no probability moves by more than 3e-7.
    svm = pipeline.named_steps["classifier"].calibrated_classifiers_[0].estimator
    svm.coef_ = svm.coef_.astype(np.float32).astype(np.float64)
    svm.intercept_ = svm.intercept_.astype(np.float32).astype(np.float64)
    return pipeline


# -- serving (numpy only) ------------------------------------------------------------------

def _ngrams(tokens: list[str], low: int, high: int) -> list[str]:
    """Word n-grams exactly as TfidfVectorizer(analyzer="word") makes them."""
    grams = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        grams.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return grams


def _char_wb(words: list[str], low: int, high: int) -> list[str]:
    """Character n-grams within space-padded words, exactly as analyzer="char_wb" does."""
    grams: list[str] = []
    for word in words:
        padded = f" {word} "
        length = len(padded)
        for n in range(low, high + 1):
            if length <= n:  # a word no longer than n counts once, whole
                grams.append(padded)
                break
            grams.extend([padded[i:i + n] for i in range(length - n + 1)])
    return grams


@dataclass
class _Vocabulary:
    """A vectoriser's vocabulary as two arrays: its terms' hashes (Python's, fixed for the
    process) sorted, and each one's column; a few MB less than a dict of the strings."""

    keys: np.ndarray     # int64, sorted
    columns: np.ndarray  # the column of each key
    idf: np.ndarray      # float32, by column, as the fitted vectoriser holds it
    offset: int          # where its columns start in the joined feature space
    sublinear: bool

    @classmethod
    def of(cls, terms: list[str], idf, offset: int, sublinear: bool) -> _Vocabulary:
        keys = np.fromiter(map(hash, terms), dtype=np.int64, count=len(terms))
        order = np.argsort(keys)
        return cls(keys[order], order.astype(np.int32), np.asarray(idf, dtype=np.float32),
                   offset, sublinear)

    def columns_of(self, terms: Iterable[str]) -> np.ndarray:
        """The columns (int32) of the terms in the vocabulary, once for each occurrence;
        unknown terms have none."""
        hashes = np.fromiter(map(hash, terms), dtype=np.int64)
        if not len(hashes) or not len(self.keys):
            return np.empty(0, dtype=np.int32)
        at = np.minimum(np.searchsorted(self.keys, hashes), len(self.keys) - 1)
        return self.columns[at[self.keys[at] == hashes]]

    def features(self, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The columns and TF-IDF values (float32, unit length) of a text's terms."""
        return self.weighed(self.columns_of(terms))

    def weighed(self, occurrences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The columns and TF-IDF values (float32, unit length) of a text whose known terms
        occur at these columns, computed as TfidfVectorizer(dtype=float32) does, step by
        step and in its order (columns ascending)."""
        if not len(occurrences):
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
        columns, counts = np.unique(occurrences, return_counts=True)
        columns = columns.astype(np.intp)
        tf = counts.astype(np.float32)
        if self.sublinear:
            tf = np.log(tf) + np.float32(1.0)
        values = tf * self.idf[columns]
        # scikit-learn's l2 normalisation: float32 squares summed one by one in a double.
        squares = (values * values).astype(np.float64)
        norm = math.sqrt(float(np.add.accumulate(squares)[-1]))
        if not norm:
            return columns + self.offset, values
        return columns + self.offset, (values.astype(np.float64) / norm).astype(np.float32)


def _word_columns(chars: _Vocabulary, char_ngrams: tuple[int, int], word: str) -> bytes:
    """The columns of a word's known character n-grams, one for each occurrence, as int32
    bytes (joined for a text without a copy per word)."""
    return chars.columns_of(_char_wb([word], *char_ngrams)).tobytes()


_ARRAYS = ("word_idf", "char_idf", "weights", "intercept")
# Words whose character n-gram columns a model remembers: a report's words are mostly ones
# an earlier report used. Only words of at most WORD_REMEMBERED_CHARS characters (real ones
# are shorter), so that text made of long random "words" cannot make an entry large: one
# is about 250 bytes, at most about 650, so the cache holds 2-5 MB.
WORDS_REMEMBERED = 8_192
WORD_REMEMBERED_CHARS = 32


class LinearModel:
    """Features and scores of a fitted pipeline, computed with numpy."""

    def __init__(self, state: dict, *, keep: bool = True):
        # What save() writes; a model read to be served lets its vocabularies' strings go.
        self.state = state if keep else {}
        self.labels: list[str] = list(state["labels"])
        self.title_repeats = int(state["title_repeats"])
        self.word_ngrams = tuple(state["word_ngrams"])
        self.char_ngrams = tuple(state["char_ngrams"])
        words, chars = state["word_vocabulary"], state["char_vocabulary"]
        self._words = _Vocabulary.of(words, state["word_idf"], 0, state["sublinear"][0])
        self._chars = _Vocabulary.of(chars, state["char_idf"], len(words),
                                     state["sublinear"][1])
        # (features, labels), rows gathered per text; float32 holds the fitted SVM's
        # coefficients exactly (fit_pipeline rounds them) and the sums are float64.
        self._weights = np.asarray(state["weights"], dtype=np.float32)
        self._intercept = np.asarray(state["intercept"], dtype=np.float64)
        self._beta = float(state["beta"])
        # Over the vocabulary, not the model: a cache of a bound method would hold the
        # model in a reference cycle, and a model replaced by a reload (tens of MB) would
        # wait for a full run of the cyclic collector instead of going at once.
        self._char_columns_of = functools.partial(_word_columns, self._chars,
                                                  self.char_ngrams)
        self._remembered_columns = functools.lru_cache(maxsize=WORDS_REMEMBERED)(
            self._char_columns_of)

    def _char_columns(self, word: str) -> bytes:
        if len(word) > WORD_REMEMBERED_CHARS:
            return self._char_columns_of(word)
        return self._remembered_columns(word)

    def save(self, directory: Path) -> None:
        """model.npz (the arrays) and model.json (the rest) in `directory`."""
        if not self.state:
            raise ModelError("a model read from disk is not saved again; build it")
        np.savez(directory / ARRAYS_FILE, **{k: self.state[k] for k in _ARRAYS})
        rest = {k: v for k, v in self.state.items() if k not in _ARRAYS}
        (directory / MODEL_FILE).write_text(json.dumps({"format": FORMAT, **rest},
                                                       ensure_ascii=False), encoding="utf-8")

    @classmethod
    def read(cls, directory: Path) -> LinearModel:
        """The model saved in `directory` (no pickle is read)."""
        state = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
        if state.pop("format", None) != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as arrays:
            state.update({k: arrays[k] for k in _ARRAYS})
        return cls(state, keep=False)

    @classmethod
    def from_pipeline(cls, pipeline, params: dict) -> LinearModel:
        union = pipeline.named_steps["features"]
        words = union.transformer_list[0][1]
        chars = union.transformer_list[1][1]
        classifier = pipeline.named_steps["classifier"]
        # What predict_proba computes is reproduced for this set-up only: one SVM refitted
        # on everything and one temperature (ensemble=False, method="temperature").
        if len(classifier.calibrated_classifiers_) != 1 or classifier.method != "temperature":
            raise ModelError("only temperature calibration without an ensemble can be "
                             "served; set classifier.calibration to \"temperature\"")
        calibrated = classifier.calibrated_classifiers_[0]
        svm = calibrated.estimator
        coef = np.asarray(svm.coef_, dtype=np.float32)
        intercept = np.asarray(svm.intercept_, dtype=np.float64)
        if coef.shape[0] == 1:  # two labels: scores are (-x, x), as the calibrator sees them
            coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])

        def vocabulary(vectorizer) -> list[str]:
            terms = [""] * len(vectorizer.vocabulary_)
            for term, column in vectorizer.vocabulary_.items():
                terms[column] = term
            return terms

        return cls({
            "labels": [str(label) for label in pipeline.classes_],
            "title_repeats": int(params.get("title_repeats", 1)),
            "word_ngrams": list(words.ngram_range), "char_ngrams": list(chars.ngram_range),
            "sublinear": [bool(words.sublinear_tf), bool(chars.sublinear_tf)],
            "word_vocabulary": vocabulary(words),
            "word_idf": np.asarray(words.idf_, dtype=np.float32),
            "char_vocabulary": vocabulary(chars),
            "char_idf": np.asarray(chars.idf_, dtype=np.float32),
            "weights": np.ascontiguousarray(coef.T), "intercept": intercept,
            "beta": float(calibrated.calibrators[0].beta_),
        })

    def probabilities(self, text: str) -> np.ndarray:
        """The labels' probabilities for one text (summing to 1), in `labels` order."""
        words = normaliser.standard_words(text)
        stems = [normaliser.stem(w) for w in words]
        w_cols, w_vals = self._words.features(_ngrams(stems, *self.word_ngrams))
        # Character n-grams stay within a word, so a text's are its words' put together.
        c_cols, c_vals = self._chars.weighed(np.frombuffer(
            b"".join(map(self._char_columns, words)), dtype=np.int32))
        columns = np.concatenate([w_cols, c_cols])
        values = np.concatenate([w_vals, c_vals]).astype(np.float64)
        rows = self._weights[columns].astype(np.float64)
        scores = self._beta * (values @ rows + self._intercept)
        scores -= scores.max()
        exp = np.exp(scores)
        return exp / exp.sum()


# -- the classifier routing holds ----------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    category: str                 # category code, e.g. KESEHATAN
    subcategory: str              # e.g. KESEHATAN.PUSKESMAS ("" when none is known)
    confidence: float             # the category's probability
    alternatives: tuple[tuple[str, float], ...]   # the next two categories, most likely first
    subcategory_confidence: float
    model_version: str


class Classifier:
    """A built model: `Classifier.load(dir)`, `.predict(title, body)`, `.version`."""

    def __init__(self, model: LinearModel, card: dict):
        self.model = model
        self.card = card
        self.version: str = card["version"]
        labels = model.labels
        self.categories = sorted({category_of(label) for label in labels})
        column = {c: i for i, c in enumerate(self.categories)}
        self._membership = np.zeros((len(labels), len(self.categories)))
        for row, label in enumerate(labels):
            self._membership[row, column[category_of(label)]] = 1.0
        # A label that is a bare category code (a correction without a subcategory) counts
        # towards its category but is never named as the subcategory.
        self._named = np.array([label != category_of(label) for label in labels])

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """The model in `path`: a model directory (its `current` names the version) or one
        version's directory. ModelError, saying what to run, when it is missing or was built
        for other code or library versions."""
        from services.routing.classify.store import ModelStore

        return ModelStore.open(Path(path)).load()

    @classmethod
    def from_files(cls, directory: Path) -> Classifier:
        card_path = directory / CARD_FILE
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{card_path}: cannot read the model card ({exc}); run "
                             "`make model`") from None
        if card.get("libraries") != library_versions() or card.get("code") != code_digest():
            raise ModelError(f"model {card.get('version')} in {directory} was built by other "
                             "code or library versions; run `make model` to rebuild it")
        if (directory / OLD_MODEL_FILE).is_file() and not (directory / MODEL_FILE).is_file():
            raise ModelError(f"model {card.get('version')} in {directory} is in an older "
                             f"format ({OLD_MODEL_FILE}); run `make model` to rebuild it")
        try:
            model = LinearModel.read(directory)
        except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{directory}: cannot load the model ({type(exc).__name__}: "
                             f"{exc}); run `make model`") from None
        return cls(model, card)

    def predict(self, title: str, body: str) -> Prediction:
        """The most likely category and subcategory of a report, with the runners-up."""
        return self._prediction(self.model.probabilities(
            model_input(title, body, self.model.title_repeats)))

    def predict_many(self, pairs: Iterable[tuple[str, str]]) -> list[Prediction]:
        return [self.predict(title, body) for title, body in pairs]

    def _prediction(self, probs: np.ndarray) -> Prediction:
        by_category = probs @ self._membership
        order = np.argsort(-by_category, kind="stable")
        best = order[0]
        in_best = (self._membership[:, best] > 0) & self._named
        if in_best.any():
            sub = int(np.argmax(np.where(in_best, probs, -1.0)))
            subcategory, sub_confidence = self.model.labels[sub], float(probs[sub])
        else:
            subcategory, sub_confidence = "", float(by_category[best])
        return Prediction(
            category=self.categories[best], subcategory=subcategory,
            confidence=round(float(by_category[best]), 4),
            alternatives=tuple((self.categories[i], round(float(by_category[i]), 4))
                               for i in order[1:3]),
            subcategory_confidence=round(sub_confidence, 4), model_version=self.version)


# -- measuring -----------------------------------------------------------------------------

@dataclass
class Evaluation:
    """How a model did on held-out examples: category top-1 accuracy and macro-F1 (over the
    categories present) are the headline figures; subcategory accuracy beside them."""

    examples: int
    accuracy: float
    macro_f1: float
    subcategory_accuracy: float
    per_category_f1: dict[str, float] = field(default_factory=dict)
    confused: list[tuple[str, str, int]] = field(default_factory=list)  # true, predicted, n
    # For a confidence threshold ("0.8"): the share of reports at or above it and the
    # accuracy among them, what auto-dispatch above that threshold would do.
    by_confidence: dict[str, tuple[float, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"examples": self.examples, "accuracy": round(self.accuracy, 4),
                "macro_f1": round(self.macro_f1, 4),
                "subcategory_accuracy": round(self.subcategory_accuracy, 4),
                "per_category_f1": {k: round(v, 4) for k, v in self.per_category_f1.items()},
                "confused": [list(c) for c in self.confused],
                "by_confidence": {k: [round(a, 4), round(b, 4)]
                                  for k, (a, b) in self.by_confidence.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> Evaluation:
        return cls(data["examples"], data["accuracy"], data["macro_f1"],
                   data["subcategory_accuracy"], dict(data["per_category_f1"]),
                   [tuple(c) for c in data["confused"]],
                   {k: tuple(v) for k, v in data.get("by_confidence", {}).items()})

    def not_worse_than(self, other: Evaluation, tolerance: float = 0.0) -> bool:
        return (self.accuracy >= other.accuracy - tolerance
                and self.macro_f1 >= other.macro_f1 - tolerance)


CONFIDENCE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def f1_by_label(true: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """F1 of each label that occurs in `true`."""
    pairs = list(zip(true, predicted, strict=True))
    scores = {}
    for label in sorted(set(true)):
        tp = sum(t == label and p == label for t, p in pairs)
        fp = sum(t != label and p == label for t, p in pairs)
        fn = sum(t == label and p != label for t, p in pairs)
        scores[label] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return scores


def evaluate(classifier: Classifier, held_out: Sequence[Example], worst: int = 5
             ) -> Evaluation:
    """Scores on held-out examples (never seen in training)."""
    if not held_out:
        return Evaluation(0, 0.0, 0.0, 0.0)
    predictions = classifier.predict_many((e.title, e.body) for e in held_out)
    true = [e.category for e in held_out]
    predicted = [p.category for p in predictions]
    per_category = f1_by_label(true, predicted)
    confused = Counter((t, p) for t, p in zip(true, predicted, strict=True) if t != p)
    n = len(held_out)
    by_confidence = {}
    for threshold in CONFIDENCE_THRESHOLDS:
        sure = [t == p.category for t, p in zip(true, predictions, strict=True)
                if p.confidence >= threshold]
        by_confidence[f"{threshold:.1f}"] = (len(sure) / n, sum(sure) / len(sure) if sure
                                             else 0.0)
    return Evaluation(
        examples=n,
        accuracy=sum(t == p for t, p in zip(true, predicted, strict=True)) / n,
        macro_f1=sum(per_category.values()) / len(per_category),
        subcategory_accuracy=sum(e.subcategory == p.subcategory for e, p in
                                 zip(held_out, predictions, strict=True)) / n,
        per_category_f1=per_category,
        confused=[(t, p, c) for (t, p), c in
                  sorted(confused.items(), key=lambda kv: (-kv[1], kv[0]))[:worst]],
        by_confidence=by_confidence)


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started
