"""Routing decisions: which category a citizen's text is about, which agency gets the ticket,
and when a national admin has to look first. Also the time zone the resulting deadline is
kept in (workflow.clock_zone), since it follows from the chosen agency."""

from __future__ import annotations

import pytest

from services.routing.rules import (
    AUTO_DISPATCH_CONFIDENCE,
    CATEGORIES,
    TRIAGE_AGENCY,
    AgencyRef,
    Draft,
    classify,
    decide,
    quality_problems,
    region_ancestry,
    valid_region_code,
)
from services.routing.workdays import zone_label
from services.routing.workflow import clock_zone

# --- classification ---------------------------------------------------------


@pytest.mark.parametrize("text,category", [
    ("Jalan rusak berlubang di Nagari Muaro, Sijunjung", "INFRASTRUKTUR"),
    ("Puskesmas tutup saat jam pelayanan", "KESEHATAN"),
    ("E-KTP belum jadi 3 bulan", "KEPENDUDUKAN"),
    ("Bansos PKH tidak cair", "BANSOS"),
    ("sampah menumpuk di pasar", "LINGKUNGAN"),
    ("Guru honorer di SD negeri belum menerima gaji, siswa terlantar", "PENDIDIKAN"),
    ("Jembatan gantung putus, warga terpaksa memutar lewat jalan desa", "INFRASTRUKTUR"),
    ("BPJS ditolak rumah sakit, pasien disuruh bayar obat sendiri", "KESEHATAN"),
])
def test_realistic_reports_are_classified(text, category):
    found = classify(text)
    assert found.category == category
    assert 0 < found.confidence <= 1


@pytest.mark.parametrize("text", [
    "Pelayanan di kantor kecamatan lambat sekali",
    "Petugas meminta uang tambahan tanpa kuitansi",
    "",
    "   ...!!!   ",
])
def test_text_about_nothing_known_has_no_category(text):
    found = classify(text)
    assert found.category == ""
    assert found.confidence == 0


def test_case_and_accents_do_not_matter():
    plain = classify("jalan rusak berlubang")
    assert classify("JALAN RUSAK BERLUBANG!!!").category == plain.category == "INFRASTRUKTUR"
    assert classify("Jálan rúsak berlubáng").category == "INFRASTRUKTUR"


@pytest.mark.parametrize("text", [
    "Tolong kirimkan kipas angin ke balai warga",   # "kip" (education aid) inside "kipas"
    "Teknik pengecatan gedung kelurahan kurang rapi",  # "nik" inside "teknik"
    "Baut pagar balai desa hilang",                  # "bau" inside "baut"
])
def test_keywords_match_whole_words_only(text):
    assert classify(text).category == ""


def test_one_stray_word_is_not_enough_to_skip_a_human():
    assert classify("sampah menumpuk di pasar").confidence < AUTO_DISPATCH_CONFIDENCE


def test_more_evidence_means_more_confidence():
    weak = classify("Jalan rusak")
    strong = classify("Jalan rusak berlubang, aspal terkelupas dan drainase tersumbat")
    assert strong.category == weak.category == "INFRASTRUKTUR"
    assert strong.confidence > weak.confidence
    assert strong.confidence >= AUTO_DISPATCH_CONFIDENCE


def test_mixed_topics_lower_the_confidence():
    pure = classify("Jalan rusak berlubang dan aspal terkelupas")
    mixed = classify("Jalan rusak berlubang dan aspal terkelupas dekat puskesmas dan sekolah")
    assert mixed.category == "INFRASTRUKTUR"
    assert mixed.confidence < pure.confidence


# --- regions ----------------------------------------------------------------


def test_region_ancestry_goes_from_village_up_to_national():
    assert region_ancestry("13.03.01.2001") == ["13.03.01.2001", "13.03.01", "13.03", "13", ""]
    assert region_ancestry("13") == ["13", ""]


# --- decisions --------------------------------------------------------------


class Directory:
    """An in-memory directory: rules map (category, region) to an agency code; the most
    specific region of the report's ancestry wins, "" is the national rule."""

    def __init__(self, agencies: list[AgencyRef], rules: dict[tuple[str, str], str]):
        self.agencies = {a.code: a for a in agencies}
        self.rules = rules

    def agency(self, code: str) -> AgencyRef | None:
        return self.agencies.get(code)

    def handler_for(self, category: str, region_code: str) -> AgencyRef | None:
        for region in region_ancestry(region_code):
            code = self.rules.get((category, region))
            if code:
                return self.agencies[code]
        return None


TRIAGE = AgencyRef(TRIAGE_AGENCY, "Admin Nasional SP4N-LAPOR! (antrean verifikasi)", "triage")
PUPR_SIJUNJUNG = AgencyRef("PUPR-13.03", "Dinas PUPR Kabupaten Sijunjung", "regency", "13.03",
                           "PEMDA-13.03")
DISDUKCAPIL_SIJUNJUNG = AgencyRef("DISDUKCAPIL-13.03", "Disdukcapil Kabupaten Sijunjung",
                                  "regency", "13.03", "PEMDA-13.03")
DISDIK_SIJUNJUNG = AgencyRef("DISDIK-13.03", "Dinas Pendidikan Kabupaten Sijunjung",
                             "regency", "13.03", "PEMDA-13.03")
DINKES_SUMBAR = AgencyRef("DINKES-13", "Dinas Kesehatan Provinsi Sumatera Barat",
                          "provincial", "13", "PEMPROV-13")
BINA_MARGA_SUMBAR = AgencyRef("BINAMARGA-13", "Dinas Bina Marga Provinsi Sumatera Barat",
                              "provincial", "13", "PEMPROV-13")
KEMENSOS = AgencyRef("KEMENSOS", "Kementerian Sosial", "national")
KEMENPU = AgencyRef("KEMENPU", "Kementerian Pekerjaan Umum", "national")


@pytest.fixture
def directory() -> Directory:
    return Directory(
        [TRIAGE, PUPR_SIJUNJUNG, DISDUKCAPIL_SIJUNJUNG, DISDIK_SIJUNJUNG, DINKES_SUMBAR,
         BINA_MARGA_SUMBAR, KEMENSOS, KEMENPU],
        {("INFRASTRUKTUR", "13.03"): "PUPR-13.03",
         ("INFRASTRUKTUR", ""): "KEMENPU",
         ("KEPENDUDUKAN", "13.03"): "DISDUKCAPIL-13.03",
         ("PENDIDIKAN", "13.03"): "DISDIK-13.03",
         ("KESEHATAN", "13"): "DINKES-13",
         ("BANSOS", ""): "KEMENSOS"})


ROAD = Draft(
    title="Jalan rusak berlubang di Nagari Muaro, Sijunjung",
    body="Jalan utama Nagari Muaro berlubang besar dan aspal terkelupas sejak Januari; "
         "dua pengendara motor sudah jatuh.",
    region_code="13.03.01.2001")
CLINIC = Draft(
    title="Puskesmas tutup saat jam pelayanan",
    body="Puskesmas Muaro tutup sejak pukul 10 pagi, pasien lansia pulang tanpa diperiksa "
         "dokter.",
    region_code="13.03")
PKH = Draft(
    title="Bansos PKH tidak cair",
    body="PKH tahap kedua belum cair padahal keluarga kami terdaftar di DTKS sejak 2022.",
    region_code="13.03.01")
UNCLEAR = Draft(
    title="Pelayanan kantor kecamatan lambat",
    body="Antrean di kantor kecamatan sangat panjang dan petugas datang terlambat setiap hari.",
    region_code="13.03")


def with_(draft: Draft, **changes) -> Draft:
    return Draft(**{**draft.__dict__, **changes})


def test_a_clear_report_goes_straight_to_the_regency_agency(directory):
    decision = decide(ROAD, directory)
    assert decision.auto_dispatch is True
    assert decision.agency == PUPR_SIJUNJUNG
    assert decision.category == "INFRASTRUKTUR"
    assert decision.confidence >= AUTO_DISPATCH_CONFIDENCE
    assert PUPR_SIJUNJUNG.name in decision.explanation


def test_without_a_regency_rule_the_province_handles_it(directory):
    decision = decide(CLINIC, directory)
    assert decision.auto_dispatch is True
    assert decision.agency == DINKES_SUMBAR
    assert DINKES_SUMBAR.name in decision.explanation


def test_without_regency_or_province_rule_the_ministry_handles_it(directory):
    decision = decide(PKH, directory)
    assert decision.auto_dispatch is True
    assert decision.agency == KEMENSOS
    assert KEMENSOS.name in decision.explanation


def test_a_region_without_its_own_rule_falls_back_to_the_national_one(directory):
    decision = decide(with_(ROAD, region_code="91.71"), directory)  # Kota Jayapura
    assert decision.agency == KEMENPU


def test_text_matching_no_category_waits_for_the_national_admin(directory):
    decision = decide(UNCLEAR, directory)
    assert decision.category == ""
    assert decision.auto_dispatch is False
    assert decision.agency.code == TRIAGE_AGENCY
    assert "admin nasional" in decision.explanation.lower()


def test_a_category_nobody_handles_waits_for_the_national_admin(directory):
    draft = Draft(title="Sampah menumpuk di pasar",
                  body="Sampah di Pasar Muaro tidak diangkut dua minggu, bau dan limbah "
                       "mengalir ke sungai.",
                  region_code="13.03")
    decision = decide(draft, directory)
    assert decision.category == "LINGKUNGAN"
    assert decision.auto_dispatch is False
    assert decision.agency.code == TRIAGE_AGENCY


def test_triage_works_even_when_the_directory_lacks_the_triage_agency():
    empty = Directory([], {})
    decision = decide(ROAD, empty)
    assert decision.auto_dispatch is False
    assert decision.agency.code == TRIAGE_AGENCY


def test_reporter_category_disagreeing_with_the_text_goes_to_triage(directory):
    decision = decide(with_(ROAD, category="PENDIDIKAN"), directory)
    assert decision.auto_dispatch is False
    assert decision.agency.code == TRIAGE_AGENCY
    assert decision.confidence < AUTO_DISPATCH_CONFIDENCE
    # The admin sees both sides of the disagreement.
    assert "PENDIDIKAN" in decision.explanation
    assert "INFRASTRUKTUR" in decision.explanation


def test_reporter_category_agreeing_with_the_text_is_dispatched(directory):
    decision = decide(with_(ROAD, category="INFRASTRUKTUR"), directory)
    assert decision.auto_dispatch is True
    assert decision.agency == PUPR_SIJUNJUNG


def test_reporter_category_backs_up_weak_text(directory):
    draft = Draft(title="KTP hilang", body="Mohon bantuan mengurus penggantinya secepatnya, "
                                           "saya perlu untuk melamar kerja.",
                  region_code="13.03", category="KEPENDUDUKAN")
    assert classify(f"{draft.title} {draft.body}").confidence < AUTO_DISPATCH_CONFIDENCE
    decision = decide(draft, directory)
    assert decision.auto_dispatch is True
    assert decision.agency == DISDUKCAPIL_SIJUNJUNG


def test_a_too_short_body_is_checked_by_a_human_first(directory):
    decision = decide(with_(ROAD, body="Jalan rusak."), directory)
    assert decision.category == "INFRASTRUKTUR"
    assert decision.auto_dispatch is False
    assert decision.agency.code == TRIAGE_AGENCY
    assert "singkat" in decision.explanation


def test_an_invalid_region_code_is_checked_by_a_human_first(directory):
    decision = decide(with_(ROAD, region_code="13-03"), directory)
    assert decision.auto_dispatch is False
    assert decision.agency.code == TRIAGE_AGENCY


def test_the_agency_the_reporter_asked_for_is_honoured(directory):
    decision = decide(with_(ROAD, target_agency="BINAMARGA-13"), directory)
    assert decision.auto_dispatch is True
    assert decision.agency == BINA_MARGA_SUMBAR
    assert "BINAMARGA-13" in decision.explanation


def test_an_unknown_target_agency_falls_back_to_the_rules(directory):
    decision = decide(with_(ROAD, target_agency="DINAS-TIDAK-ADA"), directory)
    assert decision.agency == PUPR_SIJUNJUNG


def test_a_low_confidence_decision_still_tells_the_admin_who_would_handle_it(directory):
    decision = decide(with_(CLINIC, title="Puskesmas tutup",
                            body="Tutup terus sejak pagi, kami kecewa dengan pelayanannya."),
                      directory)
    assert decision.auto_dispatch is False
    assert decision.agency.code == TRIAGE_AGENCY
    assert DINKES_SUMBAR.name in decision.explanation


def test_quality_problems_name_each_problem():
    assert quality_problems(ROAD) == []
    problems = quality_problems(Draft(title=" ", body="rusak", region_code="1303"))
    assert len(problems) == 3
    assert any("singkat" in p for p in problems)
    assert any("judul" in p for p in problems)
    assert any("wilayah" in p for p in problems)


def test_every_category_has_a_name_and_keywords():
    for code, category in CATEGORIES.items():
        assert category.code == code
        assert category.name
        assert category.keywords
        assert classify(" ".join(category.keywords)).category == code


# --- deadline time zone of the chosen agency --------------------------------


@pytest.mark.parametrize("agency,report_region,label", [
    (PUPR_SIJUNJUNG, "13.03", "WIB"),
    (AgencyRef("PUPR-91.71", "Dinas PUPR Kota Jayapura", "regency", "91.71"), "91.71", "WIT"),
    (AgencyRef("DINKES-51", "Dinas Kesehatan Provinsi Bali", "provincial", "51"), "51.71",
     "WITA"),
    # An agency whose own code is not in the official list: the report's region decides.
    (AgencyRef("UPT-99", "UPT Sementara", "regency", "99.01"), "73.71", "WITA"),
])
def test_deadlines_run_in_the_agencys_local_time(agency, report_region, label):
    assert zone_label(clock_zone(agency, report_region)) == label


@pytest.mark.parametrize("report_region", ["91.71", "51.71", "13.03", "not-a-region"])
def test_the_triage_queue_keeps_jakarta_time(report_region):
    assert zone_label(clock_zone(TRIAGE, report_region)) == "WIB"


@pytest.mark.parametrize("report_region", ["91.71", "51.71"])
def test_a_national_ministry_keeps_jakarta_time_wherever_the_report_is_from(report_region):
    assert zone_label(clock_zone(KEMENSOS, report_region)) == "WIB"


def test_a_region_code_with_a_trailing_newline_is_not_one():
    assert valid_region_code("13.03")
    assert not valid_region_code("13.03\n")
    assert not valid_region_code("13.03 ")
