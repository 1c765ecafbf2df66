"""Fetching media URLs in the background: an Open311 media_url or a WhatsApp image is recorded
with its report (enqueue_media_url, in the report's transaction) and fetched here, with a
size cap and timeouts, only from public http(s) addresses (INTAKE_MEDIA_ALLOW_PRIVATE=1 lifts
that for tests), then checked like an upload. Failures that may pass (network, 5xx, scanner
down) are retried with growing delays, up to INTAKE_MEDIA_MAX_ATTEMPTS tries; a file we do not
take is given up at once. Several replicas may run it: a fetch is claimed by moving its next
attempt forward, which only one of them can do."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import requests
import sqlalchemy as sa
import urllib3
from prometheus_client import Counter
from sqlalchemy.engine import Connection

from services.infra import db, logs
from services.infra.db import utcnow
from services.infra.lifecycle import SupervisedLoop
from services.intake import storage
from services.intake.attachments import files
from services.intake.attachments.service import Full, Unavailable, report_facts, setting

log = logging.getLogger(__name__)

FETCHES = Counter("lapor_media_fetches_total", "Media URL fetches, by outcome", ["outcome"])
OUTCOMES = ("stored", "retry", "gave_up")
for _outcome in OUTCOMES:
    FETCHES.labels(_outcome)

PENDING, DONE, FAILED = "pending", "done", "failed"
LEASE = timedelta(minutes=5)       # a claimed fetch is tried again after this if its replica died
MAX_REDIRECTS = 3
BATCH = 5
MAX_URL = 2048
WHOLE_FETCH = 6  # a whole fetch, redirects included, gets this many times the timeout

_f = storage.media_fetches
_DUE = db.Statement(sa.select(_f.c.id, _f.c.next_attempt_at).where(
    _f.c.state == PENDING, _f.c.next_attempt_at <= sa.bindparam("now"))
    .order_by(_f.c.next_attempt_at).limit(BATCH))


class FetchError(Exception):
    def __init__(self, reason: str, permanent: bool):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def enqueue(conn: Connection, tracking_id: str, url: str) -> None:
    now = utcnow()
    conn.execute(storage.media_fetches.insert(), {
        "tracking_id": tracking_id, "url": url[:MAX_URL], "state": PENDING, "attempts": 0,
        "next_attempt_at": now, "last_error": "", "created_at": now})


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at an hour."""
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def _public_address(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchError("host not found", permanent=False) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global:
            raise FetchError("address not public", permanent=True)


def download(url: str, *, max_bytes: int, timeout: float, allow_private: bool) -> bytes:
    """The body at `url` (following at most 3 redirects, each checked); FetchError else.
    The whole fetch ends after WHOLE_FETCH times `timeout`, so a server that trickles
    cannot hold the fetcher."""
    deadline = time.monotonic() + WHOLE_FETCH * timeout
    session = requests.Session()
    session.trust_env = False  # no proxy or .netrc from the environment
    try:
        for _ in range(MAX_REDIRECTS + 1):
            if time.monotonic() > deadline:
                raise FetchError("too slow", permanent=False)
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FetchError("not an http(s) URL", permanent=True)
            if not allow_private:
                _public_address(parts.hostname, parts.port or (443 if parts.scheme == "https"
                                                                 else 80))
            try:
                response = session.get(url, stream=True, timeout=(timeout, timeout),
                                       allow_redirects=False,
                                       headers={"User-Agent": "lapor-intake/1"})
            except requests.RequestException as exc:
                raise FetchError(f"network: {type(exc).__name__}", permanent=False) from None
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                if response.status_code in (408, 429) or response.status_code >= 500:
                    raise FetchError(f"HTTP {response.status_code}", permanent=False)
                if response.status_code != 200:
                    raise FetchError(f"HTTP {response.status_code}", permanent=True)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError("too large", permanent=True)
                body = bytearray()
                try:
                    # read1: whatever has arrived (decoded), so the deadline is checked
                    # between small reads, not after a large one.
                    while chunk := response.raw.read1(64 * 1024, decode_content=True):
                        body += chunk
                        if len(body) > max_bytes:
                            raise FetchError("too large", permanent=True)
                        if time.monotonic() > deadline:
                            raise FetchError("too slow", permanent=False)
                except (requests.RequestException, urllib3.exceptions.HTTPError,
                        OSError) as exc:
                    raise FetchError(f"network: {type(exc).__name__}", permanent=False) \
                        from None
                return bytes(body)
        raise FetchError("too many redirects", permanent=True)
    finally:
        session.close()


class MediaFetcher:
    def __init__(self, attachments, config):
        self.attachments = attachments
        self.engine = attachments.engine
        self.allow_private = bool(setting(config, "MEDIA_ALLOW_PRIVATE"))
        self.max_attempts = max(1, int(setting(config, "MEDIA_MAX_ATTEMPTS")))
        self.timeout = float(setting(config, "MEDIA_TIMEOUT"))
        self.poll = float(setting(config, "MEDIA_POLL_SECONDS"))
        # One fetch may take WHOLE_FETCH timeouts (plus the scan); the loop beats between.
        self.loop = SupervisedLoop("attachment-fetcher", self._iteration, backoff_base=1.0,
                                   stall_after=max(120.0, 2 * WHOLE_FETCH * self.timeout
                                                   + attachments.scanner.timeout))

    def start(self) -> None:
        self.loop.start()

    def stop(self, timeout: float) -> bool:
        return self.loop.stop(timeout)

    def healthy(self) -> bool:
        return self.loop.healthy()

    def _iteration(self, loop: SupervisedLoop) -> None:
        done = self.run_once(beat=loop.beat)
        if done < BATCH:
            loop.wait(self.poll)

    def run_once(self, beat=lambda: None) -> int:
        """Tries the fetches that are due (at most BATCH); how many it tried."""
        # One statement on its own (db.unwrapped): the poll that finds nothing, every few
        # seconds on every replica, is one round trip on PostgreSQL instead of three.
        with db.unwrapped(self.engine) as conn:
            due = _DUE.all(conn, {"now": utcnow()})
        tried = 0
        for fetch_id, planned in due:
            beat()
            claimed = self._claim(fetch_id, planned)
            if claimed is not None:
                self._fetch(claimed)
                tried += 1
        return tried

    def _claim(self, fetch_id: int, planned):
        f = storage.media_fetches
        with self.engine.begin() as conn:
            taken = conn.execute(f.update().where(
                f.c.id == fetch_id, f.c.state == PENDING, f.c.next_attempt_at == planned)
                .values(next_attempt_at=utcnow() + LEASE, attempts=f.c.attempts + 1)).rowcount
            if not taken:
                return None  # another replica has it
            return conn.execute(sa.select(f).where(f.c.id == fetch_id)).first()

    def _fetch(self, fetch) -> None:
        with logs.bound(tracking_id=fetch.tracking_id):
            try:
                attachment_id = self._attach(fetch)
            except FetchError as exc:
                self._failed(fetch, exc.reason, exc.permanent)
                return
            self._finish(fetch.id, DONE, "", attachment_id)
            FETCHES.labels("stored").inc()
            log.info("media URL attached", extra={"attempt": fetch.attempts})

    def _attach(self, fetch) -> str:
        data = download(fetch.url, max_bytes=self.attachments.max_bytes, timeout=self.timeout,
                        allow_private=self.allow_private)
        with self.engine.connect() as conn:
            facts = report_facts(conn, fetch.tracking_id)
        try:
            # No consent to keep the location came with a media URL.
            row, _ = self.attachments.add(fetch.tracking_id, data, anonymous=facts.anonymous,
                                       keep_location=False, source="media_url")
        except files.Refused as exc:
            raise FetchError(f"refused: {exc.code}", permanent=True) from None
        except Full:
            raise FetchError("refused: too many attachments", permanent=True) from None
        except Unavailable as exc:
            raise FetchError(f"unavailable: {exc}", permanent=False) from None
        return row["id"]

    def _failed(self, fetch, reason: str, permanent: bool) -> None:
        if permanent or fetch.attempts >= self.max_attempts:
            self._finish(fetch.id, FAILED, reason, None)
            FETCHES.labels("gave_up").inc()
            log.warning("media URL given up (%s) after %d attempt(s)", reason, fetch.attempts)
            return
        f = storage.media_fetches
        with self.engine.begin() as conn:
            conn.execute(f.update().where(f.c.id == fetch.id).values(
                next_attempt_at=utcnow() + retry_delay(fetch.attempts),
                last_error=reason[:200]))
        FETCHES.labels("retry").inc()
        log.info("media URL fetch failed (%s); will retry", reason,
                 extra={"attempt": fetch.attempts})

    def _finish(self, fetch_id: int, state: str, reason: str, attachment_id: str | None) -> None:
        f = storage.media_fetches
        with self.engine.begin() as conn:
            # The URL goes: it may carry the gateway's access token.
            conn.execute(f.update().where(f.c.id == fetch_id).values(
                state=state, url="", last_error=reason[:200], attachment_id=attachment_id))
