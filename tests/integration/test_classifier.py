"""The classifier built from the project's corpus by the operator's commands: its held-out
figures, real-style reports, and corrections in routing's real database (SQLite and
PostgreSQL) changing later decisions after `retrain`."""

import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.infra import db
from services.routing import storage
from services.routing.classify import Classifier, corrections
from services.routing.classify.corpus import Taxonomy
from services.routing.classify.store import ModelStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def routing_cli(*args: str, database_url: str | None = None, timeout: float = 240
                ) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAPOR_LOG_LEVEL": "WARNING"}
    env.pop("ROUTING_MODEL_DIR", None)
    if database_url:
        env["ROUTING_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "services.routing", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def corpus_model(tmp_path_factory) -> Path:
    """A model directory with the corpus model current, built by `model build`."""
    directory = tmp_path_factory.mktemp("model")
    done = routing_cli("model", "build", "--out", str(directory), "--no-corrections")
    assert done.returncode == 0, done.stderr
    assert "held-out examples" in done.stdout and "made current" in done.stdout
    return directory


@pytest.fixture
def model_dir(corpus_model, tmp_path) -> Path:
    """A copy of the corpus model's directory this test may change."""
    return Path(shutil.copytree(corpus_model, tmp_path / "model"))


def test_the_corpus_model_meets_the_targets_on_held_out_reports(corpus_model):
    store = ModelStore(corpus_model)
    card = store.card(store.current())
    held = card["held_out"]
    assert held["accuracy"] >= 0.90, held
    assert held["macro_f1"] >= 0.85, held
    # Every national category is both learnt and measured.
    assert set(held["per_category_f1"]) == set(Taxonomy.load().names)
    assert card["corrections"] == 0
    shown = routing_cli("model", "show", "--out", str(corpus_model))
    assert shown.returncode == 0 and card["version"] in shown.stdout
    assert "most confused" in shown.stdout


# Written the way people write to LAPOR!, none of them taken from the corpus.
REPORTS = [
    ("Puskesmasnya tutup", "puskesmas di distrik abepura tutup jam 10, dokternya gak ada, "
     "pasien disuruh pulang", "KESEHATAN"),
    ("jalanannya ancur", "jalanan ke kampung kami rusak parah bgt, lubang2 gede, udh 2 thn "
     "gak diperbaiki", "PUPR"),
    ("KTP blm jadi", "sdh 3 bln rekam ektp di dukcapil tp blm jadi2, katanya blangko habis",
     "KEPENDUDUKAN"),
    ("THR blm dibayar", "THR karyawan pabrik garmen blm dibayar sampe skrg, mandor bilang "
     "tunggu aja", "KETENAGAKERJAAN"),
    ("Sinyal ilang", "sinyal internet di desa kami ilang sejak seminggu, anak2 gak bisa "
     "belajar daring", "TIK"),
    ("Listrik padam terus", "listrik PLN di kampung padam tiap malam, kulkas warga rusak",
     "ENERGI"),
    ("Pupuk subsidi langka", "petani susah dapet pupuk subsidi di kios, katanya kuota habis",
     "PERTANIAN"),
    ("Sampah numpuk", "sampah di TPS dekat pasar numpuk, bau banget, udh seminggu gak "
     "diangkut", "LINGKUNGAN"),
    ("Bansos gak tepat sasaran", "tetangga yg punya mobil dpt PKH, kami yg miskin tdk dapet",
     "SOSIAL"),
    ("Guru honorer blm gajian", "guru honorer di SD kami 4 bulan blm terima honor",
     "PENDIDIKAN"),
]


def test_real_style_reports_reach_their_category(corpus_model):
    classifier = Classifier.load(corpus_model)
    wrong = []
    for title, body, expected in REPORTS:
        prediction = classifier.predict(title, body)
        if prediction.category != expected:
            wrong.append((title, expected, prediction.category, prediction.confidence))
    assert not wrong


# A misrouting the corpus model makes: money extorted from drivers at a bus terminal reads
# as a terminal matter (PERHUBUNGAN.UJI_KIR, Dinas Perhubungan) when it is extortion
# (TRANTIBUM.PUNGLI, the police and Saber Pungli). The national admin corrects six such
# reports in triage; a later one, worded differently, must then go the corrected way.
TAUGHT = [
    ("Preman palak sopir di terminal", "tiap hari preman di terminal bus minta uang keamanan "
     "ke sopir, kalau tidak dikasih diancam"),
    ("Pungli di pintu masuk terminal", "oknum minta uang 10 ribu ke setiap bus yang masuk "
     "terminal tanpa karcis resmi"),
    ("Sopir angkot dipalak", "sopir angkot dipalak preman di terminal 5 ribu tiap rit"),
    ("Uang keamanan di terminal", "ada orang mengaku petugas minta uang keamanan ke "
     "pedagang dan sopir di terminal"),
    ("preman terminal", "preman terminal minta jatah ke sopir travel, sopir takut lapor"),
    ("Pungutan liar terminal", "setiap bis yg masuk dimintai uang tanpa tiket resmi oleh "
     "orang tak dikenal, kalau menolak kaca bus dipukul"),
]
LATER = ("Sopir dipalak di terminal", "ada preman yang minta uang ke sopir bus di terminal "
         "tiap pagi")


def _insert_corrections(url: str, rows: list[tuple[str, str, str, str]]) -> None:
    engine = db.make_engine(url)
    try:
        db.migrate(engine, "routing", storage.MIGRATIONS)
        with engine.begin() as conn:
            for i, (title, body, category, subcategory) in enumerate(rows):
                conn.execute(sa.insert(storage.corrections).values(
                    tracking_id=f"LPR-TST-{i:03d}-AAA", title=title, body=body,
                    region_code="13.71", predicted="PERHUBUNGAN", category=category,
                    subcategory=subcategory, source="triage", created_at=datetime.now(UTC)))
    finally:
        engine.dispose()


def test_corrections_in_the_database_change_a_later_decision_after_retrain(model_dir,
                                                                            tmp_path):
    store = ModelStore(model_dir)
    base = store.current()
    before = Classifier.load(model_dir).predict(*LATER)
    assert before.category != "TRANTIBUM", \
        "the corpus model already decides this report: pick one it gets wrong"

    url = f"sqlite:///{tmp_path / 'routing.db'}"
    _insert_corrections(url, [(t, b, "TRANTIBUM", "TRANTIBUM.PUNGLI") for t, b in TAUGHT])
    done = routing_cli("retrain", "--out", str(model_dir), database_url=url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"before ({base})" in done.stdout and "after" in done.stdout
    assert "promoted" in done.stdout and "6 corrections learnt" in done.stdout
    assert store.current() != base

    after = Classifier.load(model_dir).predict(*LATER)
    assert (after.category, after.subcategory) == ("TRANTIBUM", "TRANTIBUM.PUNGLI")
    assert after.model_version == store.current()
    card = store.card(store.current())
    assert card["corrections"] == 6
    # Not worse on the same held-out reports, within retrain's half-point tolerance.
    assert card["held_out"]["accuracy"] >= store.card(base)["held_out"]["accuracy"] - 0.005

    again = routing_cli("retrain", "--out", str(model_dir), database_url=url)
    assert again.returncode == 0 and "nothing new to learn" in again.stdout


def test_corrections_are_read_from_routings_database(database_url, caplog):
    _insert_corrections(database_url, [
        ("Angkot ngetem", "di depan pasar", "PERHUBUNGAN", "PERHUBUNGAN.ANGKUTAN"),
        ("Rahasia pelapor", "isi yang tidak boleh masuk log", "bukan kode", ""),
        ("Parkir liar", "di depan pasar", "PERHUBUNGAN", ""),
        ("Penyekatan mudik", "ditahan di pos", "PENIADAAN_MUDIK", "PENIADAAN_MUDIK.PENYEKATAN"),
    ])
    # Lebaran is over: the temporary category was deactivated, its corrections no longer teach.
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(storage.categories).values(
            code="PENIADAAN_MUDIK", name="PENIADAAN MUDIK", active=False,
            updated_at=datetime.now(UTC)))
    engine.dispose()
    with caplog.at_level(logging.WARNING):
        found = corrections.read_if_present(database_url)
    assert [(e.title, e.subcategory, e.source) for e in found] == [
        ("Angkot ngetem", "PERHUBUNGAN.ANGKUTAN", "correction"),
        ("Parkir liar", "PERHUBUNGAN", "correction")]
    assert "correction skipped" in caplog.text and "Rahasia" not in caplog.text


def test_no_database_yet_means_no_corrections(tmp_path):
    assert corrections.read_if_present(f"sqlite:///{tmp_path / 'none.db'}") == []
    assert not (tmp_path / "none.db").exists()


def test_a_database_that_does_not_answer_is_named(tmp_path):
    done = routing_cli("model", "build", "--out", str(tmp_path / "m"),
                       database_url="postgresql://lapor:lapor@127.0.0.1:1/routing",
                       timeout=60)
    assert done.returncode == 2
    assert "ROUTING_DATABASE_URL" in done.stderr and "--no-corrections" in done.stderr
    assert not (tmp_path / "m" / "current").exists()


def test_no_model_yet_says_run_make_model(tmp_path):
    done = routing_cli("model", "show", "--out", str(tmp_path))
    assert done.returncode == 1 and "make model" in done.stderr


def test_the_cards_figures_are_the_models(corpus_model):
    # What the card reports is what the saved model does on the same held-out split.
    from services.routing.classify import training
    from services.routing.classify.model import evaluate

    store = ModelStore(corpus_model)
    measured = evaluate(Classifier.load(corpus_model), training.held_out_examples())
    assert json.loads(json.dumps(measured.as_dict())) == store.card(store.current())["held_out"]
