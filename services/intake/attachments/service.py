"""Attachments as intake keeps them: settings (read once, failing fast), the checks, the scan,
the blob store and the table together, and the allow-listed views of an attachment for the
reporter, the handling agency (signed links) and the public."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.engine import Engine

from services.infra import logs, signed_links
from services.infra.config import PROJECT_ROOT, ConfigError, Env
from services.infra.db import as_utc, reading, utcnow
from services.intake import storage
from services.intake.attachments import blobs, files
from services.intake.attachments.scan import Scanner, ScanResult

log = logging.getLogger(__name__)

FILE_PURPOSE = "attachment"        # a signed link to one file; subject: the attachment id
LIST_PURPOSE = "attachments"       # a signed link to a report's list; subject: tracking id
MIB = 1024 * 1024

STORED = Counter("lapor_attachments_stored_total", "Attachments stored, by source",
                 ["source"])
REFUSED = Counter("lapor_attachments_refused_total", "Attachments refused, by reason",
                  ["reason"])
for _source in ("upload", "media_url"):
    STORED.labels(_source)

# app.config key -> (environment variable, default)
SETTINGS = {
    "ATTACHMENT_MAX_BYTES": ("INTAKE_ATTACHMENT_MAX_BYTES", 10 * MIB),
    "ATTACHMENT_MAX_PER_REPORT": ("INTAKE_ATTACHMENT_MAX_PER_REPORT", 10),
    "ATTACHMENT_MAX_PIXELS": ("INTAKE_ATTACHMENT_MAX_PIXELS", files.DEFAULT_MAX_PIXELS),
    "ATTACHMENTS_DIR": ("INTAKE_ATTACHMENTS_DIR", str(PROJECT_ROOT / "var" / "attachments")),
    "ATTACHMENTS_S3_BUCKET": ("INTAKE_ATTACHMENTS_S3_BUCKET", ""),
    "ATTACHMENTS_S3_ENDPOINT": ("INTAKE_ATTACHMENTS_S3_ENDPOINT", ""),
    "ATTACHMENTS_S3_PREFIX": ("INTAKE_ATTACHMENTS_S3_PREFIX", "attachments/"),
    "VIRUS_SCAN_COMMAND": ("INTAKE_VIRUS_SCAN_COMMAND", ""),
    "VIRUS_SCAN_TIMEOUT": ("INTAKE_VIRUS_SCAN_TIMEOUT", 30.0),
    "ATTACHMENT_UPLOAD_SECONDS": ("INTAKE_ATTACHMENT_UPLOAD_SECONDS", 120.0),
    "ATTACHMENT_LINK_SECONDS": ("INTAKE_ATTACHMENT_LINK_SECONDS", 7 * 24 * 3600.0),
    "MEDIA_ALLOW_PRIVATE": ("INTAKE_MEDIA_ALLOW_PRIVATE", False),
    "MEDIA_MAX_ATTEMPTS": ("INTAKE_MEDIA_MAX_ATTEMPTS", 6),
    "MEDIA_TIMEOUT": ("INTAKE_MEDIA_TIMEOUT", 10.0),
    "MEDIA_POLL_SECONDS": ("INTAKE_MEDIA_POLL_SECONDS", 2.0),
}


def settings_from_env(env: Env) -> dict:
    values = {}
    for key, (var, default) in SETTINGS.items():
        if isinstance(default, bool):
            values[key] = env.bool(var, default)
        elif isinstance(default, int):
            values[key] = env.int(var, default)
        elif isinstance(default, float):
            values[key] = env.seconds(var, default)
        else:
            values[key] = env.str(var, default)
    signer = signed_links.from_env(env)
    values["ATTACHMENT_LINK_SECRET"] = signer.secret.decode() if signer else ""
    return values


def setting(config, key: str):
    value = config.get(key)
    return SETTINGS[key][1] if value is None or value == "" else value


class Unavailable(Exception):
    """The file could not be checked or stored now (scanner or storage down): nothing kept."""


class Full(Exception):
    """The report has as many attachments as allowed."""


@dataclass(frozen=True)
class ReportFacts:
    anonymous: bool
    public: bool       # the public may see the report's content (and so its files)
    archived: bool


def report_facts(conn, tracking_id: str) -> ReportFacts | None:
    r = storage.reports
    row = conn.execute(sa.select(r.c.anonymous, r.c.confidential, r.c.status).where(
        r.c.tracking_id == tracking_id)).first()
    if row is None:
        return None
    archived = row.status == "ARCHIVED"
    # Public: what the public view shows the content of (not confidential), and not
    # archived (spam and abuse are archived; a served file would spread them).
    return ReportFacts(anonymous=row.anonymous, public=not row.confidential and not archived,
                       archived=archived)


class Attachments:
    """The attachment machinery one intake process holds (app.extensions["lapor"]
    .attachments): built from the settings at start-up, given the engine once it is open."""

    def __init__(self, config):
        self.max_bytes = int(setting(config, "ATTACHMENT_MAX_BYTES"))
        self.max_per_report = int(setting(config, "ATTACHMENT_MAX_PER_REPORT"))
        self.max_pixels = int(setting(config, "ATTACHMENT_MAX_PIXELS"))
        self.link_seconds = float(setting(config, "ATTACHMENT_LINK_SECONDS"))
        # A whole upload may take this long to arrive (a slow mobile network), where other
        # requests get INTAKE_REQUEST_TIMEOUT.
        self.upload_seconds = float(setting(config, "ATTACHMENT_UPLOAD_SECONDS"))
        for key, value in (("INTAKE_ATTACHMENT_MAX_BYTES", self.max_bytes),
                           ("INTAKE_ATTACHMENT_MAX_PER_REPORT", self.max_per_report),
                           ("INTAKE_ATTACHMENT_MAX_PIXELS", self.max_pixels)):
            if value <= 0:
                raise ConfigError(f"{key} must be above 0, got {value}")
        if self.max_bytes > 100 * MIB:
            raise ConfigError("INTAKE_ATTACHMENT_MAX_BYTES: at most 100 MiB (files are "
                              f"checked in memory), got {self.max_bytes}")
        secret = config.get("ATTACHMENT_LINK_SECRET") or ""
        self.signer = signed_links.LinkSigner(secret.encode()) if secret else None
        self.scanner = Scanner(setting(config, "VIRUS_SCAN_COMMAND"),
                               float(setting(config, "VIRUS_SCAN_TIMEOUT")))
        bucket = config.get("ATTACHMENTS_S3_BUCKET") or ""
        if bucket:
            self.blobs = blobs.S3Blobs(bucket,
                                       endpoint_url=config.get("ATTACHMENTS_S3_ENDPOINT") or None,
                                       prefix=setting(config, "ATTACHMENTS_S3_PREFIX"))
        else:
            self.blobs = blobs.LocalBlobs(setting(config, "ATTACHMENTS_DIR"))
        self.config = config
        self.engine: Engine | None = None
        self.fetcher = None
        if self.signer is None:
            log.warning("%s is not set: the handling agency gets no signed links to "
                        "attachments", signed_links.SECRET_VARIABLE)

    def attach(self, engine: Engine) -> Attachments:
        from services.intake.attachments.fetcher import MediaFetcher

        self.engine = engine
        self.fetcher = MediaFetcher(self, self.config)
        return self

    # -- workers ------------------------------------------------------------------------------
    def start(self) -> None:
        if self.fetcher is not None:
            self.fetcher.start()

    def stop(self, timeout: float) -> None:
        if self.fetcher is not None:
            self.fetcher.stop(timeout)

    def status(self) -> dict:
        return {"storage": self.blobs.check(),
                "fetcher": self.fetcher.healthy() if self.fetcher else False,
                "signed_links": self.signer is not None,
                "virus_scan": self.scanner.enabled}

    # -- adding ------------------------------------------------------------------------------
    def count(self, conn, tracking_id: str) -> int:
        a = storage.attachments
        return conn.execute(sa.select(sa.func.count()).select_from(a).where(
            a.c.tracking_id == tracking_id)).scalar_one()

    def add(self, tracking_id: str, data: bytes, *, anonymous: bool, keep_location: bool,
            source: str) -> tuple[dict, bool]:
        """Checks, scans and stores one file for the report; (the row, whether it is new:
        the same file sent again gets the first row back). Raises files.Refused (not a file
        we take), Full, or Unavailable (nothing stored)."""
        try:
            cleaned = files.clean(data, anonymous=anonymous, keep_location=keep_location,
                                  max_pixels=self.max_pixels)
        except files.Refused as exc:
            REFUSED.labels(exc.code).inc()
            raise
        digest = hashlib.sha256(cleaned.data).hexdigest()
        with reading(self.engine) as conn:
            earlier = self._same(conn, tracking_id, digest)
            if earlier is not None:
                return earlier, False
            if self.count(conn, tracking_id) >= self.max_per_report:
                raise Full()
        # What was sent is scanned: the re-encoded image is new pixels, but a PDF is kept
        # as sent.
        verdict = self.scanner.scan(data)
        if verdict == ScanResult.INFECTED:
            REFUSED.labels("infected").inc()
            raise files.Refused("infected_file", "The virus scanner found malware in this "
                                "file; it was not stored. Send a clean copy")
        if verdict == ScanResult.FAILED:
            raise Unavailable("virus scan failed")
        attachment_id = secrets.token_hex(16)
        public_key = None
        if cleaned.public_data is not None:
            public_key = (attachment_id if cleaned.public_data is cleaned.data
                          else attachment_id + ".public")
        row = {"id": attachment_id, "tracking_id": tracking_id,
               "content_type": cleaned.content_type, "size": len(cleaned.data),
               "sha256": digest, "storage_key": attachment_id, "public_key": public_key,
               "location_kept": cleaned.location_kept, "source": source,
               "created_at": utcnow()}
        written = []
        try:
            self.blobs.put(attachment_id, cleaned.data, cleaned.content_type)
            written.append(attachment_id)
            if public_key and public_key != attachment_id:
                self.blobs.put(public_key, cleaned.public_data, cleaned.content_type)
                written.append(public_key)
            with self.engine.begin() as conn:
                if self.count(conn, tracking_id) >= self.max_per_report:
                    raise Full()
                conn.execute(storage.attachments.insert(), row)
        except Full:
            self._forget(written)
            raise
        except sa.exc.IntegrityError:
            # The same file arrived twice at once: the first one stored is the answer.
            self._forget(written)
            with reading(self.engine) as conn:
                earlier = self._same(conn, tracking_id, digest)
            if earlier is None:
                raise Unavailable("IntegrityError") from None
            return earlier, False
        except Exception as exc:
            self._forget(written)
            log.warning("attachment not stored (%s)", type(exc).__name__,
                        extra={"tracking_id": tracking_id})
            raise Unavailable(type(exc).__name__) from exc
        STORED.labels(source).inc()
        with logs.bound(tracking_id=tracking_id):
            log.info("attachment stored", extra={"content_type": cleaned.content_type,
                                                 "bytes": len(cleaned.data), "source": source})
        return row, True

    def _same(self, conn, tracking_id: str, digest: str) -> dict | None:
        a = storage.attachments
        row = conn.execute(sa.select(a).where(a.c.tracking_id == tracking_id,
                                              a.c.sha256 == digest)).first()
        return dict(row._mapping) if row is not None else None

    def _forget(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.blobs.delete(key)
            except Exception as exc:  # noqa: BLE001 - an orphan file is the lesser harm
                log.warning("could not remove an unstored attachment's file (%s)",
                            type(exc).__name__)

    # -- reading ----------------------------------------------------------------------------
    def rows(self, conn, tracking_id: str) -> list:
        a = storage.attachments
        return conn.execute(sa.select(a).where(a.c.tracking_id == tracking_id).order_by(
            a.c.created_at, a.c.id)).all()

    def row(self, conn, attachment_id: str):
        a, r = storage.attachments, storage.reports
        return conn.execute(
            sa.select(a, r.c.access_token_hash, r.c.confidential, r.c.status)
            .select_from(a.join(r, r.c.tracking_id == a.c.tracking_id))
            .where(a.c.id == attachment_id)).first()

    def signed_query(self, purpose: str, subject: str, expires: int | None = None) -> dict:
        if expires is not None:
            return {"expires": str(expires),
                    "signature": self.signer.signature(purpose, subject, expires)}
        return self.signer.query(purpose, subject, self.link_seconds)


def file_path(attachment_id: str) -> str:
    return f"/api/v1/attachments/{attachment_id}"


def full_json(row, url: str | None) -> dict:
    """The reporter's and the handling agency's view of one attachment."""
    return {"id": row.id, "content_type": row.content_type, "size": row.size,
            "sha256": row.sha256, "location_kept": row.location_kept,
            "created_at": _iso(row.created_at), "url": url}


def public_json(row) -> dict:
    """The public's view: what the file is and where to get the copy for the public."""
    return {"id": row.id, "content_type": row.content_type, "created_at": _iso(row.created_at),
            "url": file_path(row.id)}


def _iso(value) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")
