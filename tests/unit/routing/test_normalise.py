"""The classifier's normaliser: informal, abbreviated, regional and affixed Indonesian comes
out as the standard words the model learnt from."""

import re

import pytest

from services.routing.classify.normalise import fold, normalise, stem, surface
from services.routing.classify.slang import SLANG


@pytest.mark.parametrize(("word", "expected"), [
    ("jalanannya", "jalan"),
    ("puskesmasnya", "puskesmas"),
    ("dokternya", "dokter"),
    ("diperbaiki", "baik"),
    ("memperbaiki", "baik"),
    ("perbaikan", "baik"),
    ("kerusakan", "rusak"),       # not "rusa" (deer)
    ("perbankan", "bank"),        # not "perban" (bandage)
    ("berlubang", "lubang"),
    ("penyakit", "sakit"),
    ("menulis", "tulis"),
    ("pelayanan", "layan"),
    ("keterlambatan", "lambat"),
    ("bersekolah", "sekolah"),
    ("sekolahnya", "sekolah"),
    ("meminta", "minta"),         # not "pinta"
    ("memberikan", "beri"),       # not "ikan"
])
def test_affixes_and_clitics_come_off(word, expected):
    assert stem(word) == expected


@pytest.mark.parametrize("word", [
    "kereta", "kepala", "keluarga", "sekolah", "pemerintah", "jembatan", "terminal",
    "disabilitas", "perawat", "tertib", "bersih", "ikan", "dinas", "berita",
])
def test_words_that_only_look_affixed_stay_whole(word):
    assert stem(word) == word


def test_abbreviations_become_standard_words():
    assert normalise("yg tdk") == "yang tidak"
    assert normalise("Jln rusak, sdh lapor tp blm diperbaiki krn gak ada dana") == (
        "jalan rusak sudah lapor tapi belum baik karena tidak ada dana")


@pytest.mark.parametrize("negation", ["tdk", "gak", "ga", "nggak", "ndak", "kagak", "ora",
                                      "mboten", "teu", "indak", "tra", "nda"])
def test_informal_and_regional_negations_mean_tidak(negation):
    assert normalise(f"{negation} ada obat") == "tidak ada obat"


def test_informal_and_formal_reports_read_the_same():
    informal = "Jln dpn puskesmasnya ancur bangeeet, blm diperbaiki!!"
    formal = "Jalan depan puskesmas hancur banget, belum diperbaiki."
    assert normalise(informal) == normalise(formal) == (
        "jalan depan puskesmas hancur banget belum baik")


def test_accents_letter_runs_reduplication_money_and_numbers():
    assert fold("Pémérintah") == "pemerintah"
    assert surface("parahhh, lubang2 dmn2") == "parah lubang lubang di mana di mana"
    assert surface("ditarik Rp 3.000 tiap hari, sudah 2 kali") == (
        "ditarik rupiah tiap hari sudah 0 kali")
    assert normalise("") == ""


def test_rumah_sakit_and_puskesmas_abbreviations_meet_their_full_names():
    assert normalise("antri lama di RS") == normalise("antre lama di rumah sakit")
    assert normalise("pkm tutup") == normalise("puskesmas tutup")


def test_every_slang_entry_can_be_reached():
    # Lookup happens after folding and collapsing runs of three letters: a key that could
    # never come out of that is dead weight, and a value must be standard words.
    for key, value in SLANG.items():
        assert fold(key) == key and not re.search(r"([a-z])\1\1", key), key
        assert value == "" or re.fullmatch(r"[a-z]+( [a-z]+)*", value), (key, value)
    assert len(SLANG) >= 300
