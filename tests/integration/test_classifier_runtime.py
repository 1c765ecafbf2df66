"""What routing serves is the built model's arithmetic in numpy: the same probabilities as the
scikit-learn pipeline it was exported from, on every report of the corpus, and a routing that
starts, classifies and screens for duplicates without scikit-learn or SciPy in memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest

from services.routing.classify import corpus
from services.routing.classify.model import (
    ARRAYS_FILE,
    MODEL_FILE,
    OLD_MODEL_FILE,
    PIPELINE_FILE,
    Classifier,
    LinearModel,
    ModelError,
    model_input,
)
from services.routing.classify.store import ModelStore, model_dir
from tests.integration.helpers import classifier

LEAN_SERVICE = textwrap.dedent("""
    import json, sys
    # Not needed by a plaintext routing: the model's trainer, requests (5 MB), X.509 (8 MB),
    # and every country's holidays (11.5 MB for the one in use).
    HEAVY = ("sklearn", "scipy", "joblib", "requests", "cryptography", "holidays.countries")
    from services.routing.app import RoutingService, Settings
    settings = Settings(database_url=sys.argv[1], amqp_url=sys.argv[2],
                        listen="127.0.0.1:0", metrics_port=0)
    service = RoutingService(settings)
    prediction = service.classifier.predict("Jalan rusak", "Jalan kabupaten berlubang besar")
    similarity = service.workflow.duplicates.similarity.similarity("jalan rusak", "jln rusak")
    from datetime import date
    from services.routing.workdays import WorkCalendar
    assert not WorkCalendar().is_working_day(date(2026, 8, 17))
    service.engine.dispose()
    print(json.dumps({"category": prediction.category, "similarity": similarity,
                      "loaded": sorted({".".join(m.split(".")[:2]) for m in sys.modules
                                        if m.split(".")[0] in HEAVY or m in HEAVY})}))
""")


@pytest.fixture(scope="module")
def built():
    """The current model's directory (built from the corpus when missing)."""
    return ModelStore(model_dir()).directory(classifier().version)


def test_the_served_probabilities_are_the_pipelines_on_the_whole_corpus(built):
    pipeline = joblib.load(built / PIPELINE_FILE)
    served = LinearModel.read(built)
    examples = corpus.read_corpus(corpus.CORPUS_DIR)
    texts = [model_input(e.title, e.body, served.title_repeats) for e in examples]
    texts += ["", "kata yang tidak pernah terlihat", "Jln2 ancur!! a b c ab abc"]
    expected = pipeline.predict_proba(texts)
    got = np.array([served.probabilities(t) for t in texts])
    assert served.labels == [str(label) for label in pipeline.classes_]
    assert len(examples) > 5_000
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_the_served_form_is_no_pickle(built):
    with np.load(built / ARRAYS_FILE, allow_pickle=False) as arrays:
        assert arrays["weights"].dtype == np.float32
    assert json.loads((built / MODEL_FILE).read_text(encoding="utf-8"))["labels"]


def test_a_model_saved_in_the_old_format_says_run_make_model(built, tmp_path):
    old = tmp_path / "models" / "0123456789ab"
    old.mkdir(parents=True)
    (old / "card.json").write_text((built / "card.json").read_text(encoding="utf-8")
                                   .replace(built.name, old.name), encoding="utf-8")
    (old / OLD_MODEL_FILE).write_bytes(b"not read")
    (tmp_path / "models" / "current").write_text(old.name + "\n")
    for path in (tmp_path / "models", old):
        with pytest.raises(ModelError, match=r"older format.*make model"):
            Classifier.load(path)


def test_routing_starts_classifies_and_screens_without_what_it_does_not_use(sqlite_url):
    classifier()  # the model exists before the service starts, as `make model` leaves it
    done = subprocess.run([sys.executable, "-c", LEAN_SERVICE, sqlite_url,
                           "amqp://guest:guest@127.0.0.1:1/%2F"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["category"] == "PUPR"
    assert answer["similarity"] > 0.5
    assert answer["loaded"] == []
