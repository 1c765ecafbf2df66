"""Built models on disk. A model directory (var/model by default, ROUTING_MODEL_DIR) holds one
sub-directory per version (model.joblib and card.json) and a file `current` naming the
version routing uses. Versions are written under a temporary name and renamed into place,
and `current` is replaced atomically, so a reader never sees half a model and several
processes building the same version at once do no harm.

model.joblib is a pickle: load only models this project built into a directory only its
operators can write.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import joblib

from services.infra.config import PROJECT_ROOT, Env
from services.routing.classify.model import CARD_FILE, MODEL_FILE, Classifier, ModelError

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
        return (directory / MODEL_FILE).is_file() and (directory / CARD_FILE).is_file()

    def card(self, version: str) -> dict:
        return json.loads((self.directory(version) / CARD_FILE).read_text(encoding="utf-8"))

    def save(self, version: str, state: dict, card: dict) -> Path:
        """Writes the version's files, all or nothing."""
        target = self.directory(version)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
        except OSError as exc:
            raise ModelError(f"cannot write models into {self.root} ({exc.strerror or exc}); "
                             "set ROUTING_MODEL_DIR to a writable directory or build the "
                             "model where it is deployed from (`make model`)") from None
        try:
            joblib.dump(state, staging / MODEL_FILE, compress=3)
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
            raise ModelError(f"{self.root / CURRENT_FILE} names {version}, which is not in "
                             f"{self.root}: run `make model`")
        return Classifier.from_files(self.directory(version))

    @classmethod
    def open(cls, path: Path) -> _FixedStore | ModelStore:
        """A store for a model directory, or for one version's directory given directly."""
        if (path / MODEL_FILE).is_file():
            return _FixedStore(path)
        return cls(path)


class _FixedStore:
    def __init__(self, directory: Path):
        self.directory = directory

    def load(self) -> Classifier:
        return Classifier.from_files(self.directory)
