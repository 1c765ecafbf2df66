"""The learned classifier on a small corpus made here: what it predicts, how it is split,
built, versioned, loaded, retrained from corrections and swapped in a running routing."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from services.routing.classify import corpus, corrections, model, training
from services.routing.classify.corpus import CorpusError, Example, Taxonomy
from services.routing.classify.live import LiveClassifier
from services.routing.classify.model import (
    Classifier,
    LinearModel,
    ModelError,
    fit_pipeline,
    model_input,
    model_version,
)
from services.routing.classify.store import ModelStore
from tests.integration.helpers import wait_for

TAXONOMY = """
categories:
  - code: PUPR
    name: PEKERJAAN UMUM DAN PENATAAN RUANG
    subcategories:
      - {code: PUPR.JALAN, name: Jalan}
      - {code: PUPR.JEMBATAN, name: Jembatan}
  - code: KESEHATAN
    name: KESEHATAN
    subcategories:
      - {code: KESEHATAN.PUSKESMAS, name: Layanan puskesmas}
      - {code: KESEHATAN.RUMAH_SAKIT, name: Layanan rumah sakit}
  - code: TRANTIBUM
    name: KETENTERAMAN, KETERTIBAN UMUM, DAN PELINDUNGAN MASYARAKAT
    subcategories:
      - {code: TRANTIBUM.KETERTIBAN, name: Ketertiban umum, PKL dan reklame}
  - code: PERHUBUNGAN
    name: PERHUBUNGAN
    subcategories:
      - {code: PERHUBUNGAN.ANGKUTAN, name: Angkutan umum}
"""

PLACES = ["Sijunjung", "Jayapura", "Bantul", "Kupang", "Bireuen", "Sleman", "Palu",
          "Ternate"]
TEMPLATES = {
    "PUPR.JALAN": ["Jalan rusak di {p}", "jln di {p} berlubang gede, aspal ancur",
                   "Jalan kabupaten ke {p} rusak parah dan berlubang",
                   "tolong aspal jalan desa {p} yg rusak"],
    "PUPR.JEMBATAN": ["Jembatan di {p} hampir roboh", "jembatan gantung {p} papannya lapuk",
                      "Jembatan penghubung ke {p} putus diterjang banjir",
                      "tiang jembatan {p} retak"],
    "KESEHATAN.PUSKESMAS": ["Puskesmas {p} tutup siang", "dokter puskesmas {p} tdk ada",
                            "Pelayanan puskesmas di {p} lambat, antre lama",
                            "bidan puskesmas pembantu {p} jarang datang"],
    "KESEHATAN.RUMAH_SAKIT": ["RSUD {p} menolak pasien", "kamar rumah sakit {p} penuh",
                              "Pasien di rumah sakit {p} terlantar di IGD",
                              "rs {p} minta uang muka sebelum operasi"],
    "TRANTIBUM.KETERTIBAN": ["PKL menutup trotoar di {p}", "reklame liar di simpang {p}",
                             "angkot ngetem dan pedagang kaki lima bikin semrawut pasar {p}",
                             "pengamen dan angkot ngetem di depan pasar {p} ganggu ketertiban"],
    "PERHUBUNGAN.ANGKUTAN": ["Tarif bus antarkota ke {p} naik", "sopir bus {p} ugal ugalan",
                             "trayek bus kota {p} dihapus", "kapal penumpang ke {p} telat"],
}


def write_corpus(directory: Path, extra: dict[str, list[str]] | None = None) -> Path:
    """A corpus under `directory`/corpus and its taxonomy; returns the corpus directory."""
    corpus_dir = directory / "corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    (directory / "categories.yaml").write_text(TAXONOMY)
    rows: dict[str, list[str]] = {}
    for label, templates in TEMPLATES.items():
        for i, place in enumerate(PLACES):
            for j, template in enumerate(templates):
                title = template.format(p=place)
                body = f"{title}. Sudah {i + j + 2} minggu, mohon ditindaklanjuti. Warga {place}."
                rows.setdefault(label.partition(".")[0], []).append(json.dumps(
                    {"title": title, "body": body, "subcategory": label, "region": ""}))
    for label, titles in (extra or {}).items():
        rows.setdefault(label.partition(".")[0], []).extend(json.dumps(
            {"title": t, "body": t, "subcategory": label, "region": ""}) for t in titles)
    for category, lines in rows.items():
        (corpus_dir / f"{category}.jsonl").write_text("\n".join(lines) + "\n")
    return corpus_dir


@pytest.fixture
def small(tmp_path):
    corpus_dir = write_corpus(tmp_path)
    taxonomy = Taxonomy.load(tmp_path / "categories.yaml")
    return corpus_dir, taxonomy


def build(store: ModelStore, small, corrections_=()):
    corpus_dir, taxonomy = small
    return training.build(store, corrections_, corpus_dir=corpus_dir, taxonomy=taxonomy)


def test_served_probabilities_are_scikit_learns(small):
    corpus_dir, taxonomy = small
    examples = corpus.read_corpus(corpus_dir, taxonomy)
    train, held = corpus.split(examples)
    pipeline = fit_pipeline(train)
    lean = LinearModel.from_pipeline(pipeline, {})
    texts = [e.text for e in held] + ["", "kata yang tidak pernah terlihat", "Jln2 ancur!!"]
    expected = pipeline.predict_proba(texts)
    served = np.array([lean.probabilities(t) for t in texts])
    assert lean.labels == list(pipeline.classes_)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_what_a_model_remembers_of_words_is_bounded(small, monkeypatch):
    """Each word's character n-grams are remembered for later reports, but only a short
    word's and at most WORDS_REMEMBERED of them: text of long or made-up words cannot grow
    routing's memory, and the probabilities are the pipeline's either way."""
    monkeypatch.setattr(model, "WORDS_REMEMBERED", 50)
    corpus_dir, taxonomy = small
    train, _ = corpus.split(corpus.read_corpus(corpus_dir, taxonomy))
    pipeline = fit_pipeline(train)
    lean = LinearModel.from_pipeline(pipeline, {})
    remembered = lean._remembered_columns

    text = f"jalan rusak {'berlubang' * 300} parah"
    np.testing.assert_allclose(lean.probabilities(text), pipeline.predict_proba([text])[0],
                               atol=1e-5)
    assert remembered.cache_info().currsize == 3  # jalan, rusak, parah
    np.testing.assert_allclose(lean.probabilities(text), pipeline.predict_proba([text])[0],
                               atol=1e-5)
    assert remembered.cache_info().hits == 3

    def made_up(i: int) -> str:
        return "".join(chr(ord("a") + int(d)) for d in f"{i:06d}")

    flood = [" ".join(made_up(i * 10 + j) for j in range(10)) for i in range(20)]
    served = np.array([lean.probabilities(t) for t in flood])
    np.testing.assert_allclose(served, pipeline.predict_proba(flood), atol=1e-5)
    assert remembered.cache_info().currsize == 50


def test_a_replaced_model_is_freed_at_once_not_by_the_cycle_collector(small, tmp_path):
    """A model reload replaces tens of MB: the old model, used, must go when the last
    reference to it does, not wait for a full run of the cyclic collector (which routing's
    memory budget cannot), nor stay for good in a heap frozen at start (gc.freeze)."""
    import gc
    import weakref

    served = Classifier.load(build(ModelStore(tmp_path / "models"), small).directory)
    served.predict("Jalan rusak berlubang", "lubang besar di jalan desa")
    gone = weakref.ref(served.model)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del served
        assert gone() is None
    finally:
        if was_enabled:
            gc.enable()


def test_a_prediction_names_category_subcategory_and_the_next_two(small, tmp_path):
    store = ModelStore(tmp_path / "models")
    result = build(store, small)
    classifier = Classifier.load(result.directory)
    p = classifier.predict("Puskesmasnya tutup", "dokternya gak ada, pasien pulang lagi")
    assert (p.category, p.subcategory) == ("KESEHATAN", "KESEHATAN.PUSKESMAS")
    assert p.model_version == classifier.version == result.version
    probs = classifier.model.probabilities(model_input(
        "Puskesmasnya tutup", "dokternya gak ada, pasien pulang lagi", 2))
    by_label = dict(zip(classifier.model.labels, probs, strict=True))
    assert p.confidence == pytest.approx(by_label["KESEHATAN.PUSKESMAS"]
                                         + by_label["KESEHATAN.RUMAH_SAKIT"], abs=1e-4)
    assert p.subcategory_confidence == pytest.approx(by_label["KESEHATAN.PUSKESMAS"], abs=1e-4)
    assert len(p.alternatives) == 2
    assert p.confidence >= p.alternatives[0][1] >= p.alternatives[1][1]
    assert {c for c, _ in p.alternatives} < {"PUPR", "TRANTIBUM", "PERHUBUNGAN"}
    assert p.confidence + sum(c for _, c in p.alternatives) <= 1.0001


def test_the_split_is_fixed_stratified_and_stable(small, tmp_path):
    corpus_dir, taxonomy = small
    examples = corpus.read_corpus(corpus_dir, taxonomy)
    train, held = corpus.split(examples)
    assert (train, held) == corpus.split(examples)
    assert 0.1 < len(held) / len(examples) < 0.3
    for label in TEMPLATES:
        assert any(e.subcategory == label for e in train), label
        assert any(e.subcategory == label for e in held), label
    # New examples never move old ones; a copy differing in case and punctuation goes
    # where its original went.
    copy = Example(held[0].title.upper() + "!!", held[0].body, held[0].subcategory)
    more = [*examples, copy, *(Example(f"laporan baru {i}", "jalan rusak", "PUPR.JALAN")
                               for i in range(50))]
    train2, held2 = corpus.split(more)
    assert set(map(id, held)) <= set(map(id, held2)) and copy in held2
    assert set(map(id, train)) <= set(map(id, train2))


def test_same_inputs_same_version_and_predictions(small, tmp_path):
    first = build(ModelStore(tmp_path / "a"), small)
    second = build(ModelStore(tmp_path / "b"), small)
    assert first.built and second.built and first.version == second.version
    assert first.card["held_out"] == second.card["held_out"]
    one, two = Classifier.load(first.directory), Classifier.load(second.directory)
    for title in ("jembatan ambruk", "antre lama di rs", "bus ugal2an"):
        assert one.predict(title, "") == two.predict(title, "")
    again = build(ModelStore(tmp_path / "a"), small)
    assert not again.built and again.version == first.version


def test_the_version_follows_corpus_corrections_and_parameters(small, tmp_path):
    corpus_dir, _ = small
    digest = corpus.corpus_digest(corpus_dir)
    correction = Example("angkot ngetem", "di depan pasar", "PERHUBUNGAN.ANGKUTAN",
                         source="correction")
    base = model_version(digest, [], {"C": 1})
    assert model_version(digest, [], {"C": 1}) == base
    assert model_version(digest, [correction], {"C": 1}) != base
    assert model_version(digest, [], {"C": 2}) != base
    with (corpus_dir / "PUPR.jsonl").open("a") as f:
        f.write(json.dumps({"title": "Jalan baru", "body": "rusak lagi",
                            "subcategory": "PUPR.JALAN"}) + "\n")
    assert model_version(corpus.corpus_digest(corpus_dir), [], {"C": 1}) != base


def test_a_model_built_by_other_libraries_or_missing_says_run_make_model(small, tmp_path):
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelError, match="make model"):
        Classifier.load(store.root)
    result = build(store, small)
    store.promote(result.version)
    assert Classifier.load(store.root).version == result.version
    card_path = result.directory / "card.json"
    card = json.loads(card_path.read_text())
    card["libraries"]["scikit-learn"] = "0.1"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="make model"):
        Classifier.load(store.root)


@pytest.mark.parametrize(("line", "message"), [
    ('{"title": "x", "body": "y", "subcategory": "PUPR.TIDAK_ADA"}', r"PUPR\.jsonl:2: subcat"),
    ("not json", r"PUPR\.jsonl:2: not JSON"),
    ('{"title": "", "body": "", "subcategory": "PUPR.JALAN"}', r"PUPR\.jsonl:2: title"),
    ('{"title": "x", "body": "y", "subcategory": "KESEHATAN.PUSKESMAS"}', r"PUPR\.jsonl:2"),
])
def test_a_bad_corpus_line_is_named(tmp_path, line, message):
    (tmp_path / "categories.yaml").write_text(TAXONOMY)
    (tmp_path / "PUPR.jsonl").write_text(
        '{"title": "Jalan", "body": "rusak", "subcategory": "PUPR.JALAN"}\n' + line + "\n")
    with pytest.raises(CorpusError, match=message):
        corpus.read_corpus(tmp_path, Taxonomy.load(tmp_path / "categories.yaml"))


def test_a_corpus_file_must_be_a_category(tmp_path):
    (tmp_path / "categories.yaml").write_text(TAXONOMY)
    (tmp_path / "JALAN.jsonl").write_text("")
    with pytest.raises(CorpusError, match="JALAN is not a category code"):
        corpus.read_corpus(tmp_path, Taxonomy.load(tmp_path / "categories.yaml"))


def test_what_a_correction_teaches():
    assert corrections.label("PERHUBUNGAN", "PERHUBUNGAN.ANGKUTAN") == "PERHUBUNGAN.ANGKUTAN"
    assert corrections.label("PERHUBUNGAN", "") == "PERHUBUNGAN"
    assert corrections.label("PERHUBUNGAN", "PUPR.JALAN") == "PERHUBUNGAN"
    assert corrections.label("peniadaan mudik", "") is None


def test_a_correction_equal_to_a_held_out_example_is_not_trained_on(small):
    corpus_dir, taxonomy = small
    train, held = corpus.split(corpus.read_corpus(corpus_dir, taxonomy))
    leak = Example(held[0].title, held[0].body, "PUPR.JALAN", source="correction")
    fresh = Example("angkot ngetem", "di pasar", "PERHUBUNGAN.ANGKUTAN", source="correction")
    assert corpus.training_set(train, held, [leak, fresh]) == [*train, fresh]


ANGKOT = [
    ("Angkot ngetem di depan pasar Inpres", "sopir angkot menunggu penumpang penuh"),
    ("angkot ngetem lama", "angkot jurusan terminal ngetem di depan pasar sampai sejam"),
    ("Angkot ngetem sembarangan", "angkot ngetem depan pasar, penumpang menunggu lama"),
    ("angkot ngetem bikin penumpang telat", "angkot di pasar ngetem terus, sopirnya santai"),
    ("Angkot ngetem berjam jam", "tolong tertibkan angkot yang ngetem di depan pasar"),
    ("angkot ngetem lagi", "angkot ngetem di pasar pagi, penumpang kepanasan"),
]


def test_corrections_change_a_later_decision_after_retraining(small, tmp_path, caplog):
    corpus_dir, taxonomy = small
    store = ModelStore(tmp_path / "models")
    first = build(store, small)
    store.promote(first.version)
    live = LiveClassifier(store.root, build_if_missing=False)
    report = ("Angkot ngetem di depan pasar", "angkot ngetem lama di depan pasar sore hari")
    assert live.predict(*report).category == "TRANTIBUM"

    taught = [Example(t, b, "PERHUBUNGAN.ANGKUTAN", source="correction") for t, b in ANGKOT]
    outcome = training.retrain(store, taught, corpus_dir=corpus_dir, taxonomy=taxonomy)
    assert outcome.promoted, outcome.reason
    assert outcome.before is not None
    assert outcome.result.evaluation.not_worse_than(outcome.before, 0.005)
    assert store.current() == outcome.result.version != first.version

    assert live.reload() and live.version == outcome.result.version
    decision = live.predict(*report)
    assert (decision.category, decision.subcategory) == ("PERHUBUNGAN",
                                                         "PERHUBUNGAN.ANGKUTAN")
    assert decision.model_version == outcome.result.version


def test_a_worse_model_is_not_promoted(small, tmp_path):
    corpus_dir, taxonomy = small
    store = ModelStore(tmp_path / "models")
    first = build(store, small)
    store.promote(first.version)
    # Wrong corrections in bulk: every road report "taught" to be a hospital one.
    examples = corpus.read_corpus(corpus_dir, taxonomy)
    wrong = [Example(e.title, e.body, "KESEHATAN.RUMAH_SAKIT", source="correction")
             for e in examples if e.category == "PUPR"] * 3
    outcome = training.retrain(store, wrong, corpus_dir=corpus_dir, taxonomy=taxonomy)
    assert not outcome.promoted and "worse" in outcome.reason
    assert outcome.result.evaluation.accuracy < outcome.before.accuracy
    assert store.current() == first.version


def test_routing_keeps_its_model_when_the_promoted_one_cannot_load(small, tmp_path, caplog):
    store = ModelStore(tmp_path / "models")
    first = build(store, small)
    store.promote(first.version)
    live = LiveClassifier(store.root, build_if_missing=False)
    (store.root / "current").write_text("nosuchversion\n")
    with caplog.at_level(logging.ERROR):
        assert not live.reload()
    assert live.version == first.version
    assert "nosuchversion" in caplog.text
    assert live.predict("jembatan putus", "").category == "PUPR"


def test_a_missing_model_is_built_at_start_with_a_log_line(small, tmp_path, caplog):
    corpus_dir, taxonomy = small
    with caplog.at_level(logging.WARNING):
        live = LiveClassifier(tmp_path / "empty", corpus_dir=corpus_dir, taxonomy=taxonomy)
    assert "building one from the corpus" in caplog.text
    assert ModelStore(tmp_path / "empty").current() == live.version


def test_the_reload_loop_follows_the_current_pointer(small, tmp_path):
    corpus_dir, taxonomy = small
    store = ModelStore(tmp_path / "models")
    first = build(store, small)
    store.promote(first.version)
    live = LiveClassifier(store.root, reload_seconds=0.05, build_if_missing=False)
    second = training.build(store, [Example("angkot ngetem", "di pasar",
                                            "PERHUBUNGAN.ANGKUTAN", source="correction")],
                            corpus_dir=corpus_dir, taxonomy=taxonomy)
    live.loop.start()
    try:
        store.promote(second.version)
        wait_for(lambda: live.version == second.version, timeout=10,
                 what="the running classifier to switch to the promoted model")
        assert live.loop.healthy()
    finally:
        live.loop.stop(2)


def test_the_reload_interval_must_be_a_positive_number_of_seconds(tmp_path):
    from services.infra.config import ConfigError, Env

    env = Env({"ROUTING_MODEL_DIR": str(tmp_path), "ROUTING_MODEL_RELOAD_SECONDS": "0"})
    with pytest.raises(ConfigError, match="ROUTING_MODEL_RELOAD_SECONDS"):
        LiveClassifier.from_env(env, build_if_missing=False)


def test_an_unwritable_model_directory_is_named(small, tmp_path):
    corpus_dir, taxonomy = small
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(ModelError, match="ROUTING_MODEL_DIR"):
        LiveClassifier(blocked / "model", corpus_dir=corpus_dir, taxonomy=taxonomy)


def test_not_worse_means_within_the_tolerance_and_no_further():
    from services.routing.classify.model import Evaluation

    before = Evaluation(1320, 0.938, 0.937, 0.905)
    one_flip = Evaluation(1320, 0.937, 0.936, 0.905)
    assert not one_flip.not_worse_than(before)
    assert one_flip.not_worse_than(before, training.DEFAULT_TOLERANCE)
    assert not Evaluation(1320, 0.93, 0.937, 0.9).not_worse_than(before,
                                                                 training.DEFAULT_TOLERANCE)
    assert not Evaluation(1320, 0.938, 0.93, 0.9).not_worse_than(before,
                                                                 training.DEFAULT_TOLERANCE)
