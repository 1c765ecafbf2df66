"""Built models on disk. A model directory (var/model by default, ROUTING_MODEL_DIR) holds one
sub-directory per version and a file `current` naming the version routing uses. A version
holds what routing serves (model.npz and model.json, no pickle), its card (card.json) and
the fitted scikit-learn pipeline (pipeline.joblib) for tools that study the model. Versions
are written under a temporary name and renamed into place, and `current` is replaced
atomically, so a reader never sees half a model and several processes building the same
version at once do no harm.

pipeline.joblib is a pickle: load it only from a directory only the operators can write.
Routing never does.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from services.infra.config import PROJECT_ROOT, Env
from services.routing.classify.model import (
    ARRAYS_FILE,
    CARD_FILE,
    MODEL_FILE,
    OLD_MODEL_FILE,
    PIPELINE_FILE,
    Classifier,
    LinearModel,
    ModelError,
)

DEFAULT_DIR = PROJECT_ROOT / "var" / "model"
CURRENT_FILE = "current"


def model_dir(env: Env | None = None) -> Path:
    """ROUTING_MODEL_DIR, or var/model in the project."""
    return Path((env or Env()).str("ROUTING_MODEL_DIR", str(DEFAULT_DIR)))


class ModelStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def current(self) -> str | None:
        """The promoted version, None when there is none yet."""
        try:
            version = (self.root / CURRENT_FILE).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return version or None

    def directory(self, version: str) -> Path:
        return self.root / version

    def has(self, version: str) -> bool:
        directory = self.directory(version)
        return all((directory / name).is_file()
                   for name in (ARRAYS_FILE, MODEL_FILE, CARD_FILE))

    def card(self, version: str) -> dict:
        return json.loads((self.directory(version) / CARD_FILE).read_text(encoding="utf-8"))

    def save(self, version: str, model: LinearModel, card: dict, pipeline=None) -> Path:
        """Writes the version's files, all or nothing; `pipeline` is the fitted
        scikit-learn pipeline the model was exported from, kept for tools."""
        target = self.directory(version)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
        except OSError as exc:
            raise ModelError(f"cannot write models into {self.root} ({exc.strerror or exc}); "
                             "set ROUTING_MODEL_DIR to a writable directory or build the "
                             "model where it is deployed from (`make model`)") from None
        try:
            model.save(staging)
            if pipeline is not None:
                import joblib  # building only: routing never reads the pickle

                joblib.dump(pipeline, staging / PIPELINE_FILE, compress=3)
            (staging / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False)
                                             + "\n", encoding="utf-8")
            staging.chmod(0o755)
            try:
                staging.rename(target)
            except OSError:
                if not self.has(version):  # not another process's identical build
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def promote(self, version: str) -> None:
        """Points `current` at a saved version; running routings pick it up."""
        if not self.has(version):
            raise ModelError(f"no model {version} in {self.root}")
        pointer = self.root / CURRENT_FILE
        staging = self.root / f".{CURRENT_FILE}.{os.getpid()}"
        staging.write_text(version + "\n", encoding="ascii")
        os.replace(staging, pointer)

    def load(self, version: str | None = None) -> Classifier:
        version = version or self.current()
        if version is None:
            raise ModelError(f"no model in {self.root}: run `make model` (or "
                             "`python -m services.routing model build`)")
        if not self.has(version):
            if (self.directory(version) / OLD_MODEL_FILE).is_file():
                raise ModelError(f"model {version} in {self.root} is in an older format "
                                 f"({OLD_MODEL_FILE}); run `make model` to rebuild it")
            raise ModelError(f"{self.root / CURRENT_FILE} names {version}, which is not in "
                             f"{self.root}: run `make model`")
        return Classifier.from_files(self.directory(version))

    @classmethod
    def open(cls, path: Path) -> _FixedStore | ModelStore:
        """A store for a model directory, or for one version's directory given directly."""
        if (path / CARD_FILE).is_file():
            return _FixedStore(path)
        return cls(path)


class _FixedStore:
    def __init__(self, directory: Path):
        self.directory = directory

    def load(self) -> Classifier:
        return Classifier.from_files(self.directory)
