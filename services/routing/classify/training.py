"""Building, measuring and promoting models: what `model build` and `retrain` do.

Both train on the corpus's training part plus the corrections and measure on the corpus's
held-out part (corpus.split), so figures before and after a retrain are on the same
examples. `build` promotes what it built (the operator asked for it); `retrain` promotes only
a model that is not worse than the current one on the held-out split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.routing.classify import corpus as corpus_mod
from services.routing.classify.corpus import CORPUS_DIR, Example, Taxonomy
from services.routing.classify.model import (
    PARAMS,
    Classifier,
    Evaluation,
    LinearModel,
    ModelError,
    code_digest,
    evaluate,
    fit_pipeline,
    library_versions,
    model_version,
    timed,
)
from services.routing.classify.store import ModelStore

log = logging.getLogger(__name__)

# How much lower (accuracy, macro-F1) a retrained model may score on the held-out split and
# still count as not worse: half a point. Six corrections that fix a real misrouting move a
# borderline held-out report or two either way (one of 1,320 is 0.08 points); a strict
# comparison would then refuse most retrains by chance, while a harmful batch of
# corrections costs far more than this.
DEFAULT_TOLERANCE = 0.005


@dataclass(frozen=True)
class BuildResult:
    version: str
    directory: Path
    card: dict
    built: bool             # False when this exact version was already there
    evaluation: Evaluation


def build(store: ModelStore, corrections: Sequence[Example] = (), *,
          corpus_dir: Path = CORPUS_DIR, taxonomy: Taxonomy | None = None,
          params: dict = PARAMS) -> BuildResult:
    """Trains and saves the model for these inputs, unless that version is already saved.
    Does not promote it."""
    examples = corpus_mod.read_corpus(corpus_dir, taxonomy)
    digest = corpus_mod.corpus_digest(corpus_dir)
    corrections = list(corrections)
    version = model_version(digest, corrections, params)
    if store.has(version):
        card = store.card(version)
        return BuildResult(version, store.directory(version), card, False,
                           Evaluation.from_dict(card["held_out"]))
    train_part, held_out = corpus_mod.split(examples)
    training = corpus_mod.training_set(train_part, held_out, corrections)
    pipeline, seconds = timed(fit_pipeline, training, params)
    model = LinearModel.from_pipeline(pipeline, params)
    card = {
        "version": version,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus_sha256": digest,
        "corpus_examples": len(examples),
        "training_examples": len(training),
        "corrections": len(training) - len(train_part),
        "labels": len(model.labels),
        "split": {"method": "sha256 of the folded text, first 8 hex digits mod 100 < "
                            f"{corpus_mod.HELD_OUT_PERCENT} is held out; every subcategory "
                            "on both sides",
                  "held_out_percent": corpus_mod.HELD_OUT_PERCENT},
        "params": params,
        "libraries": library_versions(),
        "code": code_digest(),
        "train_seconds": round(seconds, 2),
    }
    evaluation = evaluate(Classifier(model, card), held_out)
    card["held_out"] = evaluation.as_dict()
    directory = store.save(version, model, card, pipeline)
    log.info("model built", extra={"model_version": version, "examples": len(training),
                                   "accuracy": card["held_out"]["accuracy"],
                                   "macro_f1": card["held_out"]["macro_f1"],
                                   "seconds": round(seconds, 1)})
    return BuildResult(version, directory, card, True, evaluation)


def held_out_examples(corpus_dir: Path = CORPUS_DIR, taxonomy: Taxonomy | None = None
                      ) -> list[Example]:
    return corpus_mod.split(corpus_mod.read_corpus(corpus_dir, taxonomy))[1]


@dataclass(frozen=True)
class RetrainResult:
    previous: str | None
    before: Evaluation | None     # the current model on today's held-out split
    result: BuildResult
    promoted: bool
    reason: str


def retrain(store: ModelStore, corrections: Sequence[Example], *,
            tolerance: float = DEFAULT_TOLERANCE,
            corpus_dir: Path = CORPUS_DIR, taxonomy: Taxonomy | None = None,
            params: dict = PARAMS) -> RetrainResult:
    """Builds from corpus + corrections and promotes the result only when its held-out
    accuracy and macro-F1 are each no more than `tolerance` below the current model's
    (DEFAULT_TOLERANCE; 0 for strictly not lower)."""
    previous = store.current()
    before = None
    if previous is not None:
        try:
            current = store.load(previous)
        except ModelError as exc:
            log.warning("current model cannot be loaded; the new one replaces it",
                        extra={"model_version": previous, "reason": str(exc)})
        else:
            before = evaluate(current, held_out_examples(corpus_dir, taxonomy))
    result = build(store, corrections, corpus_dir=corpus_dir, taxonomy=taxonomy,
                   params=params)
    if result.version == previous:
        return RetrainResult(previous, before, result, False,
                             "nothing new to learn: the current model already has these inputs")
    after = result.evaluation
    if before is not None and not after.not_worse_than(before, tolerance):
        return RetrainResult(previous, before, result, False,
                             f"the new model is worse on the held-out split by more than "
                             f"{tolerance:g}; kept the current")
    store.promote(result.version)
    log.info("model promoted", extra={"model_version": result.version,
                                      "previous_version": previous})
    if before is None:
        reason = "promoted (no usable current model to compare with)"
    elif after.not_worse_than(before):
        reason = "promoted"
    else:
        reason = f"promoted: lower on the held-out split by no more than {tolerance:g}"
    return RetrainResult(previous, before, result, True, reason)


def load_or_build(store: ModelStore, corrections: Sequence[Example] = (), *,
                  corpus_dir: Path = CORPUS_DIR, taxonomy: Taxonomy | None = None
                  ) -> Classifier:
    """The current model; when there is none (a fresh checkout) or it no longer fits the
    code and libraries, one is built from the corpus and promoted first."""
    try:
        return store.load()
    except ModelError as exc:
        log.warning("no usable classifier model in %s (%s); building one from the corpus, "
                    "which takes a few seconds", store.root, exc)
    result = build(store, corrections, corpus_dir=corpus_dir, taxonomy=taxonomy)
    store.promote(result.version)
    return store.load(result.version)
