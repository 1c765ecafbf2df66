"""The taxonomy as routing's decisions and the directory file see it: the 19 national
categories named exactly as the national taxonomy names them, their subcategories, and
category lists that are refused with a message saying what to fix."""

from __future__ import annotations

import pytest

from services.routing.directory import taxonomy
from services.routing.directory.taxonomy import Category, Taxonomy, TaxonomyError

NATIONAL_NAMES = [
    "PEKERJAAN UMUM DAN PENATAAN RUANG", "KESEHATAN", "PENDIDIKAN DAN KEBUDAYAAN",
    "KEPENDUDUKAN", "KETENAGAKERJAAN", "SOSIAL DAN KESEJAHTERAAN", "PERHUBUNGAN",
    "LINGKUNGAN HIDUP DAN KEHUTANAN", "TEKNOLOGI INFORMASI DAN KOMUNIKASI",
    "KETENTERAMAN, KETERTIBAN UMUM, DAN PELINDUNGAN MASYARAKAT", "EKONOMI DAN KEUANGAN",
    "ENERGI DAN SUMBER DAYA ALAM", "POLITIK DAN HUKUM", "AGAMA", "PERLINDUNGAN KONSUMEN",
    "PERTANIAN DAN PETERNAKAN", "PEMBANGUNAN DESA, DAERAH TERTINGGAL, DAN TRANSMIGRASI",
    "NETRALITAS ASN", "TOPIK LAINNYA"]


def test_the_national_taxonomy_has_the_19_categories_named_exactly():
    national = taxonomy.national()
    assert [c.name for c in national.top_level()] == NATIONAL_NAMES
    assert national.name("PUPR") == "PEKERJAAN UMUM DAN PENATAAN RUANG"
    assert national.name("KESEHATAN.BPJS") == "BPJS Kesehatan dan JKN"
    assert national.name("INFRASTRUKTUR") == ""  # the first release's codes are gone


def test_every_national_category_has_subcategories_that_point_back_to_it():
    national = taxonomy.national()
    for category in national.top_level():
        subs = national.subcategories(category.code)
        assert subs, f"{category.code} has no subcategory"
        for sub in subs:
            assert sub.code.startswith(category.code + ".")
            assert national.category_of(sub.code) == category.code
            assert national.is_subcategory(sub.code) and not national.is_category(sub.code)
        assert national.category_of(category.code) == category.code
    assert national.category_of("NOPE") == ""


def test_inactive_categories_and_the_subcategories_of_inactive_ones_are_left_out():
    found = Taxonomy([Category("MUDIK", "PENIADAAN MUDIK", active=False),
                      Category("MUDIK.SEKAT", "Penyekatan", "MUDIK"),
                      Category("AGAMA", "AGAMA"),
                      Category("AGAMA.LAMA", "Lama", "AGAMA", active=False),
                      Category("AGAMA.NIKAH", "Nikah", "AGAMA")]).active()
    assert [c.code for c in found] == ["AGAMA", "AGAMA.NIKAH"]


@pytest.mark.parametrize("data, words", [
    ("KESEHATAN", "expected a list"),
    ([{"name": "TANPA KODE"}], "code is required"),
    ([{"code": "mudik", "name": "x"}], "capitals"),
    ([{"code": "MUDIK", "name": " "}], "name is required"),
    ([{"code": "MUDIK", "name": "x"}, {"code": "MUDIK", "name": "y"}], "listed twice"),
    ([{"code": "MUDIK", "name": "x", "subcategories": [{"code": "LAIN.SEKAT", "name": "y"}]}],
     "must be MUDIK.NAME"),
    ([{"code": "M" * 41, "name": "x"}], "longer than 40"),
])
def test_a_category_list_that_cannot_be_used_is_refused_saying_where(data, words):
    with pytest.raises(TaxonomyError) as raised:
        taxonomy.parse(data, "file")
    assert words in str(raised.value)
    assert str(raised.value).startswith("file")
