"""Duplicate detection's pure part: the score of two reports, the thresholds on hand-made
pairs (a report rephrased links; another problem on the same street does not; the same
words about another school never link on their own), which ticket becomes the master, and
what happens to the routing decision of a ticket that may repeat another."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.routing.rules import AgencyRef, Decision
from services.routing.tickets import duplicates
from services.routing.tickets.duplicates import (
    LINK_AT,
    SUGGEST_AT,
    Match,
    judge,
    numbers_conflict,
    numbers_in,
    regency_of,
)

ROAD = ("Jalan rusak berlubang di Nagari Muaro",
        "Jalan kabupaten di depan Pasar Muaro Sijunjung berlubang besar dan aspalnya rusak, "
        "sudah tiga bulan tidak diperbaiki. Banyak pengendara motor jatuh kalau hujan.")


@pytest.fixture(scope="module")
def similarity():
    return duplicates.default_similarity()


def score(similarity, a: tuple[str, str], b: tuple[str, str]) -> float:
    return similarity.similarity(duplicates.report_text(*a), duplicates.report_text(*b))


def outcome(similarity, a, b) -> str:
    return duplicates.pair_outcome(similarity, {"a": {"title": a[0], "body": a[1]},
                                                "b": {"title": b[0], "body": b[1]}})[1]


def test_the_same_complaint_rephrased_is_linked(similarity):
    slang = ("jalan rusak nagari muaro",
             "jln kabupaten di depan pasar muaro sijunjung berlubang besar dan aspalnya "
             "rusak, udah 3 bulan gak diperbaiki. banyak pengendara motor jatuh kalo hujan. "
             "tolong pak")
    reordered = ("Jalan berlubang di Nagari Muaro",
                 "Jalan kabupaten di depan Pasar Muaro Sijunjung berlubang besar, aspalnya "
                 "rusak dan sudah tiga bulan tidak diperbaiki. Kalau hujan banyak pengendara "
                 "motor yang jatuh.")
    assert score(similarity, ROAD, ROAD) == pytest.approx(1.0)
    for other in (slang, reordered):
        assert score(similarity, ROAD, other) >= LINK_AT
        assert outcome(similarity, ROAD, other) == "linked"


def test_another_problem_on_the_same_street_is_not_linked_nor_suggested(similarity):
    drainage = ("Drainase depan Pasar Muaro tersumbat",
                "Saluran air di depan Pasar Muaro Sijunjung tersumbat sampah plastik. Setiap "
                "hujan air menggenang di jalan kabupaten setinggi betis dan masuk ke kios "
                "pedagang.")
    sidewalk = ("Trotoar depan Pasar Muaro dipakai berjualan",
                "Trotoar di sepanjang jalan depan Pasar Muaro Sijunjung habis dipakai pedagang "
                "untuk berjualan dan parkir motor. Pejalan kaki terpaksa berjalan di badan "
                "jalan.")
    for other in (drainage, sidewalk):
        assert score(similarity, ROAD, other) < SUGGEST_AT
        assert outcome(similarity, ROAD, other) == "apart"


def test_the_same_words_naming_other_numbers_are_only_suggested(similarity):
    school_2 = ("Pungutan uang komite di SMPN 2",
                "Sekolah anak saya SMP Negeri 2 Sijunjung memungut uang komite Rp 150.000 per "
                "bulan dan siswa yang belum bayar tidak boleh ikut ujian. Apakah ini "
                "dibenarkan?")
    school_5 = ("Pungutan uang komite di SMPN 5",
                "Sekolah anak saya SMP Negeri 5 Sijunjung memungut uang komite Rp 100.000 per "
                "bulan dan siswa yang belum bayar tidak boleh ambil rapor. Apakah ini "
                "dibenarkan?")
    assert score(similarity, school_2, school_5) >= SUGGEST_AT
    assert outcome(similarity, school_2, school_5) == "suggested"


def test_one_line_messages_are_only_suggested_however_alike(similarity):
    mine = ("PKH", "pkh tahap ini kok blm cair2")
    theirs = ("", "pkh sy ga cair 2 tahap")
    assert score(similarity, mine, theirs) >= SUGGEST_AT
    assert outcome(similarity, mine, theirs) == "suggested"
    assert outcome(similarity, mine, mine) == "suggested"


def test_every_hand_made_pair_lands_where_the_calibration_says(similarity):
    """docs/duplicates.md: near-identical pairs link (heavy typos may only be suggested),
    the same problem told independently is at most suggested, another problem is never
    linked."""
    wrong = []
    for pair in duplicates.read_pairs():
        got = duplicates.pair_outcome(similarity, pair)[1]
        allowed = {"same": {"linked", "suggested"}, "same_event": {"suggested", "apart"},
                   "different": {"suggested", "apart"}}[pair["label"]]
        if got not in allowed:
            wrong.append((pair["label"], pair["note"] or pair["b"]["title"], got))
    linked = sum(duplicates.pair_outcome(similarity, p)[1] == "linked"
                 for p in duplicates.read_pairs() if p["label"] == "same")
    same = sum(p["label"] == "same" for p in duplicates.read_pairs())
    assert wrong == []
    assert linked >= same - 2, "near-identical reports are linked, not left to the admin"


def test_reports_of_different_regencies_are_never_compared():
    assert regency_of("13.03.01.2001") == regency_of("13.03") == "13.03"
    assert regency_of("13.04.02") != regency_of("13.03.02")
    assert regency_of("13") == "13"


def test_numbers_in_conflict_only_when_each_side_names_its_own():
    assert numbers_in("Rp 150.000 di SMPN 02, km 12") == {"150000", "2", "12"}
    assert numbers_in("Rp150.000") == numbers_in("Rp 150.000")
    assert numbers_conflict(numbers_in("SMPN 2"), numbers_in("SMPN 5"))
    assert not numbers_conflict(numbers_in("sudah 3 bulan"), numbers_in("sudah tiga bulan"))
    assert not numbers_conflict(numbers_in("pukul 09.00"), numbers_in("jam 9"))


def at(days: int) -> datetime:
    return datetime(2026, 12, 1, tzinfo=UTC) + timedelta(days=days)


def test_the_master_is_the_earliest_near_identical_open_ticket():
    verdict = judge([Match("LPR-B", 0.97, at(5)), Match("LPR-A", 0.90, at(1)),
                     Match("LPR-C", 0.70, at(0))])
    assert verdict.master.tracking_id == "LPR-A"
    assert verdict.suggestions == ()


def test_near_matches_are_suggestions_most_similar_first_and_never_a_master():
    verdict = judge([Match("LPR-A", 0.65, at(1)), Match("LPR-B", 0.80, at(2)),
                     Match("LPR-C", 0.91, at(3), numbers_conflict=True),
                     Match("LPR-D", 0.40, at(0))])
    assert verdict.master is None
    assert [m.tracking_id for m in verdict.suggestions] == ["LPR-C", "LPR-B", "LPR-A"]
    assert judge([Match("LPR-D", 0.40, at(0))]).held is False


TRIAGE = AgencyRef("ADMIN-NASIONAL", "Admin Nasional SP4N-LAPOR!", "triage")
PUPR = AgencyRef("PUPR-13.03", "Dinas PUPR Kabupaten Sijunjung", "regency", "13.03")


def test_a_ticket_that_may_repeat_another_waits_for_the_national_admin():
    decision = Decision("PUPR", 0.9, PUPR, True, "isi laporan cocok dengan kategori PUPR",
                        suggested=PUPR)
    held = duplicates.hold_for_admin(decision, judge([Match("LPR-A", 0.7, at(0))]), TRIAGE)
    assert (held.auto_dispatch, held.agency, held.suggested) == (False, TRIAGE, PUPR)
    assert "LPR-A (0.70)" in held.explanation
    assert duplicates.hold_for_admin(decision, judge([]), TRIAGE) is decision


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError):
        duplicates.Duplicates(duplicates.Similarity(), link_at=0.5, suggest_at=0.8)
