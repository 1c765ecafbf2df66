"""Facts about the 38 provinces that the Kemendagri list does not carry: their ISO 3166-2
codes (ISO's Online Browsing Platform; the 2022 Papua provinces were added on 2022-11-29,
Papua Barat Daya on 2023-11-23) and their time zones (services/routing/workdays.py)."""

from __future__ import annotations

from services.routing.workdays import timezone_for_region

# Kemendagri province code -> ISO 3166-2 code.
ISO_3166_2: dict[str, str] = {
    "11": "ID-AC",  # Aceh
    "12": "ID-SU",  # Sumatera Utara
    "13": "ID-SB",  # Sumatera Barat
    "14": "ID-RI",  # Riau
    "15": "ID-JA",  # Jambi
    "16": "ID-SS",  # Sumatera Selatan
    "17": "ID-BE",  # Bengkulu
    "18": "ID-LA",  # Lampung
    "19": "ID-BB",  # Kepulauan Bangka Belitung
    "21": "ID-KR",  # Kepulauan Riau
    "31": "ID-JK",  # DKI Jakarta
    "32": "ID-JB",  # Jawa Barat
    "33": "ID-JT",  # Jawa Tengah
    "34": "ID-YO",  # Daerah Istimewa Yogyakarta
    "35": "ID-JI",  # Jawa Timur
    "36": "ID-BT",  # Banten
    "51": "ID-BA",  # Bali
    "52": "ID-NB",  # Nusa Tenggara Barat
    "53": "ID-NT",  # Nusa Tenggara Timur
    "61": "ID-KB",  # Kalimantan Barat
    "62": "ID-KT",  # Kalimantan Tengah
    "63": "ID-KS",  # Kalimantan Selatan
    "64": "ID-KI",  # Kalimantan Timur
    "65": "ID-KU",  # Kalimantan Utara
    "71": "ID-SA",  # Sulawesi Utara
    "72": "ID-ST",  # Sulawesi Tengah
    "73": "ID-SN",  # Sulawesi Selatan
    "74": "ID-SG",  # Sulawesi Tenggara
    "75": "ID-GO",  # Gorontalo
    "76": "ID-SR",  # Sulawesi Barat
    "81": "ID-MA",  # Maluku
    "82": "ID-MU",  # Maluku Utara
    "91": "ID-PA",  # Papua
    "92": "ID-PB",  # Papua Barat
    "93": "ID-PS",  # Papua Selatan
    "94": "ID-PT",  # Papua Tengah
    "95": "ID-PE",  # Papua Pegunungan
    "96": "ID-PD",  # Papua Barat Daya
}


def iso_code(province_code: str) -> str | None:
    return ISO_3166_2.get(province_code)


def timezone_name(province_code: str) -> str | None:
    """The IANA name of the province's zone (Asia/Jakarta, Asia/Makassar, Asia/Jayapura), or
    None for a code outside the official list."""
    try:
        return timezone_for_region(province_code).key
    except ValueError:
        return None
