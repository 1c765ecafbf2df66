"""Routing decisions: given what the classifier read (category, subcategory, confidence,
runners-up) which agency gets the ticket by the directory's rules, when a national admin has
to look first, and how the decision explains itself. Also the time zone the resulting
deadline is kept in (workflow.clock_zone), since it follows from the chosen agency. The
classifier itself is tested in test_classifier*.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from services.routing.directory.taxonomy import parse
from services.routing.rules import (
    AUTO_DISPATCH_CONFIDENCE,
    TRIAGE_AGENCY,
    AgencyRef,
    Draft,
    decide,
    quality_problems,
    region_ancestry,
    valid_region_code,
)
from services.routing.workdays import zone_label
from services.routing.workflow import clock_zone

TAXONOMY = parse(yaml.safe_load((Path(__file__).resolve().parents[3] / "services" / "routing"
                                 / "directory" / "categories.yaml").read_text())["categories"])


@dataclass(frozen=True)
class Read:
    """What a classifier read in a report."""

    category: str
    subcategory: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...] = ()
    model_version: str = "test-1"

# --- regions ----------------------------------------------------------------


def test_region_ancestry_goes_from_village_up_to_national():
    assert region_ancestry("13.03.01.2001") == ["13.03.01.2001", "13.03.01", "13.03", "13", ""]
    assert region_ancestry("13") == ["13", ""]


# --- decisions --------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    agency: AgencyRef
    code: str
    region: str

    def describe(self) -> str:
        return f"{self.code} {self.region or 'nasional'} → {self.agency.name}"


class Directory:
    """An in-memory directory: rules map (category or subcategory, region) to an agency
    code; subcategory rules first, the most specific region of the ancestry wins."""

    def __init__(self, agencies: list[AgencyRef], rules: dict[tuple[str, str], str]):
        self.agencies = {a.code: a for a in agencies}
        self.rules = rules

    def agency(self, code: str) -> AgencyRef | None:
        return self.agencies.get(code)

    def categories(self):
        return TAXONOMY

    def rule_for(self, category: str, subcategory: str, region_code: str) -> Rule | None:
        for code in filter(None, (subcategory, category)):
            for region in region_ancestry(region_code):
                agency = self.rules.get((code, region))
                if agency:
                    return Rule(self.agencies[agency], code, region)
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
        {("PUPR", "13.03"): "PUPR-13.03",
         ("PUPR", ""): "KEMENPU",
         ("PUPR.JALAN_NASIONAL", ""): "KEMENPU",
         ("KEPENDUDUKAN", "13.03"): "DISDUKCAPIL-13.03",
         ("PENDIDIKAN", "13.03"): "DISDIK-13.03",
         ("KESEHATAN", "13"): "DINKES-13",
         ("SOSIAL", ""): "KEMENSOS"})


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


SURE_ROAD = Read("PUPR", "PUPR.JALAN", 0.93, (("LINGKUNGAN", 0.03), ("PERHUBUNGAN", 0.02)))


def test_a_clear_report_goes_straight_to_the_regency_agency(directory):
    decision = decide(ROAD, directory, SURE_ROAD)
    assert (decision.agency, decision.auto_dispatch) == (PUPR_SIJUNJUNG, True)
    assert (decision.category, decision.subcategory) == ("PUPR", "PUPR.JALAN")
    assert decision.rule == "PUPR 13.03 → Dinas PUPR Kabupaten Sijunjung"
    assert "PEKERJAAN UMUM DAN PENATAAN RUANG" in decision.explanation
    assert decision.top == (("PUPR", 0.93), ("LINGKUNGAN", 0.03), ("PERHUBUNGAN", 0.02))


def test_the_decision_detail_keeps_what_staff_need_to_check_it(directory):
    detail = decide(ROAD, directory, SURE_ROAD).detail()
    assert detail == {
        "category": "PUPR", "subcategory": "PUPR.JALAN", "confidence": 0.93,
        "top": [{"category": "PUPR", "name": "PEKERJAAN UMUM DAN PENATAAN RUANG",
                 "confidence": 0.93},
                {"category": "LINGKUNGAN", "name": "LINGKUNGAN HIDUP DAN KEHUTANAN",
                 "confidence": 0.03},
                {"category": "PERHUBUNGAN", "name": "PERHUBUNGAN", "confidence": 0.02}],
        "rule": "PUPR 13.03 → Dinas PUPR Kabupaten Sijunjung", "model_version": "test-1",
        "auto_dispatch": True, "threshold": AUTO_DISPATCH_CONFIDENCE,
        "suggested_agency": "PUPR-13.03"}


def test_a_subcategory_rule_wins_over_the_categorys(directory):
    decision = decide(ROAD, directory, Read("PUPR", "PUPR.JALAN_NASIONAL", 0.9))
    assert decision.agency == KEMENPU
    assert decision.rule.startswith("PUPR.JALAN_NASIONAL nasional")


def test_without_a_regency_rule_the_province_handles_it(directory):
    decision = decide(CLINIC, directory, Read("KESEHATAN", "KESEHATAN.PUSKESMAS", 0.9))
    assert decision.agency == DINKES_SUMBAR


def test_without_regency_or_province_rule_the_ministry_handles_it(directory):
    decision = decide(PKH, directory, Read("SOSIAL", "SOSIAL.BANSOS", 0.9))
    assert decision.agency == KEMENSOS


def test_below_the_threshold_a_human_verifies_first_but_knows_who_would_handle_it(directory):
    decision = decide(UNCLEAR, directory, Read("PUPR", "PUPR.TATA_RUANG", 0.41))
    assert (decision.agency, decision.auto_dispatch) == (TRIAGE, False)
    assert decision.suggested == PUPR_SIJUNJUNG
    assert "keyakinan di bawah 0.60" in decision.explanation
    assert decide(UNCLEAR, directory, Read("PUPR", "PUPR.TATA_RUANG", 0.41),
                  threshold=0.4).auto_dispatch, "the threshold is a setting"


def test_a_category_nobody_handles_waits_for_the_national_admin(directory):
    decision = decide(ROAD, directory, Read("AGAMA", "AGAMA.NIKAH", 0.95))
    assert (decision.agency, decision.auto_dispatch, decision.suggested) == (TRIAGE, False,
                                                                            None)
    assert "antrean verifikasi" in decision.explanation


def test_triage_works_even_when_the_directory_lacks_the_triage_agency():
    empty = Directory([], {})
    decision = decide(ROAD, empty, SURE_ROAD)
    assert decision.agency.code == TRIAGE_AGENCY and not decision.auto_dispatch


def test_reporter_category_disagreeing_with_the_text_goes_to_triage(directory):
    decision = decide(with_(ROAD, category="PENDIDIKAN"), directory, SURE_ROAD)
    assert (decision.category, decision.auto_dispatch) == ("PENDIDIKAN", False)
    assert decision.confidence <= 0.5
    assert "berbeda dengan isi laporan" in decision.explanation


def test_reporter_category_agreeing_with_the_text_backs_up_weak_text(directory):
    decision = decide(with_(ROAD, category="PUPR"), directory, Read("PUPR", "PUPR.JALAN", 0.5))
    assert decision.auto_dispatch and decision.confidence >= 0.9
    decision = decide(with_(ROAD, category="PUPR.JALAN_NASIONAL"), directory,
                      Read("PUPR", "PUPR.JALAN", 0.7))
    assert (decision.subcategory, decision.agency) == ("PUPR.JALAN_NASIONAL", KEMENPU), (
        "the reporter's subcategory counts when the category agrees")


def test_a_too_short_body_is_checked_by_a_human_first(directory):
    decision = decide(with_(ROAD, body="Jalan rusak."), directory, SURE_ROAD)
    assert not decision.auto_dispatch
    assert "isi laporan terlalu singkat" in decision.explanation


def test_an_invalid_region_code_is_checked_by_a_human_first(directory):
    decision = decide(with_(ROAD, region_code="13.3"), directory, SURE_ROAD)
    assert not decision.auto_dispatch


def test_the_agency_the_reporter_asked_for_is_honoured(directory):
    decision = decide(with_(ROAD, target_agency="KEMENPU"), directory, SURE_ROAD)
    assert decision.agency == KEMENPU
    assert "dipilih pelapor" in decision.rule


def test_an_unknown_target_agency_falls_back_to_the_rules(directory):
    decision = decide(with_(ROAD, target_agency="NOPE-1"), directory, SURE_ROAD)
    assert decision.agency == PUPR_SIJUNJUNG


def test_quality_problems_name_each_problem():
    assert quality_problems(Draft("", "pendek", "1")) == [
        "isi laporan terlalu singkat", "judul kosong", "kode wilayah tidak valid"]
    assert quality_problems(ROAD) == []


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
