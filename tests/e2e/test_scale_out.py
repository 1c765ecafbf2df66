"""Scaled out: two replicas of every service on one broker, each service's replicas sharing
its PostgreSQL database. A few hundred road reports from Sijunjung come in through both
intakes while one replica of each service is stopped and started again: killed (SIGKILL:
no drain, no flush), or stopped in order (SIGTERM, as Kubernetes stops a pod: in-flight
work finishes, claims are put back, the outbox is flushed). Every report accepted is still
opened once and dispatched to PUPR-13.03, with one webhook delivery for the agency and one
email for its reporter: the outbox rows a killed intake or routing left unsent are
published by the others after their lease, the events a dead consumer held are redelivered
and deduplicated on their id, the deliveries a killed notify had claimed are taken over
after theirs. The receiver and the inbox count
every copy: a delivery a killed notify had already sent is sent again under the same id,
which receivers deduplicate on (docs/webhooks.md); the test reports that as an expected
failure, and fails on any other repeat. Stopped in order, nothing is sent twice at all."""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from email.utils import parseaddr

import numpy as np
import psycopg
import pytest
import requests

from services.notify.signing import DELIVERY_HEADER, verify
from services.routing.tickets.duplicates import default_similarity, prepared_text, report_text
from tests.conftest import MANAGEMENT
from tests.e2e.harness import SECRET
from tests.e2e.replicas import Replicas, postgres_databases
from tests.integration.helpers import classifier, scrape, scraped, vhost_of, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.postgres]

REPORTS = 240
# Pairs of reports stay this far below the duplicate suggestion threshold (0.60), and each
# report is classified PUPR this surely (auto-dispatch needs 0.6): every one is its own
# ticket, dispatched straight to the agency.
MAX_SIMILARITY = 0.50
MIN_CONFIDENCE = 0.65
# PUPR subcategories the directory gives to another agency than the regency's PUPR office.
OTHER_AGENCIES = ("PUPR.JALAN_NASIONAL",)
# A killed replica's claims are taken over after their lease: 30 s for outbox rows, the
# longest send (2 x 5 s) + 30 s for a delivery.
SEND_TIMEOUT = "5"
SETTLE_SECONDS = 90

# -- reports: every one its own matter --------------------------------------------------------
# Sentences of four kinds; report (x, y) takes problem x, cause y, impact x+y and detail x+2y
# (mod 19): any two reports share at most one of the four sentences.
PLACES = [
    "Muaro", "Sumpur Kudus", "Palangki", "Tanjung Gadang", "Koto Tuo", "Kamang Baru",
    "Lubuk Tarok", "Kupitan", "Padang Laweh", "Silokek", "IV Nagari", "Pematang Panjang",
    "Sungai Lansek", "Tanjung Bonai Aur", "Limo Koto", "Durian Gadang", "Aie Angek",
    "Muaro Takung", "Sisawah", "Unggan", "Mangganti", "Kunangan", "Bukit Bual", "Latang",
    "Solok Ambah", "Sibakur", "Paru", "Tanjung Lolo", "Sungai Betung", "Kumanis", "Palaluar",
    "Koto Baru", "Silantai", "Tamparungo", "Calau", "Kampung Dalam", "Padang Sibusuk", "Lalan",
    "Sinyamu", "Lubuk Tarantang"]
PROBLEMS = [
    ("Jalan berlubang di {p}", "Jalan kabupaten di {p} penuh lubang sedalam lutut."),
    ("Aspal jalan kabupaten mengelupas di {p}",
     "Lapisan aspal jalan kabupaten di {p} mengelupas dan kerikilnya berserakan."),
    ("Badan jalan amblas di {p}", "Badan jalan menuju {p} amblas hampir setengah meter."),
    ("Drainase jalan tersumbat di {p}",
     "Selokan tepi jalan {p} tersumbat lumpur, air meluap ke aspal."),
    ("Jalan tanah becek di {p}",
     "Jalan kabupaten penghubung jorong di {p} masih tanah liat, berlubang dan becek."),
    ("Gorong-gorong jalan runtuh di {p}",
     "Gorong-gorong di bawah jalan {p} runtuh menyisakan lubang menganga."),
    ("Jalan retak memanjang di {p}",
     "Aspal jalan kabupaten di {p} retak memanjang seperti kulit buaya."),
    ("Perbaikan jalan mangkrak di {p}",
     "Proyek pengaspalan jalan {p} terhenti dan ruasnya dibiarkan terbongkar."),
    ("Bahu jalan tergerus di {p}",
     "Bahu jalan di {p} tergerus sehingga tepi aspal menggantung dan berlubang."),
    ("Tambalan jalan lepas di {p}",
     "Tambalan aspal jalan {p} terlepas lagi dan lubangnya makin dalam."),
    ("Jalan bergelombang di {p}", "Permukaan aspal jalan di {p} bergelombang parah dan berlubang."),
    ("Jalan rusak parah di {p}",
     "Ruas jalan kabupaten {p} rusak berat, batu koral mencuat di mana-mana."),
    ("Jalan ambles ke sungai di {p}", "Separuh badan jalan di {p} ambles ke arah sungai."),
    ("Jalan kabupaten belum diaspal di {p}",
     "Jalan kabupaten di {p} sampai sekarang belum pernah diaspal, hanya sirtu."),
    ("Lubang besar di tikungan jalan {p}", "Ada lubang besar tepat di tikungan tajam jalan {p}."),
    ("Jalan berlumpur di {p}",
     "Jalan menuju {p} rusak dan tertutup lumpur tebal dari galian yang tidak dirapikan."),
    ("Aspal jalan hancur di {p}",
     "Aspal jalan utama {p} hancur dan berlubang tergerus truk bermuatan berat."),
    ("Jalan kabupaten terputus di {p}",
     "Jalan kabupaten ke {p} terputus karena aspalnya runtuh dan berlubang dalam."),
    ("Jalan desa rusak di {p}", "Jalan desa di {p} rusak, aspalnya hilang tinggal bebatuan."),
]
CAUSES = [
    "Air hujan mengalir di atas badan jalan karena tidak ada parit.",
    "Truk bermuatan pasir dan batu melintas setiap hari melebihi tonase jalan.",
    "Kontraktor dulu memakai aspal tipis sekali.",
    "Tanah di bawah jalan labil dan terus bergeser.",
    "Pipa air bocor di bawah aspal sejak lama.",
    "Akar pohon besar mengangkat pinggiran aspal jalan.",
    "Saluran samping jalan terlalu dangkal untuk air hujan.",
    "Banjir bandang bulan lalu menggerus pondasinya.",
    "Galian kabel belum ditutup kembali dengan benar.",
    "Perawatan rutin tidak pernah dilakukan bertahun-tahun.",
    "Lapisan pondasi kurang dipadatkan waktu pembangunan.",
    "Alat berat perkebunan sawit lalu lalang di situ.",
    "Tebing di sisinya runtuh sedikit demi sedikit.",
    "Mata air muncul di tengah jalan membuat aspal lunak.",
    "Pengerjaan proyek ditinggal kontraktor sebelum selesai.",
    "Jalan ini menahan beban dump truck pasir sungai.",
    "Pemasangan gorong-gorong tidak sesuai ukuran.",
    "Tidak ada pemeliharaan sejak pengaspalan pertama dulu.",
    "Kendaraan proyek irigasi keluar masuk membawa material.",
]
IMPACTS = [
    "Sepeda motor warga sering tergelincir dan jatuh.",
    "Anak sekolah terpaksa berjalan kaki memutar jauh.",
    "Mobil bak terbuka pengangkut hasil bumi sulit lewat.",
    "Pedagang pasar mengeluh ongkos angkut jadi mahal.",
    "Petani karet kesulitan membawa getah ke penampung.",
    "Mobil pribadi harus menunggu bergantian melintas.",
    "Pengendara terpaksa turun dari motor di ruas itu.",
    "Genangan air membuat lubang tak terlihat pengendara.",
    "Truk sawit sering terperosok dan tertahan berjam-jam.",
    "Warga lansia takut bepergian ke kantor nagari.",
    "Pelek dan shockbreaker sepeda motor cepat rusak.",
    "Sudah terjadi kecelakaan yang melukai pengendara.",
    "Ojek menaikkan tarif karena medan berat.",
    "Guru dari luar nagari sering terlambat mengajar.",
    "Hasil panen padi telat sampai ke penggilingan.",
    "Jemaah masjid kesulitan datang waktu subuh.",
    "Warga harus mendorong motor melewati ruas itu.",
    "Sopir travel enggan mengantar penumpang ke sana.",
    "Pengantar gas elpiji menolak masuk ke kampung kami.",
]
DETAILS = [
    "Kerusakan sudah {n} bulan dibiarkan.",
    "Panjang ruas yang rusak kira-kira {n}00 meter.",
    "Warga sudah {n} kali melapor ke kecamatan tanpa hasil.",
    "Mohon Dinas PUPR segera meninjau lokasi.",
    "Kami berharap ada pengaspalan ulang tahun ini.",
    "Gotong royong menimbun batu hanya bertahan sepekan.",
    "Mohon segera ditimbun dan dipadatkan.",
    "Lokasinya dekat simpang menuju SD negeri {n}.",
    "Setiap hujan deras kondisinya makin buruk.",
    "Dulu pernah diperbaiki tetapi kualitasnya asal-asalan.",
    "Foto kerusakan sudah kami unggah di media sosial.",
    "Jalan ini satu-satunya akses ke ibu kota kecamatan.",
    "Lebar lubangnya sekitar {n} meter.",
    "Mohon anggaran perbaikan jalan dimasukkan dalam APBD.",
    "Sebelumnya wali nagari sudah mengirim surat.",
    "Perbaikan darurat sangat dibutuhkan sebelum musim hujan.",
    "Kami siap membantu tenaga saat perbaikan dilakukan.",
    "Mohon dicek oleh petugas dinas pekerjaan umum.",
    "Kerusakannya dimulai tepat setelah jembatan kecil.",
]
Q = len(PROBLEMS)


def road_reports(count: int) -> list[tuple[str, str]]:
    """`count` road reports from Sijunjung that routing's own classifier sends to PUPR and
    its duplicate detection keeps apart: candidates that do not are left out."""
    candidates = []
    for k, (x, y) in enumerate((x, y) for x in range(Q) for y in range(Q)):
        place = PLACES[(y * 7 + x) % len(PLACES)]
        title, problem = PROBLEMS[x]
        detail = DETAILS[(x + 2 * y) % Q].format(n=2 + k % 8)
        candidates.append((title.format(p=place), f"{problem.format(p=place)} {CAUSES[y]} "
                                                   f"{IMPACTS[(x + y) % Q]} {detail}"))
    model = classifier()
    sure = [(t, b) for t, b in candidates
            if (p := model.predict(t, b)).category == "PUPR" and p.confidence >= MIN_CONFIDENCE
            and p.subcategory not in OTHER_AGENCIES]
    similarity = default_similarity()
    scores = similarity.matrix([prepared_text(report_text(t, b)) for t, b in sure])
    chosen: list[int] = []
    for i in range(len(sure)):
        if not chosen or scores[i, chosen].max() < MAX_SIMILARITY:
            chosen.append(i)
    assert len(chosen) >= count, f"only {len(chosen)} distinct PUPR road reports"
    picked = [sure[i] for i in chosen[:count]]
    worst = float(np.max(scores[np.ix_(chosen[:count], chosen[:count])]
                         - np.eye(count) * 2))
    assert worst < MAX_SIMILARITY
    return picked


# -- the citizens' side ----------------------------------------------------------------------
class Citizens:
    """Submits reports through the intakes, each citizen's app retrying with its
    Idempotency-Key on the other replica when the one it asked is gone."""

    def __init__(self, replicas: Replicas):
        self.replicas = replicas
        self.accepted: dict[str, dict] = {}      # tracking id -> report sent (with email)
        self.failovers = 0
        self.replayed = 0
        self.lock = threading.Lock()

    def submit(self, k: int, title: str, body: str, prefer: int) -> None:
        report = {
            "kind": "PENGADUAN", "title": title, "body": body, "region_code": "13.03",
            "anonymous": False, "confidential": False,
            "reporter": {"name": f"Warga Sijunjung {k}", "email": f"warga{k:03d}@contoh.id",
                         "phone": f"0812{k:08d}"},
        }
        key = str(uuid.uuid4())
        deadline = time.monotonic() + 60
        for attempt in range(10_000):
            i = (prefer + attempt) % self.replicas.count
            try:
                response = requests.post(f"{self.replicas.base_url(i)}/api/v1/reports",
                                         json=report, headers={"Idempotency-Key": key},
                                         timeout=10)
            except requests.RequestException:
                response = None
            if response is not None and response.status_code == 201:
                answer = response.json()
                with self.lock:
                    self.accepted[answer["tracking_id"]] = report
                    self.failovers += attempt > 0
                    self.replayed += response.headers.get("Idempotent-Replayed") == "true"
                return
            if response is not None and response.status_code not in (502, 503, 504):
                raise AssertionError(f"report {k}: {response.status_code} {response.text}")
            assert time.monotonic() < deadline, f"report {k} accepted by no intake"
            time.sleep(0.05 if attempt % 2 == 0 else 0.3)

    def submit_all(self, texts: list[tuple[str, str]], errors: list) -> list[threading.Thread]:
        """One thread per intake replica, each with its share of the reports."""
        def work(i: int) -> None:
            try:
                for k in range(i, len(texts), self.replicas.count):
                    self.submit(k, *texts[k], prefer=i)
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,), daemon=True)
                   for i in range(self.replicas.count)]
        for thread in threads:
            thread.start()
        return threads


# -- looking into the system -----------------------------------------------------------------
def count(database_url: str, sql: str) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return conn.execute(sql).fetchone()[0]


def unsent_outbox_rows(replicas: Replicas) -> dict[str, int]:
    return {service: count(replicas.databases[service],
                           "SELECT count(*) FROM outbox WHERE published_at IS NULL")
            for service in ("intake", "routing", "notify")}


def queue_messages(replicas: Replicas) -> dict[str, int]:
    """Messages (ready or handed to a consumer) in each queue of the vhost that holds any,
    as the management API last counted them (it counts every few seconds)."""
    vhost = requests.utils.quote(vhost_of(replicas.amqp_url), safe="")
    queues = requests.get(f"{MANAGEMENT}/queues/{vhost}", auth=("guest", "guest"),
                          timeout=10).json()
    return {q["name"]: q.get("messages", 0) for q in queues if q.get("messages", 0)}


def settled(replicas: Replicas) -> bool:
    """Nothing left to do anywhere: every outbox row published, no delivery pending, no
    message waiting in a queue (work, retry or parking)."""
    return (not any(unsent_outbox_rows(replicas).values())
            and count(replicas.databases["notify"],
                      "SELECT count(*) FROM deliveries WHERE status = 'pending'") == 0
            and not queue_messages(replicas))


def stays_settled(replicas: Replicas, seconds: float = 6) -> bool:
    """Settled, and still so after the broker's statistics had time to catch up."""
    if not settled(replicas):
        return False
    time.sleep(seconds)
    return settled(replicas)


def held_by_the_dead(replicas: Replicas, service: str) -> set[str]:
    """Right after a kill: the outbox rows (intake, routing; their event ids) or deliveries
    (notify; their delivery ids) still leased and unfinished, which the dead replica had
    claimed (a live one holds its claims only while it publishes or sends)."""
    with psycopg.connect(replicas.databases[service], connect_timeout=5) as conn:
        if service == "notify":
            rows = conn.execute(
                "SELECT delivery_id FROM deliveries WHERE status = 'pending' AND attempts > 0"
                " AND next_attempt_at > now() + interval '10 seconds'").fetchall()
        else:
            rows = conn.execute(
                "SELECT event_id FROM outbox WHERE published_at IS NULL"
                " AND next_attempt_at > now() + interval '10 seconds'").fetchall()
    return {r[0] for r in rows}


def delivery_log(replicas: Replicas, delivery_ids: set[str]) -> dict[str, dict]:
    """notify's record of these deliveries: attempts claimed, and each attempt recorded."""
    with psycopg.connect(replicas.databases["notify"], connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT d.delivery_id, d.tracking_id, d.channel, d.status, d.attempts, a.attempt,"
            " a.at, a.outcome FROM deliveries d LEFT JOIN delivery_attempts a"
            " ON a.delivery_id = d.delivery_id WHERE d.delivery_id = ANY(%s)"
            " ORDER BY d.delivery_id, a.attempt", (sorted(delivery_ids),)).fetchall()
    log: dict[str, dict] = {}
    for delivery_id, tracking_id, channel, status, attempts, attempt, at, outcome in rows:
        entry = log.setdefault(delivery_id, {"tracking_id": tracking_id, "channel": channel,
                                             "status": status, "attempts": attempts,
                                             "recorded": []})
        if attempt is not None:
            entry["recorded"].append((attempt, outcome, at.isoformat(timespec="seconds")))
    return log


def work_done(replicas: Replicas, service: str, i: int) -> float:
    """What the replica did so far, from its own metrics."""
    text = scrape(replicas.metrics_port(service, i))
    if service == "intake":
        return sum(scraped(text, "lapor_events_published_total", type=t) or 0
                   for t in ("report.submitted",))
    if service == "routing":
        return scraped(text, "lapor_tickets_created_total", outcome="dispatched") or 0
    return sum(scraped(text, "lapor_notify_deliveries_total", channel=c,
                       outcome="delivered") or 0 for c in ("webhook", "email"))


@pytest.fixture
def replicas(amqp_url, tmp_path, request):
    with postgres_databases("intake", "routing", "notify") as databases:
        r = Replicas(amqp_url, tmp_path, databases, extra_env={
            "NOTIFY_WEBHOOK_TIMEOUT": SEND_TIMEOUT, "NOTIFY_SMTP_TIMEOUT": SEND_TIMEOUT,
            "LAPOR_SHUTDOWN_SECONDS": "10"})
        try:
            r.setup()
            yield r
        finally:
            r.close()
            if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
                print(r.log_tails())


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_two_replicas_each_one_killed_mid_stream_dispatch_and_deliver_every_report_once(
        replicas, how):
    texts = road_reports(REPORTS)
    started = time.monotonic()
    replicas.start_all()
    citizens, errors = Citizens(replicas), []
    threads = citizens.submit_all(texts, errors)
    kills, held, restarts = {}, {}, []

    def kill_and_restart(service: str, when: str) -> None:
        kills[service] = {"when": when, "done_before": work_done(replicas, service, 1),
                          "at": round(time.monotonic() - started, 1)}
        if how == "SIGKILL":
            replicas.kill(service, 1)
        else:
            assert replicas.stop(service, 1, timeout=30) == 0, f"{service}-1 did not drain"
        held[service] = held_by_the_dead(replicas, service)
        kills[service]["held"] = len(held[service])
        # Started again in the background: the stream goes on meanwhile.
        restart = threading.Thread(target=start_again, args=(service,), daemon=True)
        restart.start()
        restarts.append(restart)

    def start_again(service: str) -> None:
        try:
            replicas.start(service, 1)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    # intake-1 while it accepts reports, routing-1 while tickets are being opened, notify-1
    # while it sends.
    wait_for(lambda: errors or len(citizens.accepted) >= REPORTS // 3, 60,
             what="a third of the reports accepted")
    kill_and_restart("intake", f"{len(citizens.accepted)} reports accepted")
    wait_for(lambda: errors or len(replicas.agency.requests) >= REPORTS // 5, 60,
             what="a fifth of the reports at the agency")
    kill_and_restart("routing", f"{len(replicas.agency.requests)} webhooks received")
    wait_for(lambda: errors or len(replicas.agency.requests) >= REPORTS // 3, 60,
             what="a third of the reports at the agency")
    kill_and_restart("notify", f"{len(replicas.agency.requests)} webhooks received")
    for thread in threads + restarts:
        thread.join(90)
    assert not errors, errors
    ids = set(citizens.accepted)
    assert len(ids) == REPORTS, "every report was accepted by one intake or the other"

    # Everything arrives, then nothing is left anywhere that could still arrive twice.
    wait_for(lambda: ids <= {json.loads(r["body"])["tracking_id"]
                             for r in replicas.agency.requests}, SETTLE_SECONDS, interval=0.5,
             what="every report at the agency")
    try:
        wait_for(lambda: stays_settled(replicas), SETTLE_SECONDS, interval=0.5,
                 what="the system to settle")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: unsent outbox rows {unsent_outbox_rows(replicas)}, "
                             f"queues {queue_messages(replicas)}") from None

    hooks = collections.defaultdict(list)
    for hook in replicas.agency.requests:
        hooks[json.loads(hook["body"])["tracking_id"]].append(hook)
    assert set(hooks) == ids, f"webhooks for reports nobody sent: {set(hooks) - ids}"
    for tracking_id, received in hooks.items():
        payload = json.loads(received[0]["body"])
        assert payload["agency"]["code"] == "PUPR-13.03", (tracking_id, payload["agency"])
        assert payload["report"]["title"] == citizens.accepted[tracking_id]["title"]
        assert verify(SECRET, received[0]["headers"], received[0]["body"])
    # One delivery per report (a dead worker's send may be repeated under the same
    # X-Lapor-Delivery; a second delivery would be a second dispatch)...
    deliveries = {t: {h["headers"][DELIVERY_HEADER] for h in hs} for t, hs in hooks.items()}
    assert all(len(d) == 1 for d in deliveries.values()), \
        {t: d for t, d in deliveries.items() if len(d) != 1}

    # Each reporter hears once, about their own report.
    mails = collections.defaultdict(list)
    for mail in replicas.inbox.messages:
        mails[parseaddr(mail["To"])[1]].append(mail)
    assert set(mails) == {r["reporter"]["email"] for r in citizens.accepted.values()}
    for tracking_id, report in citizens.accepted.items():
        received = mails[report["reporter"]["email"]]
        assert all(tracking_id in m["Subject"] for m in received), \
            (tracking_id, [m["Subject"] for m in received])
        assert len({m["Message-ID"] for m in received}) == 1, \
            (tracking_id, [m["Subject"] for m in received])

    # The citizen sees every report dispatched to the agency (either intake answers).
    def not_dispatched() -> dict:
        views = {t: requests.get(f"{replicas.base_url(n % 2)}/api/v1/reports/{t}",
                                 timeout=10).json() for n, t in enumerate(sorted(ids))}
        return {t: (v.get("status"), (v.get("agency") or {}).get("code"))
                for t, v in views.items()
                if (v.get("status"), (v.get("agency") or {}).get("code"))
                != ("DISPATCHED", "PUPR-13.03")}

    wait_for(lambda: not not_dispatched(), 20, interval=0.5, what="every status DISPATCHED")
    assert count(replicas.databases["routing"], "SELECT count(*) FROM tickets") == REPORTS

    duration = time.monotonic() - started
    print(f"\n{REPORTS} reports ({citizens.failovers} failed over, {citizens.replayed} "
          f"replayed), {len(replicas.agency.requests)} webhooks, "
          f"{len(replicas.inbox.messages)} emails in {duration:.0f} s; kills: {kills}")
    # ...and each sent once: the receiver and the inbox count every request and message,
    # they do not deduplicate.
    copies = collections.Counter(h["headers"][DELIVERY_HEADER]
                                 for h in replicas.agency.requests)
    copies.update(m["Message-ID"].strip("<>").partition("@")[0]
                  for m in replicas.inbox.messages)
    repeated = {delivery_id: n for delivery_id, n in copies.items() if n > 1}
    if repeated:
        log = delivery_log(replicas, set(repeated))
        print(f"sent more than once: {repeated}\nnotify's record of them: {log}\n"
              f"deliveries notify-1 held when killed: {sorted(held['notify'])}")
        assert how == "SIGKILL", \
            f"sent more than once although every replica was stopped in order: {log}"
        # What notify documents (docs/webhooks.md: "deduplicate on X-Lapor-Delivery"; the
        # Message-ID likewise) and nothing else: a delivery notify-1 had claimed when it was
        # killed, whose attempt reached the receiver but was never recorded, sent again under
        # the same id once its lease ran out.
        unexplained = {d: n for d, n in repeated.items()
                       if d not in held["notify"]
                       or n - 1 > log[d]["attempts"] - len(log[d]["recorded"])}
        assert not unexplained, f"sent again without a dead sender to explain it: {unexplained}"
        pytest.xfail(
            f"notify delivers at least once, not exactly once: {len(repeated)} "
            f"deliveries ({', '.join(sorted({log[d]['channel'] for d in repeated}))}) that "
            "notify-1 was sending when SIGKILLed reached the receiver, their attempt went "
            "unrecorded, and they were sent again under the same X-Lapor-Delivery/Message-ID "
            "after the lease (documented: receivers deduplicate on that id)")
