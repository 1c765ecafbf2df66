"""Informal, abbreviated and regional words mapped to the standard Indonesian the classifier
learns from. Keys are lower-case, accent-free, with letter runs already collapsed (see
normalise.py); values are one or more standard words.

Left out on purpose, because the same spelling means something else in common use:
"sing" (Javanese *yang*, Balinese *tidak*), "seng" (Ambonese *tidak*, zinc roofing),
"tiang" (Balinese *saya*, a pole), "beta" (Ambonese *saya*), "kali" (Javanese river,
"times"), "dong" (Papuan *mereka*, a Jakarta particle), "urang" (Sundanese *saya*, Minang
*orang*), "hana" (Acehnese *tidak ada*, a name).
"""

from __future__ import annotations

# Negation and "not yet": the words that most often change what a report asks for.
_NEGATION = {
    "tdk": "tidak", "tdak": "tidak", "tida": "tidak", "tak": "tidak", "gak": "tidak",
    "ga": "tidak", "gk": "tidak", "g": "tidak", "gag": "tidak", "nggak": "tidak",
    "ngga": "tidak", "ngak": "tidak", "nggk": "tidak", "enggak": "tidak", "engga": "tidak",
    "ndak": "tidak", "nda": "tidak", "ndk": "tidak", "kagak": "tidak", "kaga": "tidak",
    "kgk": "tidak", "tidk": "tidak",     # regional
    "ora": "tidak", "orak": "tidak", "mboten": "tidak", "boten": "tidak",  # Javanese
    "teu": "tidak", "henteu": "tidak", "hente": "tidak",                    # Sundanese
    "indak": "tidak",                                     # Minang
    "tra": "tidak", "trada": "tidak ada", "tarada": "tidak ada",  # Papua
    "sonde": "tidak",                                       # Kupang
    "nyanda": "tidak", "nintau": "tidak tahu",                              # Manado
    "kada": "tidak", "kadada": "tidak ada",                                 # Banjar
    "dak": "tidak", "katek": "tidak ada",                                   # Palembang
    "tena": "tidak",                                                        # Makassar
    "bkn": "bukan", "bukn": "bukan", "bokan": "bukan",
    "blm": "belum", "blum": "belum", "blom": "belum", "belom": "belum", "lom": "belum",
    "durung": "belum", "dereng": "belum", "acan": "belum", "alun": "belum",
}

# Pronouns and people.
_PEOPLE = {
    "sy": "saya", "sya": "saya", "aq": "saya", "ak": "saya", "aku": "saya", "gw": "saya",
    "gue": "saya", "gua": "saya", "w": "saya", "ane": "saya", "aye": "saya", "kulo": "saya",
    "kula": "saya", "abdi": "saya", "ambo": "saya", "ulun": "saya", "sa": "saya",
    "km": "kamu", "kmu": "kamu", "lu": "kamu", "lo": "kamu", "elu": "kamu", "ente": "kamu",
    "ngana": "kamu",
    "kt": "kita", "qt": "kita", "kite": "kita", "torang": "kita", "katong": "kita",
    "kitorang": "kita", "kmi": "kami", "kmai": "kami",
    "dy": "dia", "doi": "dia", "mrk": "mereka", "org": "orang", "orng": "orang", "wong": "orang",
    "jalmi": "orang",
    "ortu": "orang tua", "bpk": "bapak", "pak": "bapak", "bp": "bapak", "pace": "bapak",
    "bu": "ibu", "mace": "ibu", "sdr": "saudara", "sdri": "saudari", "mbah": "nenek",
    "masy": "masyarakat", "msyrkt": "masyarakat", "masyarkat": "masyarakat",
    "pns": "pegawai negeri", "ptgs": "petugas", "pgw": "pegawai",
    "prgkt": "perangkat", "kades": "kepala desa", "kadus": "kepala dusun",
    "kasek": "kepala sekolah", "kepsek": "kepala sekolah",
}

# Everyday words, abbreviated or informal.
_COMMON = {
    "yg": "yang", "yng": "yang", "ygn": "yang", "dgn": "dengan", "dg": "dengan",
    "dng": "dengan", "dngn": "dengan", "sm": "sama", "ama": "sama", "utk": "untuk",
    "untk": "untuk", "tuk": "untuk", "krn": "karena", "krna": "karena",
    "karna": "karena", "krena": "karena", "coz": "karena", "soalnya": "karena",
    "sdh": "sudah", "udh": "sudah", "udah": "sudah", "dah": "sudah", "sudh": "sudah",
    "uda": "sudah", "sdah": "sudah", "wis": "sudah", "uwis": "sudah", "wes": "sudah",
    "sampun": "sudah", "tos": "sudah", "su": "sudah", "jg": "juga", "jga": "juga", "lg": "lagi",
    "lgi": "lagi", "agi": "lagi",
    "bgt": "banget", "bngt": "banget", "bgd": "banget", "bnget": "banget",
    "bangt": "banget", "pisan": "banget", "nian": "banget",
    "sgt": "sangat", "sngt": "sangat", "amat": "sangat",
    "tp": "tapi", "tpi": "tapi", "tetapi": "tapi", "namun": "tapi",
    "dr": "dari", "dri": "dari", "pd": "pada", "kpd": "kepada", "dlm": "dalam",
    "dl": "dulu", "dlu": "dulu", "sj": "saja", "aja": "saja", "ae": "saja", "doang": "saja",
    "cm": "hanya", "cuma": "hanya", "cuman": "hanya", "hrs": "harus", "kudu": "harus", "bs": "bisa",
    "dpt": "dapat",
    "dapet": "dapat", "bbrp": "beberapa", "sblm": "sebelum", "sblum": "sebelum",
    "stlh": "setelah", "sesudah": "setelah", "abis": "habis", "udahan": "selesai",
    "skrg": "sekarang", "skrng": "sekarang", "skr": "sekarang", "saiki": "sekarang",
    "kmrn": "kemarin", "kemaren": "kemarin", "kmaren": "kemarin", "kmarin": "kemarin",
    "bsk": "besok", "besuk": "besok", "hr": "hari", "hri": "hari", "thn": "tahun",
    "th": "tahun", "taun": "tahun", "bln": "bulan", "mgg": "minggu", "mgu": "minggu",
    "tgl": "tanggal", "jm": "jam", "dtk": "detik", "mnt": "menit",
    "sbg": "sebagai", "spt": "seperti", "sprti": "seperti", "kyk": "seperti",
    "kayak": "seperti", "kaye": "seperti",
    "trs": "terus", "trus": "terus", "msh": "masih", "masi": "masih", "msih": "masih",
    "lbh": "lebih", "lbih": "lebih", "kurg": "kurang", "krg": "kurang",
    "tlg": "tolong", "tlong": "tolong", "tolongin": "tolong", "pls": "tolong",
    "please": "tolong", "plis": "tolong", "mhn": "mohon", "mohn": "mohon",
    "nyuwun": "mohon", "nyuhunkeun": "mohon",
    "mksh": "terima kasih", "makasih": "terima kasih", "trims": "terima kasih",
    "trimakasih": "terima kasih", "terimakasih": "terima kasih", "thx": "terima kasih",
    "tks": "terima kasih", "tq": "terima kasih", "nuwun": "terima kasih",
    "nuhun": "terima kasih",
    "kpn": "kapan", "kapn": "kapan", "dmn": "di mana", "dimana": "di mana",
    "kmn": "ke mana", "kemana": "ke mana", "knp": "kenapa", "napa": "kenapa",
    "ngapa": "kenapa", "gmn": "bagaimana", "gmna": "bagaimana", "gimana": "bagaimana",
    "gmana": "bagaimana", "bgmn": "bagaimana", "piye": "bagaimana", "pripun": "bagaimana",
    "kumaha": "bagaimana", "baa": "bagaimana", "pegimane": "bagaimana",
    "ap": "apa", "opo": "apa", "nopo": "apa", "naon": "apa", "ape": "apa",
    "ad": "ada", "tau": "tahu", "tw": "tahu", "liat": "lihat", "lht": "lihat", "ngliat": "lihat",
    "ngeliat": "lihat",
    "blg": "bilang", "blang": "bilang", "ngomong": "bicara", "omong": "bicara",
    "bikin": "buat", "bkin": "buat", "mo": "mau", "mw": "mau", "pengen": "ingin", "pingin": "ingin",
    "pgn": "ingin",
    "pengin": "ingin", "emang": "memang", "emg": "memang", "mmg": "memang",
    "bener": "benar", "bnr": "benar", "gede": "besar", "gedhe": "besar", "gedeh": "besar",
    "gde": "besar",
    "dikit": "sedikit", "sdikit": "sedikit", "sithik": "sedikit",
    "bnyk": "banyak", "byk": "banyak", "banyk": "banyak", "akeh": "banyak",
    "seueur": "banyak", "loba": "banyak", "galo": "semua", "smua": "semua", "smw": "semua",
    "ancur": "hancur", "ancor": "hancur", "rame": "ramai", "ramee": "ramai",
    "duit": "uang", "cepet": "cepat", "cpt": "cepat", "lemot": "lambat",
    "lelet": "lambat", "telat": "terlambat", "tlat": "terlambat", "suwe": "lama",
    "lma": "lama", "ribet": "rumit", "males": "malas", "cape": "lelah", "capek": "lelah",
    "antri": "antre", "ngantri": "antre", "ngantre": "antre", "antrian": "antrean",
    "nyampe": "sampai", "sampe": "sampai", "smpe": "sampai", "nyampai": "sampai", "pake": "pakai",
    "make": "pakai", "gitu": "begitu",
    "gt": "begitu", "gtu": "begitu", "gini": "begini", "td": "tadi", "tdi": "tadi",
    "br": "baru", "bru": "baru", "ntar": "nanti", "ntr": "nanti", "entar": "nanti",
    "iki": "ini", "ni": "ini", "nih": "ini", "kuwi": "itu", "iku": "itu", "tu": "itu",
    "tuh": "itu", "ning": "di", "nang": "di",
    "njaluk": "minta", "mintak": "minta", "hese": "susah", "leungit": "hilang",
    "ilang": "hilang", "ciek": "satu", "sikit": "sedikit",
    "srg": "sering", "kdg": "kadang",
    "trnyt": "ternyata", "ternyta": "ternyata", "sbnrnya": "sebenarnya",
    "kalo": "kalau", "klo": "kalau", "kl": "kalau", "klau": "kalau", "klw": "kalau",
    "misal": "misalnya", "mslh": "masalah", "masalh": "masalah",
    "deh": "", "sih": "", "kok": "", "lho": "", "loh": "", "dunk": "",
    "nge": "", "wkwk": "", "wkwkwk": "", "hehe": "", "haha": "",
}

# Places, offices and services, so that an abbreviation and the full words meet.
_PLACES_AND_SERVICES = {
    "jl": "jalan", "jln": "jalan", "jaln": "jalan", "dalan": "jalan",
    "gg": "gang", "kel": "kelurahan", "kec": "kecamatan", "kab": "kabupaten",
    "kabu": "kabupaten", "prov": "provinsi", "propinsi": "provinsi", "ds": "desa",
    "kp": "kampung", "kmp": "kampung", "dsn": "dusun", "komp": "kompleks",
    "perum": "perumahan", "omah": "rumah", "imah": "rumah", "rmh": "rumah",
    "sklh": "sekolah", "sekola": "sekolah", "sakola": "sekolah", "skul": "sekolah",
    "puskes": "puskesmas", "pkm": "puskesmas", "pusk": "puskesmas", "pusksmas": "puskesmas",
    "rs": "rumah sakit", "rsu": "rumah sakit umum", "rumkit": "rumah sakit",
    "dinkes": "dinas kesehatan", "disdik": "dinas pendidikan",
    "disdikbud": "dinas pendidikan", "dishub": "dinas perhubungan",
    "disnaker": "dinas tenaga kerja", "disnakertrans": "dinas tenaga kerja",
    "dinsos": "dinas sosial", "dlh": "dinas lingkungan hidup",
    "disdukcapil": "dukcapil", "capil": "dukcapil", "diskominfo": "kominfo",
    "damkar": "pemadam kebakaran", "dpupr": "pupr", "pu": "pupr", "dpu": "pupr",
    "kemenkes": "kementerian kesehatan", "kemendikbud": "kementerian pendidikan",
    "kemnaker": "kementerian tenaga kerja", "kemensos": "kementerian sosial",
    "kemenhub": "kementerian perhubungan", "kemenag": "kementerian agama",
    "banyu": "air", "cai": "air", "aia": "air",
    "apotik": "apotek", "ijin": "izin", "perijinan": "perizinan", "resiko": "risiko",
    "praktek": "praktik", "jaman": "zaman", "rubah": "ubah", "merubah": "mengubah",
    "hutang": "utang", "sertipikat": "sertifikat", "serifikat": "sertifikat",
    "kwitansi": "kuitansi", "nopember": "november", "pebruari": "februari",
    "ektp": "ktp", "ekatepe": "ktp", "katepe": "ktp", "hoax": "hoaks", "hoak": "hoaks",
    "online": "daring", "onlen": "daring",
    "ol": "daring", "ojol": "ojek daring", "apk": "aplikasi", "app": "aplikasi",
    "apps": "aplikasi", "signal": "sinyal", "sinyl": "sinyal",
    "inet": "internet", "intrnet": "internet", "wifi": "wifi", "hp": "ponsel",
    "handphone": "ponsel", "hape": "ponsel", "wa": "whatsapp", "wasap": "whatsapp",
    "medsos": "media sosial", "sosmed": "media sosial",
    "pinjol": "pinjaman daring", "judol": "judi daring",
    "angkot": "angkutan kota", "bis": "bus", "ktr": "kantor", "kntr": "kantor", "lpg": "elpiji",
}

# Where and when: the small words around a place.
_POSITION = {
    "dpn": "depan", "dpan": "depan", "blkg": "belakang", "blakang": "belakang",
    "smpg": "samping", "sblh": "sebelah", "sbelah": "sebelah", "ats": "atas", "bwh": "bawah",
    "dkt": "dekat", "dket": "dekat", "deket": "dekat", "tmpt": "tempat", "tmp": "tempat",
    "stiap": "setiap", "ttg": "tentang", "pdhl": "padahal",
    "pdahal": "padahal", "dll": "dan lain lain", "dsb": "dan sebagainya",
    "dst": "dan seterusnya",
    "sklian": "sekalian", "skali": "sekali", "smentara": "sementara", "smntr": "sementara",
    "slama": "selama", "slm": "selama", "slalu": "selalu", "sllu": "selalu",
    "hrsnya": "harusnya", "seharusnya": "harusnya", "brp": "berapa",
    "brapa": "berapa", "bbrapa": "beberapa", "jd": "jadi", "jdi": "jadi", "jdnya": "jadinya",
    "trjadi": "terjadi", "tjd": "terjadi", "sblmnya": "sebelumnya", "stlhnya": "setelahnya",
    "sbnrny": "sebenarnya", "mslhnya": "masalahnya", "kyknya": "sepertinya",
    "kayaknya": "sepertinya", "kykny": "sepertinya", "sptnya": "sepertinya",
    "dtg": "datang", "dateng": "datang", "plg": "pulang", "pulng": "pulang",
    "prgi": "pergi", "pgi": "pagi", "mlm": "malam", "malem": "malam", "kmrin": "kemarin",
    "bsok": "besok",
}

SLANG: dict[str, str] = {**_NEGATION, **_PEOPLE, **_COMMON, **_PLACES_AND_SERVICES,
                         **_POSITION}
