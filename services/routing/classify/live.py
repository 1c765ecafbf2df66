"""The classifier a running routing holds: the current model, swapped for a newly promoted
one without a restart. A supervised loop reads the model directory's `current` pointer every
ROUTING_MODEL_RELOAD_SECONDS (60 by default) and loads the version it names when that
changed; a version that fails to load is logged and the model in use stays."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import Counter

from services.infra.config import Env
from services.infra.lifecycle import SupervisedLoop
from services.routing.classify.corpus import Example
from services.routing.classify.model import Classifier, ModelError, Prediction
from services.routing.classify.store import ModelStore, model_dir
from services.routing.classify.training import load_or_build

log = logging.getLogger(__name__)

RELOADS = Counter("lapor_classifier_reloads_total",
                  "Attempts to switch routing to a newly promoted classifier model",
                  ["outcome"])
for _outcome in ("loaded", "failed"):
    RELOADS.labels(_outcome)


class LiveClassifier:
    """`predict` and `version` of whichever model is current; `loop` keeps it current."""

    def __init__(self, root: Path, *, reload_seconds: float = 60.0,
                 build_if_missing: bool = True, corrections: Sequence[Example] = (),
                 **build_options):
        self.store = ModelStore(root)
        self.reload_seconds = reload_seconds
        if build_if_missing:
            self._classifier = load_or_build(self.store, corrections, **build_options)
        else:
            self._classifier = self.store.load()
        self._lock = threading.Lock()
        self._failed_version: str | None = None
        self.loop = SupervisedLoop("classifier-reload", self._watch,
                                   stall_after=max(120.0, 3 * reload_seconds))
        log.info("classifier model %s loaded from %s", self.version, self.store.root)

    @classmethod
    def from_env(cls, env: Env | None = None, **options) -> LiveClassifier:
        """ROUTING_MODEL_DIR (default var/model) and ROUTING_MODEL_RELOAD_SECONDS (60)."""
        env = env or Env()
        return cls(model_dir(env),
                   reload_seconds=env.seconds("ROUTING_MODEL_RELOAD_SECONDS", 60.0), **options)

    @property
    def classifier(self) -> Classifier:
        return self._classifier

    @property
    def version(self) -> str:
        return self._classifier.version

    def predict(self, title: str, body: str) -> Prediction:
        return self._classifier.predict(title, body)

    def reload(self) -> bool:
        """Loads the version `current` names if it is not the one in use; True on a switch."""
        wanted = self.store.current()
        if wanted is None or wanted == self.version or wanted == self._failed_version:
            return False
        with self._lock:
            try:
                classifier = self.store.load(wanted)
            except ModelError as exc:
                # Once per bad version: the pointer is checked every minute.
                self._failed_version = wanted
                RELOADS.labels("failed").inc()
                log.error("classifier model %s not loaded; keeping %s: %s", wanted,
                          self.version, exc)
                return False
            previous, self._classifier = self.version, classifier
        self._failed_version = None
        RELOADS.labels("loaded").inc()
        log.info("classifier model switched from %s to %s", previous, classifier.version)
        return True

    def _watch(self, loop: SupervisedLoop) -> None:
        if loop.wait(self.reload_seconds):
            return
        self.reload()
