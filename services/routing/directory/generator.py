"""The national directory from the region list: the standard offices of every province and
regency/city (dinas, badan, the regional offices of ministries, police, the regency's
hospital and water company), the national ministries and agencies (K/L) and state companies
as fallbacks, and the rules saying who handles what where. Plain Python: regions in,
directory file data out (document.dump writes it).

Every category goes to the regency/city office of its kind, with the province's office and
then the ministry as fallbacks; subcategories that are another body's matter (national
roads, BPJS, electricity, land, immigration, elections, ...) have rules of their own, which
come first."""

from __future__ import annotations

from collections.abc import Iterable

from services.infra.regions import Region
from services.routing.directory.document import FORMAT, TRIAGE_AGENCY, OfficeKind, office_data


def _office(kind: str, handles: Iterable[str], *, regency: str = "", province: str = "",
            parent: str = "", **extra: str) -> OfficeKind:
    return OfficeKind(kind=kind, regency=regency, province=province, parent=parent,
                      handles=tuple(handles), **extra)


# The offices every province and regency/city has, named as Indonesians name them
# ("Dinas Kesehatan Kota Jayapura", "Dinas Kesehatan Provinsi Papua"). Regency offices report
# to the same kind of office of their province, and that to the ministry (`parent`).
OFFICE_KINDS: tuple[OfficeKind, ...] = (
    _office("PEMDA", ["LAINNYA"], regency="Pemerintah {region}", province="Pemerintah {region}",
            parent="KEMENDAGRI", province_code="PEMPROV-{code}"),
    _office("PUPR", ["PUPR", "PUPR.TATA_RUANG"],
            regency="Dinas Pekerjaan Umum dan Penataan Ruang {region}",
            province="Dinas Pekerjaan Umum dan Penataan Ruang {region}", parent="KEMENPU"),
    _office("PERKIM", ["PUPR.PERUMAHAN"],
            regency="Dinas Perumahan dan Kawasan Permukiman {region}",
            province="Dinas Perumahan dan Kawasan Permukiman {region}", parent="KEMENPKP"),
    # The regency's drinking-water company (PDAM), owned by the regency or city.
    _office("PDAM", ["PUPR.AIR_MINUM"], regency="Perumda Air Minum {region}",
            regency_parent="PEMDA-{code}"),
    _office("DINKES", ["KESEHATAN"], regency="Dinas Kesehatan {region}",
            province="Dinas Kesehatan {region}", parent="KEMENKES"),
    _office("RSUD", ["KESEHATAN.RUMAH_SAKIT"], regency="Rumah Sakit Umum Daerah {region}",
            regency_parent="DINKES-{code}"),
    _office("DISDIK", ["PENDIDIKAN", "PENDIDIKAN.KEBUDAYAAN"],
            regency="Dinas Pendidikan dan Kebudayaan {region}",
            province="Dinas Pendidikan {region}", parent="KEMENDIKDASMEN"),
    _office("DISDUKCAPIL", ["KEPENDUDUKAN"],
            regency="Dinas Kependudukan dan Pencatatan Sipil {region}",
            province="Dinas Kependudukan dan Pencatatan Sipil {region}",
            parent="DITJEN-DUKCAPIL"),
    _office("DISNAKER", ["KETENAGAKERJAAN"], regency="Dinas Tenaga Kerja {region}",
            province="Dinas Tenaga Kerja dan Transmigrasi {region}", parent="KEMNAKER"),
    _office("DINSOS", ["SOSIAL"], regency="Dinas Sosial {region}",
            province="Dinas Sosial {region}", parent="KEMENSOS"),
    _office("DISHUB", ["PERHUBUNGAN"], regency="Dinas Perhubungan {region}",
            province="Dinas Perhubungan {region}", parent="KEMENHUB"),
    _office("DLH", ["LINGKUNGAN"], regency="Dinas Lingkungan Hidup {region}",
            province="Dinas Lingkungan Hidup {region}", parent="KLH"),
    # Forests are the province's matter (UU 23/2014): no regency office.
    _office("DISHUT", ["LINGKUNGAN.HUTAN"], province="Dinas Kehutanan {region}",
            parent="KEMENHUT"),
    _office("DISKOMINFO", ["TIK"], regency="Dinas Komunikasi dan Informatika {region}",
            province="Dinas Komunikasi dan Informatika {region}", parent="KOMDIGI"),
    _office("SATPOLPP", ["TRANTIBUM"], regency="Satuan Polisi Pamong Praja {region}",
            province="Satuan Polisi Pamong Praja {region}", parent="KEMENDAGRI"),
    _office("BPBD", ["TRANTIBUM.BENCANA"],
            regency="Badan Penanggulangan Bencana Daerah {region}",
            province="Badan Penanggulangan Bencana Daerah {region}", parent="BNPB"),
    # The police: a Polres in each regency/city under the province's Polda (vertical).
    _office("POLRI", ["TRANTIBUM.KEPOLISIAN", "TRANTIBUM.NARKOBA", "TRANTIBUM.PUNGLI"],
            regency="Polres {short}", province="Polda {short}", parent="POLRI"),
    _office("BAPENDA", ["EKONOMI.PAJAK"], regency="Badan Pendapatan Daerah {region}",
            province="Badan Pendapatan Daerah {region}", parent="KEMENDAGRI"),
    _office("DISDAG", ["EKONOMI", "KONSUMEN"], regency="Dinas Perdagangan {region}",
            province="Dinas Perindustrian dan Perdagangan {region}", parent="KEMENDAG"),
    _office("DISKOPUKM", ["EKONOMI.UMKM"],
            regency="Dinas Koperasi, Usaha Kecil dan Menengah {region}",
            province="Dinas Koperasi, Usaha Kecil dan Menengah {region}", parent="KEMENUMKM"),
    # Mining and energy are the province's matter: no regency office.
    _office("ESDM", ["ENERGI", "ENERGI.TAMBANG"],
            province="Dinas Energi dan Sumber Daya Mineral {region}", parent="KESDM"),
    _office("KESBANGPOL", ["POLHUK"], regency="Badan Kesatuan Bangsa dan Politik {region}",
            province="Badan Kesatuan Bangsa dan Politik {region}", parent="KEMENDAGRI"),
    _office("INSPEKTORAT", ["POLHUK.KORUPSI"], regency="Inspektorat {region}",
            province="Inspektorat {region}", parent="KEMENDAGRI"),
    # The land office of the national land agency (vertical).
    _office("BPN", ["POLHUK.PERTANAHAN"], regency="Kantor Pertanahan {region}",
            province="Kantor Wilayah Badan Pertanahan Nasional {region}", parent="ATR-BPN"),
    # The Ministry of Religious Affairs' offices (vertical): KUA, madrasah, haji.
    _office("KEMENAG", ["AGAMA"], regency="Kantor Kementerian Agama {region}",
            province="Kantor Wilayah Kementerian Agama {region}", parent="KEMENAG"),
    _office("DISTAN", ["PERTANIAN"], regency="Dinas Pertanian dan Peternakan {region}",
            province="Dinas Pertanian dan Peternakan {region}", parent="KEMENTAN"),
    _office("DISKAN", ["PERTANIAN.PERIKANAN"], regency="Dinas Perikanan {region}",
            province="Dinas Kelautan dan Perikanan {region}", parent="KKP"),
    _office("DPMD", ["DESA"], regency="Dinas Pemberdayaan Masyarakat dan Desa {region}",
            province="Dinas Pemberdayaan Masyarakat dan Desa {region}", parent="KEMENDES"),
)

# National ministries and agencies (K/L), state companies and the triage queue:
# (code, name, parent).
NATIONAL_AGENCIES: tuple[tuple[str, str, str], ...] = (
    ("KEMENDAGRI", "Kementerian Dalam Negeri", ""),
    ("DITJEN-DUKCAPIL", "Direktorat Jenderal Kependudukan dan Pencatatan Sipil", "KEMENDAGRI"),
    ("KEMENPU", "Kementerian Pekerjaan Umum", ""),
    ("BPJN", "Balai Pelaksanaan Jalan Nasional, Direktorat Jenderal Bina Marga", "KEMENPU"),
    ("KEMENPKP", "Kementerian Perumahan dan Kawasan Permukiman", ""),
    ("KEMENKES", "Kementerian Kesehatan", ""),
    ("BPJS-KESEHATAN", "BPJS Kesehatan", ""),
    ("BPOM", "Badan Pengawas Obat dan Makanan", ""),
    ("KEMENDIKDASMEN", "Kementerian Pendidikan Dasar dan Menengah", ""),
    ("KEMENBUD", "Kementerian Kebudayaan", ""),
    ("KEMNAKER", "Kementerian Ketenagakerjaan", ""),
    ("BPJS-KETENAGAKERJAAN", "BPJS Ketenagakerjaan", ""),
    ("KP2MI", "Kementerian Pelindungan Pekerja Migran Indonesia", ""),
    ("KEMENSOS", "Kementerian Sosial", ""),
    ("KEMENHUB", "Kementerian Perhubungan", ""),
    ("KLH", "Kementerian Lingkungan Hidup/Badan Pengendalian Lingkungan Hidup", ""),
    ("KEMENHUT", "Kementerian Kehutanan", ""),
    ("KOMDIGI", "Kementerian Komunikasi dan Digital", ""),
    ("POLRI", "Kepolisian Negara Republik Indonesia", ""),
    ("BNN", "Badan Narkotika Nasional", ""),
    ("BNPB", "Badan Nasional Penanggulangan Bencana", ""),
    ("KEMENKEU", "Kementerian Keuangan", ""),
    ("OJK", "Otoritas Jasa Keuangan", ""),
    ("KEMENUMKM", "Kementerian Usaha Mikro, Kecil, dan Menengah", ""),
    ("KESDM", "Kementerian Energi dan Sumber Daya Mineral", ""),
    ("PLN", "PT PLN (Persero)", ""),
    ("PERTAMINA", "PT Pertamina (Persero)", ""),
    ("KEMENKUM", "Kementerian Hukum", ""),
    ("KPK", "Komisi Pemberantasan Korupsi", ""),
    ("KPU", "Komisi Pemilihan Umum", ""),
    ("BAWASLU", "Badan Pengawas Pemilihan Umum", ""),
    ("ATR-BPN", "Kementerian Agraria dan Tata Ruang/Badan Pertanahan Nasional", ""),
    ("KEMENIMIPAS", "Kementerian Imigrasi dan Pemasyarakatan", ""),
    ("IMIGRASI", "Direktorat Jenderal Imigrasi", "KEMENIMIPAS"),
    ("KEMENAG", "Kementerian Agama", ""),
    ("KEMENDAG", "Kementerian Perdagangan", ""),
    ("KEMENTAN", "Kementerian Pertanian", ""),
    ("KKP", "Kementerian Kelautan dan Perikanan", ""),
    ("KEMENDES", "Kementerian Desa dan Pembangunan Daerah Tertinggal", ""),
    ("KEMENTRANS", "Kementerian Transmigrasi", ""),
    ("KEMENPAN-RB", "Kementerian Pendayagunaan Aparatur Negara dan Reformasi Birokrasi", ""),
    ("BKN", "Badan Kepegawaian Negara", "KEMENPAN-RB"),
)
TRIAGE_NAME = "Admin Nasional SP4N-LAPOR! (antrean verifikasi)"

# National rules: each category's ministry as the last fallback, and the subcategories that
# are a national body's matter wherever the report comes from.
NATIONAL_RULES: tuple[tuple[str, str], ...] = (
    ("PUPR", "KEMENPU"),
    ("PUPR.JALAN_NASIONAL", "BPJN"),
    ("PUPR.TATA_RUANG", "ATR-BPN"),
    ("PUPR.PERUMAHAN", "KEMENPKP"),
    ("KESEHATAN", "KEMENKES"),
    ("KESEHATAN.BPJS", "BPJS-KESEHATAN"),
    ("PENDIDIKAN", "KEMENDIKDASMEN"),
    ("PENDIDIKAN.KEBUDAYAAN", "KEMENBUD"),
    ("KEPENDUDUKAN", "DITJEN-DUKCAPIL"),
    ("KETENAGAKERJAAN", "KEMNAKER"),
    ("KETENAGAKERJAAN.BPJS_TK", "BPJS-KETENAGAKERJAAN"),
    ("KETENAGAKERJAAN.PMI", "KP2MI"),
    ("SOSIAL", "KEMENSOS"),
    ("PERHUBUNGAN", "KEMENHUB"),
    ("PERHUBUNGAN.KERETA", "KEMENHUB"),
    ("PERHUBUNGAN.UDARA_LAUT", "KEMENHUB"),
    ("LINGKUNGAN", "KLH"),
    ("LINGKUNGAN.HUTAN", "KEMENHUT"),
    ("TIK", "KOMDIGI"),
    ("TIK.JARINGAN", "KOMDIGI"),
    ("TIK.KONTEN", "KOMDIGI"),
    ("TIK.DATA_PRIBADI", "KOMDIGI"),
    ("TRANTIBUM", "KEMENDAGRI"),
    ("TRANTIBUM.KEPOLISIAN", "POLRI"),
    ("TRANTIBUM.NARKOBA", "BNN"),
    ("TRANTIBUM.PUNGLI", "POLRI"),
    ("TRANTIBUM.BENCANA", "BNPB"),
    ("EKONOMI", "KEMENKEU"),
    ("EKONOMI.PAJAK", "KEMENKEU"),
    ("EKONOMI.PERBANKAN", "OJK"),
    ("EKONOMI.UMKM", "KEMENUMKM"),
    ("ENERGI", "KESDM"),
    ("ENERGI.LISTRIK", "PLN"),
    ("ENERGI.BBM_GAS", "PERTAMINA"),
    ("ENERGI.TAMBANG", "KESDM"),
    ("POLHUK", "KEMENKUM"),
    ("POLHUK.PERADILAN", "KEMENKUM"),
    ("POLHUK.KORUPSI", "KPK"),
    ("POLHUK.PEMILU", "BAWASLU"),
    ("POLHUK.PERTANAHAN", "ATR-BPN"),
    ("POLHUK.KEIMIGRASIAN", "IMIGRASI"),
    ("AGAMA", "KEMENAG"),
    ("KONSUMEN", "KEMENDAG"),
    ("KONSUMEN.PANGAN", "BPOM"),
    ("PERTANIAN", "KEMENTAN"),
    ("PERTANIAN.PERIKANAN", "KKP"),
    ("DESA", "KEMENDES"),
    ("DESA.TRANSMIGRASI", "KEMENTRANS"),
    ("NETRALITAS_ASN", "BKN"),
    ("LAINNYA", TRIAGE_AGENCY),
)

# Provinces whose offices drop "Provinsi" (Aceh's own usage: "Dinas Kesehatan Aceh") or are
# called otherwise in their names.
PROVINCE_OFFICE_NAMES = {"11": "Aceh", "31": "Provinsi DKI Jakarta",
                         "34": "Daerah Istimewa Yogyakarta"}
JAKARTA = "31"
# Jakarta's police: Polda Metro Jaya and its Polres Metro.
JAKARTA_POLICE = {"31": "Polda Metro Jaya", "31.71": "Polres Metro Jakarta Pusat",
                  "31.72": "Polres Metro Jakarta Utara", "31.73": "Polres Metro Jakarta Barat",
                  "31.74": "Polres Metro Jakarta Selatan",
                  "31.75": "Polres Metro Jakarta Timur"}


def office_region_name(region: Region) -> str:
    """The region as office names write it: "Provinsi Papua", "Kota Jayapura"."""
    if region.level == "provinsi":
        return PROVINCE_OFFICE_NAMES.get(region.code, f"Provinsi {region.name}")
    return region.name


def generate(regions: Iterable[Region]) -> dict:
    """The national directory file's data for a region list (its provinces and
    regencies/cities; districts and villages are left out)."""
    listed = {r.code: office_region_name(r) for r in regions
              if r.level in ("provinsi", "kabupaten_kota")}
    agencies: list[dict] = [{"code": TRIAGE_AGENCY, "name": TRIAGE_NAME, "level": "triage"}]
    for code, name, parent in NATIONAL_AGENCIES:
        entry = {"code": code, "name": name, "level": "national"}
        if parent:
            entry["parent"] = parent
        agencies.append(entry)
    rules = [{"category": code, "region": "", "agency": agency}
             for code, agency in NATIONAL_RULES]
    if JAKARTA in listed:
        jakarta_agencies, jakarta_rules = _jakarta(listed)
        agencies += jakarta_agencies
        rules += jakarta_rules
    return {"format": FORMAT, "categories": [],
            "offices": [office_data(o) for o in OFFICE_KINDS],
            "regions": listed, "agencies": agencies, "rules": rules}


def _jakarta(listed: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Jakarta's exceptions: its cities and regency are administrative (kota/kabupaten
    administrasi) with suku dinas (sub-offices of the province's dinas) instead of dinas of
    their own; drinking water is the province's company (PAM Jaya); the police are Polda
    Metro Jaya's."""
    agencies: list[dict] = []
    regencies = [c for c in listed if c.startswith(JAKARTA + ".")]
    for office in OFFICE_KINDS:
        template = office.regency
        if not template.startswith(("Dinas ", "Badan Pendapatan ")):
            continue
        for code in regencies:
            agencies.append({"code": office.regency_code.format(kind=office.kind, code=code),
                             "name": "Suku " + template.format(region=listed[code])})
    agencies += [{"code": f"PDAM-{code}", "active": False} for code in regencies]
    agencies.append({"code": f"PDAM-{JAKARTA}", "name": "Perumda Air Minum Jaya",
                     "level": "provincial", "region": JAKARTA,
                     "parent": f"PEMPROV-{JAKARTA}"})
    agencies += [{"code": f"POLRI-{code}", "name": name} for code, name in JAKARTA_POLICE.items()
                 if code in listed]
    rules = [{"category": "PUPR.AIR_MINUM", "region": JAKARTA, "agency": f"PDAM-{JAKARTA}"}]
    rules += [{"category": "PUPR.AIR_MINUM", "region": code, "agency": None}
              for code in regencies]
    return agencies, rules
