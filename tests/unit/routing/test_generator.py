"""The national directory as data: the generator's offices for every province and
regency/city, the rules and which one applies, the directory file operators edit (written,
read back, refused with a message saying what to fix) and its export. Pure: no database."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from services.infra.regions import Region, read_regions_csv
from services.routing.directory import document, generator, matching, taxonomy
from services.routing.directory.document import Agency, DirectoryError
from services.routing.rules import AgencyRef

REGIONS = [Region(code, name, level) for code, name, level in (
    ("11", "Aceh", "provinsi"), ("11.01", "Kabupaten Aceh Selatan", "kabupaten_kota"),
    ("13", "Sumatera Barat", "provinsi"), ("13.02", "Kabupaten Solok", "kabupaten_kota"),
    ("13.03", "Kabupaten Sijunjung", "kabupaten_kota"),
    ("13.03.01", "Kamang Baru", "kecamatan"),
    ("13.10", "Kabupaten Dharmasraya", "kabupaten_kota"),
    ("13.72", "Kota Solok", "kabupaten_kota"),
    ("31", "Daerah Khusus Ibukota Jakarta", "provinsi"),
    ("31.71", "Kota Administrasi Jakarta Pusat", "kabupaten_kota"),
    ("91", "Papua", "provinsi"), ("91.03", "Kabupaten Jayapura", "kabupaten_kota"),
    ("91.71", "Kota Jayapura", "kabupaten_kota"),
)]
REGENCIES = [r.code for r in REGIONS if r.level == "kabupaten_kota"]


def expanded(regions=REGIONS) -> document.Directory:
    """The generated directory as `directory load` reads it: written, parsed, expanded."""
    text = document.dump(generator.generate(regions))
    return document.expand(document.load_text(text, "national.yaml"))


@pytest.fixture(scope="module")
def directory() -> document.Directory:
    return expanded()


def resolve(directory: document.Directory, category: str, subcategory: str,
            region: str) -> Agency | None:
    """The agency the rules give, the way routing's directory matches them."""
    for key in matching.rule_keys(category, subcategory, region):
        code = directory.rules.get(key)
        if code is not None and directory.agencies[code].active:
            return directory.agencies[code]
    return None


def parents(directory: document.Directory, code: str) -> list[str]:
    chain = []
    while directory.agencies[code].parent_code:
        code = directory.agencies[code].parent_code
        chain.append(code)
    return chain


# -- offices ------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, name", [
    ("DINKES-91.71", "Dinas Kesehatan Kota Jayapura"),
    ("DINKES-91", "Dinas Kesehatan Provinsi Papua"),
    ("PUPR-13.03", "Dinas Pekerjaan Umum dan Penataan Ruang Kabupaten Sijunjung"),
    ("PEMDA-13.03", "Pemerintah Kabupaten Sijunjung"),
    ("PEMPROV-13", "Pemerintah Provinsi Sumatera Barat"),
    # Aceh's own offices drop "Provinsi".
    ("PEMPROV-11", "Pemerintah Aceh"),
    ("DINKES-11", "Dinas Kesehatan Aceh"),
    ("PDAM-13.03", "Perumda Air Minum Kabupaten Sijunjung"),
    ("RSUD-91.03", "Rumah Sakit Umum Daerah Kabupaten Jayapura"),
    ("KEMENAG-13.03", "Kantor Kementerian Agama Kabupaten Sijunjung"),
    ("KEMENAG-13", "Kantor Wilayah Kementerian Agama Provinsi Sumatera Barat"),
    ("BPN-91.71", "Kantor Pertanahan Kota Jayapura"),
    ("BPN-13", "Kantor Wilayah Badan Pertanahan Nasional Provinsi Sumatera Barat"),
    # The police leave out Kabupaten; a city beside a regency of the same name is "… Kota".
    ("POLRI-13.03", "Polres Sijunjung"),
    ("POLRI-13.02", "Polres Solok"),
    ("POLRI-13.72", "Polres Solok Kota"),
    ("POLRI-91", "Polda Papua"),
    ("ESDM-13", "Dinas Energi dan Sumber Daya Mineral Provinsi Sumatera Barat"),
    ("DISHUT-91", "Dinas Kehutanan Provinsi Papua"),
    # Jakarta's administrative cities have suku dinas of the province's dinas.
    ("DINKES-31.71", "Suku Dinas Kesehatan Kota Administrasi Jakarta Pusat"),
    ("DINKES-31", "Dinas Kesehatan Provinsi DKI Jakarta"),
    ("POLRI-31", "Polda Metro Jaya"),
    ("POLRI-31.71", "Polres Metro Jakarta Pusat"),
    ("PDAM-31", "Perumda Air Minum Jaya"),
    ("KEMENPU", "Kementerian Pekerjaan Umum"),
    ("BPJS-KESEHATAN", "BPJS Kesehatan"),
    ("ADMIN-NASIONAL", "Admin Nasional SP4N-LAPOR! (antrean verifikasi)"),
])
def test_offices_are_named_as_indonesians_name_them(directory, code, name):
    assert directory.agencies[code].name == name


def test_every_regency_and_province_has_the_standard_offices(directory):
    regency_kinds = [o for o in generator.OFFICE_KINDS if o.regency]
    province_kinds = [o for o in generator.OFFICE_KINDS if o.province]
    for region in REGIONS:
        kinds = {"kabupaten_kota": regency_kinds, "provinsi": province_kinds}.get(region.level)
        for office in kinds or ():
            template = office.regency_code if "." in region.code else office.province_code
            code = template.format(kind=office.kind, code=region.code)
            assert code in directory.agencies, f"{region.name} has no {office.kind}"
            assert directory.agencies[code].region_code == region.code
    # Districts and villages have no offices of their own.
    assert not [a for a in directory.agencies.values() if a.region_code == "13.03.01"]


@pytest.mark.parametrize("code, chain", [
    ("DINKES-91.71", ["DINKES-91", "KEMENKES"]),
    ("PUPR-13.03", ["PUPR-13", "KEMENPU"]),
    ("POLRI-13.72", ["POLRI-13", "POLRI"]),
    ("DISDUKCAPIL-13.03", ["DISDUKCAPIL-13", "DITJEN-DUKCAPIL", "KEMENDAGRI"]),
    ("PDAM-13.03", ["PEMDA-13.03", "PEMPROV-13", "KEMENDAGRI"]),
    ("RSUD-13.03", ["DINKES-13.03", "DINKES-13", "KEMENKES"]),
    ("IMIGRASI", ["KEMENIMIPAS"]),
])
def test_an_office_escalates_to_its_province_office_then_the_ministry(directory, code, chain):
    assert parents(directory, code) == chain


def test_every_agency_escalates_to_a_national_body_and_every_rule_reaches_an_active_one(
        directory):
    for agency in directory.agencies.values():
        top = (parents(directory, agency.code) or [agency.code])[-1]
        assert directory.agencies[top].level in ("national", "triage"), agency
    for (code, region), agency in directory.rules.items():
        assert directory.agencies[agency].active, (code, region, agency)


def test_every_category_and_subcategory_reaches_an_agency_in_every_regency(directory):
    national = taxonomy.national()
    for region in REGENCIES:
        for category in national:
            found = resolve(directory, category.code, "", region)
            assert found is not None, (category.code, region)
        # A category goes to the regency's own office, but for the province's matters
        # (energy and mining) and the civil service agency (netralitas ASN).
        for category in national.top_level():
            found = resolve(directory, category.code, "", region)
            if category.code == "ENERGI":
                assert found.code == f"ESDM-{region.split('.')[0]}"
            elif category.code == "NETRALITAS_ASN":
                assert found.code == "BKN"
            else:
                assert found.region_code == region, (category.code, region, found)


@pytest.mark.parametrize("category, subcategory, region, agency", [
    ("KESEHATAN", "KESEHATAN.PUSKESMAS", "91.71", "DINKES-91.71"),
    ("KESEHATAN", "KESEHATAN.PUSKESMAS", "91.71.01", "DINKES-91.71"),  # a district in it
    ("KESEHATAN", "KESEHATAN.RUMAH_SAKIT", "13.03", "RSUD-13.03"),
    ("KESEHATAN", "KESEHATAN.RUMAH_SAKIT", "13", "DINKES-13"),
    ("KESEHATAN", "KESEHATAN.BPJS", "91.71", "BPJS-KESEHATAN"),
    ("KESEHATAN", "KESEHATAN.BPJS", "11.01", "BPJS-KESEHATAN"),
    ("PUPR", "PUPR.JALAN_NASIONAL", "13.03", "BPJN"),
    ("PUPR", "PUPR.JALAN", "13.03", "PUPR-13.03"),
    ("PUPR", "PUPR.AIR_MINUM", "13.03", "PDAM-13.03"),
    ("PUPR", "PUPR.AIR_MINUM", "31.71", "PDAM-31"),  # PAM Jaya serves all of Jakarta
    ("PUPR", "PUPR.PERUMAHAN", "13.03", "PERKIM-13.03"),
    ("KETENAGAKERJAAN", "KETENAGAKERJAAN.BPJS_TK", "13.03", "BPJS-KETENAGAKERJAAN"),
    ("ENERGI", "ENERGI.LISTRIK", "91.03", "PLN"),
    ("ENERGI", "ENERGI.BBM_GAS", "13.03", "PERTAMINA"),
    ("ENERGI", "ENERGI.TAMBANG", "13.03", "ESDM-13"),
    ("TRANTIBUM", "TRANTIBUM.KEPOLISIAN", "13.72", "POLRI-13.72"),
    ("TRANTIBUM", "TRANTIBUM.NARKOBA", "13.03", "POLRI-13.03"),
    ("TRANTIBUM", "TRANTIBUM.NARKOBA", "", "BNN"),
    ("TRANTIBUM", "TRANTIBUM.KETERTIBAN", "13.03", "SATPOLPP-13.03"),
    ("TRANTIBUM", "TRANTIBUM.BENCANA", "13.03", "BPBD-13.03"),
    ("POLHUK", "POLHUK.PERTANAHAN", "91.71", "BPN-91.71"),
    ("POLHUK", "POLHUK.KEIMIGRASIAN", "13.03", "IMIGRASI"),
    ("POLHUK", "POLHUK.PEMILU", "13.03", "BAWASLU"),
    ("POLHUK", "POLHUK.KORUPSI", "13.03", "INSPEKTORAT-13.03"),
    ("POLHUK", "POLHUK.KORUPSI", "", "KPK"),
    ("AGAMA", "AGAMA.NIKAH", "13.03", "KEMENAG-13.03"),
    ("AGAMA", "AGAMA.HAJI_UMRAH", "91", "KEMENAG-91"),
    ("KONSUMEN", "KONSUMEN.PANGAN", "13.03", "BPOM"),
    ("NETRALITAS_ASN", "NETRALITAS_ASN.KAMPANYE", "13.03", "BKN"),
    ("PERTANIAN", "PERTANIAN.PERIKANAN", "13.03", "DISKAN-13.03"),
    ("PERTANIAN", "PERTANIAN.PUPUK", "13.03", "DISTAN-13.03"),
    ("PERHUBUNGAN", "PERHUBUNGAN.KERETA", "13.03", "KEMENHUB"),
    ("PERHUBUNGAN", "PERHUBUNGAN.UDARA_LAUT", "91.71", "KEMENHUB"),
    ("PERHUBUNGAN", "PERHUBUNGAN.ANGKUTAN", "91.71", "DISHUB-91.71"),
    ("LINGKUNGAN", "LINGKUNGAN.HUTAN", "13.03", "DISHUT-13"),
    ("LINGKUNGAN", "LINGKUNGAN.SAMPAH", "13.03", "DLH-13.03"),
    ("EKONOMI", "EKONOMI.PAJAK", "13.03", "BAPENDA-13.03"),
    ("EKONOMI", "EKONOMI.PERBANKAN", "13.03", "OJK"),
    ("DESA", "DESA.TRANSMIGRASI", "91.03", "KEMENTRANS"),
    ("DESA", "DESA.DANA_DESA", "91.03", "DPMD-91.03"),
    ("LAINNYA", "LAINNYA.UMUM", "13.03", "PEMDA-13.03"),
    ("LAINNYA", "", "", "ADMIN-NASIONAL"),
    ("KESEHATAN", "", "99.01", "KEMENKES"),  # a region nobody has offices for
])
def test_a_report_goes_to_the_body_whose_matter_it_is(directory, category, subcategory,
                                                      region, agency):
    assert resolve(directory, category, subcategory, region).code == agency


# -- which rule applies ---------------------------------------------------------------------------

def ref(code: str) -> AgencyRef:
    return AgencyRef(code, code, "regency")


def test_subcategory_rules_come_first_then_the_category_each_most_specific_region_first():
    keys = matching.rule_keys("KESEHATAN", "KESEHATAN.BPJS", "13.03.01")
    assert keys == [("KESEHATAN.BPJS", "13.03.01"), ("KESEHATAN.BPJS", "13.03"),
                    ("KESEHATAN.BPJS", "13"), ("KESEHATAN.BPJS", ""),
                    ("KESEHATAN", "13.03.01"), ("KESEHATAN", "13.03"), ("KESEHATAN", "13"),
                    ("KESEHATAN", "")]
    # A subcategory code alone stands for itself and its category.
    assert matching.rule_keys("KESEHATAN.BPJS", "", "13") == matching.rule_keys(
        "", "KESEHATAN.BPJS", "13") == keys[2:4] + keys[6:]
    found = [("KESEHATAN", "", ref("KEMENKES")), ("KESEHATAN", "13", ref("DINKES-13")),
             ("KESEHATAN.BPJS", "", ref("BPJS-KESEHATAN")),
             ("KESEHATAN", "13.03", ref("DINKES-13.03")),
             ("KESEHATAN.BPJS", "13", ref("DINKES-13")),  # an agency counts once, at its best
             ("PUPR", "13.03", ref("PUPR-13.03"))]  # another category: not a candidate
    ordered = matching.ordered(found, keys, {"13": "Sumatera Barat"})
    assert [m.agency.code for m in ordered] == ["DINKES-13", "BPJS-KESEHATAN", "DINKES-13.03",
                                               "KEMENKES"]
    assert ordered[0].describe() == "KESEHATAN.BPJS Sumatera Barat (13) → DINKES-13"
    assert ordered[1].describe() == "KESEHATAN.BPJS nasional → BPJS-KESEHATAN"


def test_an_inactive_office_passes_the_report_to_the_next_rule(directory):
    closed = replace(directory, agencies={**directory.agencies, "DINKES-91.71": replace(
        directory.agencies["DINKES-91.71"], active=False)})
    assert resolve(closed, "KESEHATAN", "KESEHATAN.PUSKESMAS", "91.71").code == "DINKES-91"


# -- the file -------------------------------------------------------------------------------------

def test_the_written_file_reads_back_as_the_same_data_with_region_codes_kept_as_text():
    data = generator.generate(REGIONS)
    text = document.dump(data)
    assert yaml.safe_load(text) == data
    assert "'13.10': Kabupaten Dharmasraya" in text  # quoted: unquoted YAML reads 13.1
    # Readable: one line per region, office kind, agency or rule, not one per office.
    assert len(text.splitlines()) < 400


BASE = """\
format: lapor-directory/1
agencies:
  - {code: ADMIN-NASIONAL, name: Admin Nasional, level: triage}
  - {code: KEMENKES, name: Kementerian Kesehatan, level: national}
"""


@pytest.mark.parametrize("extra, words", [
    ("rule: []\n", "unknown section 'rule'"),
    ("regions: {13.10: Kabupaten Dharmasraya}\n", "must be quoted"),
    ("regions: {'13.3': Kabupaten Sijunjung}\n", "not a Kemendagri code"),
    ("offices:\n  - {kind: DINKES, regency: 'Dinas Kesehatan {kota}', handles: [KESEHATAN]}\n",
     "unknown placeholder {kota}"),
    ("offices:\n  - {kind: DINKES, handles: [KESEHATAN]}\n", "give a name template"),
    ("offices:\n  - {kind: DINKES, regency: 'Dinas {region}', handles: [KESEHATAN.GIGI]}\n"
     "regions: {'13.03': Kabupaten Sijunjung}\n", "handles KESEHATAN.GIGI"),
    ("rules:\n  - {category: KESEHATAN, region: '', agency: KEMENKESS}\n",
     "goes to KEMENKESS, which is not an agency of this file"),
    ("rules:\n  - {category: PERPAJAKAN, region: '', agency: KEMENKES}\n",
     "PERPAJAKAN is neither a national category"),
    ("rules:\n  - {category: KESEHATAN, agency: KEMENKES}\n", "region is required"),
    ("categories:\n  - {code: KESEHATAN, name: Kesehatan}\n", "is a national category"),
    ("categories:\n  - {code: MUDIK.SEKAT, name: Penyekatan, parent: MUDIK}\n",
     "parent MUDIK is not a category"),
])
def test_a_file_that_cannot_be_loaded_is_refused_saying_where_and_what_to_fix(extra, words):
    with pytest.raises(DirectoryError) as raised:
        document.expand(document.load_text(BASE + extra, "mine.yaml"), source="mine.yaml")
    assert words in str(raised.value)
    assert all(p.startswith("mine.yaml") for p in raised.value.problems)


@pytest.mark.parametrize("agencies, words", [
    ("  - {code: KEMENKES, name: Kementerian Kesehatan, level: national, parent: KEMENKES}\n",
     "lead back to itself"),
    ("  - {code: KEMENKES, name: Kementerian Kesehatan, level: national, parent: BPOM}\n"
     "  - {code: BPOM, name: Badan POM, level: national, parent: KEMENKES}\n",
     "KEMENKES → BPOM → KEMENKES"),
    ("  - {code: DINKES-13, name: Dinas Kesehatan, level: provincial, region: '13.03'}\n",
     "must be a province code"),
    ("  - {code: KEMENKES, level: national}\n", "name is required"),
    ("  - {code: KEMENKES, name: Kementerian Kesehatan, level: kementerian}\n",
     "not one of national"),
])
def test_agencies_that_cannot_be_escalated_or_placed_are_refused(agencies, words):
    text = ("format: lapor-directory/1\nagencies:\n"
            "  - {code: ADMIN-NASIONAL, name: Admin Nasional, level: triage}\n" + agencies)
    with pytest.raises(DirectoryError) as raised:
        document.expand(document.load_text(text))
    assert words in str(raised.value)


def test_a_file_without_the_triage_queue_is_refused():
    with pytest.raises(DirectoryError, match="ADMIN-NASIONAL"):
        document.expand(document.load_text(
            "format: lapor-directory/1\nagencies:\n"
            "  - {code: KEMENKES, name: Kementerian Kesehatan, level: national}\n"))


def test_invalid_yaml_is_refused_naming_the_line():
    with pytest.raises(DirectoryError, match="mine.yaml: line 2: not valid YAML"):
        document.load_text("format: lapor-directory/1\n\tagencies: []\n", "mine.yaml")


# -- export ---------------------------------------------------------------------------------

def office_names() -> dict[str, str]:
    return {r.code: generator.office_region_name(r) for r in REGIONS
            if r.level in ("provinsi", "kabupaten_kota")}


def test_the_export_of_a_changed_directory_loads_back_as_exactly_that_directory(directory):
    changed = replace(directory, agencies=dict(directory.agencies), rules=dict(directory.rules),
                      categories={"MUDIK": taxonomy.Category("MUDIK", "PENIADAAN MUDIK"),
                                  "MUDIK.SEKAT": taxonomy.Category("MUDIK.SEKAT", "Penyekatan",
                                                                   "MUDIK")})
    changed.agencies["DINKES-91.71"] = replace(changed.agencies["DINKES-91.71"],
                                               name="Dinas Kesehatan Kota Jayapura (baru)")
    changed.agencies["DLH-13.03"] = replace(changed.agencies["DLH-13.03"], active=False)
    changed.agencies["UPT-PUSKESMAS-13.03"] = Agency(
        "UPT-PUSKESMAS-13.03", "UPT Puskesmas Kamang Baru", "regency", "13.03.01",
        "DINKES-13.03")
    changed.rules[("MUDIK", "")] = "KEMENHUB"
    del changed.rules[("KESEHATAN", "13.02")]
    text = document.dump(document.compress(changed, generator.OFFICE_KINDS, office_names()))
    assert document.expand(document.load_text(text)) == changed
    # Written as the kinds of office plus the differences, not office by office.
    data = yaml.safe_load(text)
    assert len(data["offices"]) == len(generator.OFFICE_KINDS)
    assert {"code": "DLH-13.03", "active": False} in data["agencies"]
    assert {"category": "KESEHATAN", "region": "13.02", "agency": None} in data["rules"]


def test_a_directory_no_kind_of_office_describes_is_exported_agency_by_agency():
    small = document.expand(document.load_text(BASE + "rules:\n"
                                               "  - {category: KESEHATAN, region: '',"
                                               " agency: KEMENKES}\n"))
    data = document.compress(small, generator.OFFICE_KINDS, office_names())
    assert data["offices"] == [] and len(data["agencies"]) == 2
    assert document.expand(document.load_text(document.dump(data))) == small


# -- the national list ---------------------------------------------------------------------------

@pytest.mark.shared_data
def test_the_national_directory_covers_all_514_regencies_and_38_provinces(shared_data):
    regions = read_regions_csv(shared_data / "wilayah-kepmendagri-2025.csv")
    national = expanded(regions)
    regencies = [r.code for r in regions if r.level == "kabupaten_kota"]
    provinces = [r.code for r in regions if r.level == "provinsi"]
    assert (len(regencies), len(provinces)) == (514, 38)
    for kind in ("PEMDA", "PUPR", "DINKES", "DISDIK", "DISDUKCAPIL", "DINSOS", "DLH", "DISHUB",
                 "DISNAKER", "DISKOMINFO", "SATPOLPP", "DISTAN", "DISDAG", "DISKOPUKM", "DPMD",
                 "BAPENDA", "KESBANGPOL", "BPBD", "PERKIM", "RSUD", "KEMENAG", "BPN", "POLRI",
                 "INSPEKTORAT", "DISKAN"):
        missing = [r for r in regencies if f"{kind}-{r}" not in national.agencies
                   or not national.agencies[f"{kind}-{r}"].active]
        assert not missing, f"no active {kind} in {missing[:5]}"
    # Every regency's own drinking-water company, but in Jakarta (PAM Jaya).
    assert sum(national.agencies[f"PDAM-{r}"].active for r in regencies) == 514 - 6
    for (code, region), agency in national.rules.items():
        assert national.agencies[agency].active, (code, region, agency)
    all_codes = list(taxonomy.national())
    for region in regencies:
        for category in all_codes:
            assert resolve(national, category.code, "", region) is not None
        assert resolve(national, "KESEHATAN", "KESEHATAN.BPJS", region).code == \
            "BPJS-KESEHATAN"
        assert resolve(national, "KESEHATAN", "KESEHATAN.PUSKESMAS", region).code == \
            f"DINKES-{region}"
    names = [a.name for a in national.agencies.values()]
    assert len(names) == len(set(names)), "two agencies with one name"
