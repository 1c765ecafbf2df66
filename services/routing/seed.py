"""The demo directory: Sumatera Barat with its 19 regencies and cities, a few national
ministries and bodies, and the national admin's triage queue, with the national taxonomy's
category codes and the national directory's names and codes (a small part of what
`directory generate` makes). Enough to route a report from Kabupaten Sijunjung end to end;
the full region list is imported with `import-regions`, the national directory loaded with
`directory load` (docs/directory.md)."""

from __future__ import annotations

from dataclasses import dataclass

from services.infra.regions import Region
from services.routing.rules import TRIAGE_AGENCY

__all__ = ["AgencyRow", "Region", "demo_agencies", "demo_regions"]


@dataclass(frozen=True)
class AgencyRow:
    code: str
    name: str
    level: str  # national | provincial | regency | triage
    region_code: str
    parent_code: str
    handles: tuple[str, ...] = ()   # categories it handles in its region


SUMBAR = Region("13", "Sumatera Barat", "provinsi")
SUMBAR_REGENCIES = tuple(Region(code, name, "kabupaten_kota") for code, name in (
    ("13.01", "Kabupaten Pesisir Selatan"), ("13.02", "Kabupaten Solok"),
    ("13.03", "Kabupaten Sijunjung"), ("13.04", "Kabupaten Tanah Datar"),
    ("13.05", "Kabupaten Padang Pariaman"), ("13.06", "Kabupaten Agam"),
    ("13.07", "Kabupaten Lima Puluh Kota"), ("13.08", "Kabupaten Pasaman"),
    ("13.09", "Kabupaten Kepulauan Mentawai"), ("13.10", "Kabupaten Dharmasraya"),
    ("13.11", "Kabupaten Solok Selatan"), ("13.12", "Kabupaten Pasaman Barat"),
    ("13.71", "Kota Padang"), ("13.72", "Kota Solok"), ("13.73", "Kota Sawahlunto"),
    ("13.74", "Kota Padang Panjang"), ("13.75", "Kota Bukittinggi"),
    ("13.76", "Kota Payakumbuh"), ("13.77", "Kota Pariaman"),
))

MINISTRIES = (
    AgencyRow("KEMENDAGRI", "Kementerian Dalam Negeri", "national", "", "",
              ("KEPENDUDUKAN",)),
    AgencyRow("KEMENPU", "Kementerian Pekerjaan Umum", "national", "", "", ("PUPR",)),
    AgencyRow("BPJN", "Balai Pelaksanaan Jalan Nasional, Direktorat Jenderal Bina Marga",
              "national", "", "KEMENPU", ("PUPR.JALAN_NASIONAL",)),
    AgencyRow("KEMENKES", "Kementerian Kesehatan", "national", "", "", ("KESEHATAN",)),
    AgencyRow("BPJS-KESEHATAN", "BPJS Kesehatan", "national", "", "", ("KESEHATAN.BPJS",)),
    AgencyRow("KEMENDIKDASMEN", "Kementerian Pendidikan Dasar dan Menengah", "national", "", "",
              ("PENDIDIKAN",)),
    AgencyRow("KEMENSOS", "Kementerian Sosial", "national", "", "", ("SOSIAL",)),
    AgencyRow("KLH", "Kementerian Lingkungan Hidup/Badan Pengendalian Lingkungan Hidup",
              "national", "", "", ("LINGKUNGAN",)),
)

# Regional offices (dinas) per regency/city: code prefix, name, category.
DINAS = (
    ("PUPR", "Dinas Pekerjaan Umum dan Penataan Ruang", "PUPR"),
    ("DINKES", "Dinas Kesehatan", "KESEHATAN"),
    ("DISDIK", "Dinas Pendidikan dan Kebudayaan", "PENDIDIKAN"),
    ("DISDUKCAPIL", "Dinas Kependudukan dan Pencatatan Sipil", "KEPENDUDUKAN"),
    ("DINSOS", "Dinas Sosial", "SOSIAL"),
    ("DLH", "Dinas Lingkungan Hidup", "LINGKUNGAN"),
)


def demo_regions() -> list[Region]:
    return [SUMBAR, *SUMBAR_REGENCIES]


def demo_agencies() -> list[AgencyRow]:
    rows = [AgencyRow(TRIAGE_AGENCY, "Admin Nasional SP4N-LAPOR! (antrean verifikasi)",
                      "triage", "", ""), *MINISTRIES]
    rows.append(AgencyRow("PEMPROV-13", "Pemerintah Provinsi Sumatera Barat", "provincial",
                          "13", "KEMENDAGRI",
                          tuple(category for _, _, category in DINAS)))
    for region in SUMBAR_REGENCIES:
        pemda = f"PEMDA-{region.code}"
        rows.append(AgencyRow(pemda, f"Pemerintah {region.name}", "regency", region.code,
                              "PEMPROV-13"))
        for prefix, name, category in DINAS:
            rows.append(AgencyRow(f"{prefix}-{region.code}", f"{name} {region.name}", "regency",
                                  region.code, pemda, (category,)))
    return rows
