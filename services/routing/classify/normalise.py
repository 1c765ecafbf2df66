"""Turns a report's free text into the plain, standard Indonesian the classifier learns from.
Pure functions, no I/O.

Steps, in order: lower-case and strip accents; money and numbers become one token each;
"lubang2" (reduplication written with a 2) becomes "lubang lubang"; runs of three or more of
one letter collapse ("bangeeet" -> "banget"); informal, abbreviated and regional words map to
standard ones (slang.py: "yg" -> "yang", "tdk"/"gak"/"ora"/"teu" -> "tidak"); then each word
is stemmed by `stem`.

The stemmer is a light, rule-based one in the manner of Tala's Porter-style stemmer for
Bahasa Indonesia: particles (-lah, -kah, -pun), possessives (-nya, -ku, -mu), one or two
prefixes (di-, ter-, me(N)-, pe(N)-, ber-, per-, ke- only with -an) and a suffix (-kan, -an,
-i), each removed only when what is left still looks like a word (four letters or more, a
plausible beginning) and never from the words listed in PROTECTED. It has no dictionary, so
it under-stems rather than over-stems: a word it is unsure of is left as written, and the
classifier's character n-grams still see its parts. PySastrawi (pure Python, MIT, on PyPI)
was tried and not taken: its dictionary-driven stemmer maps "kerusakan" to "rusa" (deer),
"perbankan" to "perban" (bandage) and "pelayanan" to "layan"/"penerimaan" to "terima"
alike, which merges words the classifier must keep apart; and it would be one more
dependency for what some hundred lines do here.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from services.routing.classify.slang import SLANG

_MONEY = re.compile(r"\brp\.?\s*\d[\d.,]*(\s*(ribu|rb|juta|jt|jutaan|ribuan|k))?\b")
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_REDUPLICATED = re.compile(r"\b([a-z]{3,})2\b")
_RUNS = re.compile(r"([a-z])\1{2,}")
_NOT_WORD = re.compile(r"[^a-z0-9]+")

VOWELS = frozenset("aeiou")

# Words that look affixed and are not, or whose stem would merge them with an unrelated word.
PROTECTED = frozenset("""
    jembatan pemerintah pemerintahan perintah sekolah masalah jumlah salah kalah allah telah
    lelah nikah langkah sedekah naskah kendaraan kereta kepala keluarga kelas ketua kemarin
    kebun kelompok keluh keluhan kecil kemah kapal pangan hutan taman ikan bulan badan bahan
    tangan teman dengan perempuan karyawan wartawan relawan dermawan perilaku berlaku
    bertemu ketemu ilmu buku suku selatan utara lautan tindakan gerakan ledakan masakan
    pertama perangkat perawat perahu periksa pertamina pemilu pemkab pemkot pemda pemprov
    peserta terminal termin berita berangkat disabilitas disiplin direktur direksi dirjen
    diabetes diagnosa diagnosis dialog dialisis diesel digital dimensi dinamika dinas
    pelabuhan peternak peternakan pesantren pesawat pedesaan pelita penghulu perdata pidana
    pekan pelatihan pendapatan penduduk pengadilan pengacara peraturan perkara persen
    kependudukan ketenagakerjaan kesejahteraan kebudayaan keuangan kehutanan kesehatan
    pendidikan perhubungan pertanian pertanahan perikanan perumahan perlindungan pertambangan
    kementerian kecamatan kelurahan kabupaten kawasan lapangan kantin makanan minuman
    kemudian sebagian bagian tujuan jawaban bantuan laporan aduan pengaduan
    bendungan saluran aliran tagihan kiriman sampah limbah tanah rumah wilayah daerah
    sejarah musyawarah madrasah dakwah ibadah syariah ijazah rupiah lebih tahun pasien
    """.split())

_FIRST_ORDER = ("meng", "meny", "mem", "men", "me", "peng", "peny", "pem", "pen", "pe",
                "di", "ter")
# Roots a prefix hides that the rules would restore wrongly (meminta is minta, not pinta;
# memberikan is beri, not ikan).
IRREGULAR = {
    "meminta": "minta", "diminta": "minta", "memohon": "mohon", "dimohon": "mohon",
    "memiliki": "milik", "dimiliki": "milik", "pemilik": "milik", "memang": "memang",
    "memasak": "masak", "menikah": "nikah", "dinikahkan": "nikah", "berikan": "beri",
    "memberikan": "beri", "diberikan": "beri", "memberi": "beri", "diberi": "beri",
    "mengeluh": "keluh", "mengeluhkan": "keluh", "mengirim": "kirim", "mengirimkan": "kirim",
    "pengiriman": "kirim", "pengirim": "kirim", "mengecek": "cek", "pengecekan": "cek",
    "mengenai": "kena", "pelajar": "ajar", "pelajaran": "ajar", "mempelajari": "ajar",
    "pemilu": "pemilu", "pemukiman": "mukim", "permukiman": "mukim",
}
_ONSETS_OK = ("bl", "br", "dr", "fl", "fr", "gl", "gr", "kl", "kr", "pl", "pr", "sl", "sp",
              "sr", "st", "sw", "tr", "ny", "kh", "sy")


def _plausible(stem: str) -> bool:
    """A stem left after stripping still looks like an Indonesian word: four letters or
    more, a vowel in it, and it begins with a vowel, a consonant before a vowel, or a usual
    cluster."""
    if len(stem) < 4 or not any(ch in VOWELS for ch in stem):
        return False
    if stem[0] in VOWELS or stem[1] in VOWELS:
        return True
    return stem[:2] in _ONSETS_OK


_ENDS_LIKE_KU = ("laku", "buku", "suku", "saku", "paku", "kuku", "baku", "beku", "siku", "tungku",
                 "temu", "ilmu", "jamu", "tamu", "ramu", "jemu", "waktu")
_ENDS_LIKE_PARTICLE = tuple(w for w in PROTECTED if w.endswith(("lah", "kah", "pun")))


def _strip_particle(word: str) -> str:
    if word.endswith(_ENDS_LIKE_PARTICLE):  # bersekolah, permasalahan's masalah
        return word
    for particle in ("lah", "kah", "pun"):
        if word.endswith(particle) and _plausible(word[:-3]):
            return word[:-3]
    return word


def _strip_possessive(word: str) -> str:
    if word.endswith("nya") and _plausible(word[:-3]):
        return word[:-3]
    if word.endswith(("ku", "mu")) and not word.endswith(_ENDS_LIKE_KU) and _plausible(word[:-2]):
        return word[:-2]
    return word


def _strip_first_prefix(word: str) -> tuple[str, str]:
    """Removes me(N)-, pe(N)-, di-, ter- or ke- with the sound change it brings
    (menulis -> tulis, memukul -> pukul, menyapu -> sapu, mengurus -> urus)."""
    for prefix in _FIRST_ORDER:
        if not word.startswith(prefix):
            continue
        rest = word[len(prefix):]
        if not rest:
            return word, ""
        candidates: list[str]
        if prefix in ("meng", "peng"):
            candidates = [rest] if rest[0] in VOWELS or rest[0] in "ghk" else []
        elif prefix in ("meny", "peny"):
            candidates = ["s" + rest] if rest[0] in VOWELS else []
        elif prefix in ("mem", "pem"):
            candidates = ([rest] if rest[0] in "bpf"
                          else ["p" + rest] if rest[0] in VOWELS else [])
        elif prefix in ("men", "pen"):
            candidates = ([rest] if rest[0] in "cdjtsz"
                          else ["t" + rest] if rest[0] in VOWELS else [])
        elif prefix == "me":
            candidates = [rest] if rest[0] in "lrwy" else []
        elif prefix == "pe":
            # pe- before l, r, w, y and before most consonants: petani, pedagang, pelapor.
            # pe- before r is left to per- (perizinan, pertanyaan).
            candidates = [rest] if rest[0] not in VOWELS and rest[0] not in "mnr" else []
        else:
            candidates = [rest]
        for candidate in candidates:
            if _plausible(candidate):
                return candidate, prefix
        return word, ""
    return word, ""


def _strip_second_prefix(word: str) -> tuple[str, str]:
    """ber-, per- (and their be-, pe- forms before r, bekerja, belajar)."""
    if word in ("bekerja", "pekerja"):
        return "kerja", "be"
    if word == "belajar":
        return "ajar", "be"
    for prefix in ("ber", "per"):
        if word.startswith(prefix) and _plausible(word[3:]):
            return word[3:], prefix
    return word, ""


def _strip_suffix(word: str, prefix: str) -> str:
    """-kan, -an or -i, as the prefix allows: a noun prefix (pe(N)-, per-, ke-) takes -an
    (perbaikan -> perbaik), a verb prefix or none takes -kan first; -i only after a verb
    prefix (diperbaiki, menangani), never on a loanword in -si (dikorupsi)."""
    noun = prefix in ("peng", "peny", "pem", "pen", "pe", "per", "ke")
    verb = prefix in ("meng", "meny", "mem", "men", "me", "di", "ter")
    if not noun and word.endswith("kan") and _plausible(word[:-3]):
        return word[:-3]
    if word.endswith("an") and _plausible(word[:-2]):
        return word[:-2]
    if verb and word.endswith("i") and not word.endswith("si") and _plausible(word[:-1]):
        return word[:-1]
    return word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The word's stem, or the word itself when stripping would leave something doubtful."""
    if len(word) <= 4 or word in PROTECTED or not word.isalpha():
        return word
    if word in IRREGULAR:
        return IRREGULAR[word]
    word = _strip_particle(word)
    word = _strip_possessive(word)
    if word in PROTECTED or word in IRREGULAR:
        return IRREGULAR.get(word, word)
    if word.startswith("ke") and word.endswith("an"):
        # ke- is a prefix only as half of the ke-...-an confix: kepala, kereta, kebun are
        # words of their own.
        inner = word[2:-2]
        if inner in PROTECTED:
            return inner
        if not _plausible(inner):
            return word
        for prefix in ("ber", "ter"):
            if inner.startswith(prefix) and _plausible(inner[3:]):
                return inner[3:]
        return inner
    stemmed, prefix = _strip_first_prefix(word)
    if stemmed in PROTECTED:
        return stemmed
    stemmed, second = _strip_second_prefix(stemmed)
    if stemmed in PROTECTED:
        return stemmed
    return _strip_suffix(stemmed, prefix or second)


def fold(text: str) -> str:
    """Lower-case, accents stripped, money and numbers as single tokens, reduplication and
    letter runs undone; words separated by single spaces."""
    text = text.lower()
    if not text.isascii():  # ASCII has nothing to decompose and no combining marks
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _MONEY.sub(" rupiah ", text)
    text = _REDUPLICATED.sub(r"\1 \1", text)
    text = _NUMBER.sub(" 0 ", text)
    text = _RUNS.sub(r"\1", text)
    return " ".join(_NOT_WORD.split(text)).strip()


def standard_words(text: str) -> list[str]:
    """The folded words with slang and abbreviations replaced, not stemmed."""
    words: list[str] = []
    for word in fold(text).split():
        replacement = SLANG.get(word, word)
        if replacement:
            words.extend(replacement.split())
    return words


def normalise(text: str) -> str:
    """Folded, standard and stemmed: what the classifier's word features read."""
    return " ".join(stem(word) for word in standard_words(text))


def surface(text: str) -> str:
    """Folded and standard but not stemmed: what the character n-grams read."""
    return " ".join(standard_words(text))
