"""Screening scores its shortlist in one pass over all the candidates' character n-grams;
each score must be the one the text-by-text cosine gives (Similarity.similarity)."""

from __future__ import annotations

import numpy as np
import pytest

from services.routing.tickets.duplicates import Similarity, prepared_text, report_text

TEXTS = [
    report_text("Jalan rusak di Jl. Sudirman", "lubang besar depan SDN 12, sudah 3 bulan"),
    report_text("Jalan berlubang Jl. Sudirman", "lubang besar di depan SDN 12 belum diperbaiki"),
    report_text("Puskesmas tutup", "dokter jarang ada, pasien disuruh pulang"),
    report_text("Lampu jalan mati", "lampu lampu lampu mati mati di gang 4"),
    report_text("Banjir di Kampung Melayu", "air masuk rumah warga setinggi 50 cm"),
    report_text("Sekolah rusak", "atap kelas bocor — murid belajar di halaman; kepala sekolah "
                "sudah lapor ke dinas"),
    report_text("Ôjek ñakal", "tarif ëmpat kali lipat di bandara"),   # non-ASCII n-grams
    report_text("", "a"),                                            # no n-gram long enough
    "",                                                              # nothing at all
]


@pytest.fixture(scope="module")
def similarity() -> Similarity:
    return Similarity(TEXTS[:6] * 3)


@pytest.mark.parametrize("new", range(len(TEXTS)))
def test_one_pass_scores_equal_the_text_by_text_cosine(similarity, new):
    mine = similarity.char_vector(prepared_text(TEXTS[new]))
    prepared = [prepared_text(t) for t in TEXTS]
    expected = [mine.dot(similarity.char_vector(t)) for t in prepared]
    np.testing.assert_allclose(similarity.char_scores(mine, prepared), expected,
                               rtol=1e-12, atol=1e-12)


def test_scores_keep_the_shortlist_and_zero_the_rest(similarity):
    new = similarity.prepare(TEXTS[0])
    candidates = similarity.prepare_many(TEXTS[1:])
    scores = similarity.scores(new, candidates, shortlist=2)
    assert scores[0] == pytest.approx(similarity.similarity(TEXTS[0], TEXTS[1]), abs=1e-12)
    assert scores[0] > 0.5
    assert sum(1 for s in scores if s > 0) <= 2
