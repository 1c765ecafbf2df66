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


def test_a_remembered_candidate_scores_exactly_as_a_new_one(monkeypatch):
    """Candidates' vectors are remembered between reports; decisions sit on thresholds, so a
    remembered text must score to the last bit what a fresh one does, in any mix, order or
    repetition, and what is remembered stops at its bound."""
    import services.routing.tickets.duplicates as duplicates

    prepared = [prepared_text(t) for t in TEXTS]
    sizes = {t: duplicates._nbytes(v) for t, v in Similarity(TEXTS[:6])._char_vectors_of(
        prepared).items()}
    budget = sum(sorted(sizes.values())[-4:])  # room for the four largest, not for more
    monkeypatch.setattr(duplicates, "SHORTLISTED_BYTES", budget)
    for new in range(len(TEXTS)):
        fresh = Similarity(TEXTS[:6] * 3)
        mine = fresh.char_vector(prepared[new])
        first = fresh.char_scores(mine, prepared)
        again = fresh.char_scores(mine, prepared)
        np.testing.assert_array_equal(again, first)
        mixed = [prepared[6], prepared[0], prepared[3], prepared[0], prepared[8]]
        np.testing.assert_array_equal(fresh.char_scores(mine, mixed),
                                      first[[6, 0, 3, 0, 8]])
        kept = sum(sizes[t] for t in fresh._shortlisted._items)
        assert kept == fresh._shortlisted.weight <= budget
        assert 0 < len(fresh._shortlisted._items) < len(sizes)


def test_a_very_long_candidate_is_scored_but_not_remembered(monkeypatch):
    import services.routing.tickets.duplicates as duplicates

    monkeypatch.setattr(duplicates, "SHORTLISTED_BYTES", 80_000)
    similarity = Similarity(TEXTS[:6])
    long_text = prepared_text(report_text("Jalan rusak", " ".join(
        f"kata{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)}"
        for i in range(3000))))
    mine = similarity.char_vector(prepared_text(TEXTS[0]))
    scores = similarity.char_scores(mine, [long_text, prepared_text(TEXTS[1])])
    assert scores[1] == pytest.approx(mine.dot(similarity.char_vector(
        prepared_text(TEXTS[1]))), abs=1e-12)
    assert list(similarity._shortlisted._items) == [prepared_text(TEXTS[1])]
