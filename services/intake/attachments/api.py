"""The attachment endpoints: the reporter uploads with the report's access token; the
reporter, the handling agency (a signed link) and the public (files of public reports only,
without kept GPS) list and fetch."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from services.infra.db import reading
from services.infra.signed_links import Verdict
from services.intake import ids
from services.intake.api import _owned_report, bearer_token, tracking_id_of
from services.intake.attachments import blobs, files
from services.intake.attachments.service import (
    FILE_PURPOSE,
    LIST_PURPOSE,
    MIB,
    Attachments,
    Full,
    Unavailable,
    file_path,
    full_json,
    public_json,
    report_facts,
)
from services.intake.problems import Problem

log = logging.getLogger(__name__)

bp = Blueprint("attachments", __name__, url_prefix="/api/v1")

# Room for the multipart framing and the keep_location field around the file itself.
MULTIPART_SLACK = 64 * 1024
_ID = re.compile(r"[0-9a-f]{32}")


def _attachments() -> Attachments:
    return current_app.extensions["lapor"].attachments


def _too_large(limit: int) -> Problem:
    size = f"{limit / MIB:g} MiB" if limit >= MIB else f"{limit // 1024} KiB"
    return Problem(413, "attachment_too_large", "File too large",
                   f"Send a file of at most {size}; make the photo smaller or split the PDF")


def _not_found(what: str = "attachment") -> Problem:
    if what == "report":
        return Problem(404, "report_not_found", "No such report", "No report has this "
                       "tracking id")
    return Problem(404, "attachment_not_found", "No such attachment",
                   "No attachment with this id is visible to you: check the link, or ask "
                   "for a fresh one")


@bp.post("/reports/<report_id:tracking_id>/attachments")
def upload_attachment(tracking_id: str):
    canonical = _owned_report(tracking_id)
    service = _attachments()
    limit = service.max_bytes
    # Refused by its declared length before a byte of the body is read.
    if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
        raise _too_large(limit)
    if request.mimetype != "multipart/form-data":
        raise Problem(415, "unsupported_media_type", "Send the file as multipart/form-data",
                      "Send the file as multipart/form-data in a field named `file`, with "
                      "keep_location=true beside it to keep the photo's GPS position")
    request.max_content_length = limit + MULTIPART_SLACK
    try:
        upload = request.files.get("file")
        keep = request.form.get("keep_location", "false").strip().lower()
        data = upload.read(limit + 1) if upload is not None else None
    except RequestEntityTooLarge:
        raise _too_large(limit) from None
    if upload is None or len(request.files) != 1:
        raise Problem(400, "file_required", "Send one file",
                      "Send exactly one file, in the multipart field named `file`",
                      errors=[{"field": "file", "message": "one photo or PDF"}])
    if keep not in ("true", "false", "1", "0", ""):
        raise Problem(422, "validation_failed", "Invalid fields", "keep_location is true or "
                      "false", errors=[{"field": "keep_location", "message": "true or false"}])
    if len(data) > limit:
        raise _too_large(limit)
    with reading(service.engine) as conn:
        facts = report_facts(conn, canonical)
    if facts.archived:
        raise Problem(409, "report_archived", "The report is archived",
                      "Files cannot be added to an archived report")
    try:
        row, created = service.add(canonical, data, anonymous=facts.anonymous,
                                   keep_location=keep in ("true", "1"), source="upload")
    except files.Refused as exc:
        raise Problem(422, exc.code, "File not accepted", exc.message) from None
    except Full:
        raise Problem(409, "too_many_attachments", "The report has all the files it may have",
                      f"A report may have at most {service.max_per_report} attachments; "
                      "put several photos in one PDF if you need more") from None
    except Unavailable:
        raise Problem(503, "attachments_unavailable", "Files cannot be stored right now",
                      "The file could not be checked or stored; nothing was kept. Please "
                      "try again shortly", headers={"Retry-After": "30"}) from None
    response = jsonify(full_json(_Row(row), file_path(row["id"])))
    # The same file sent again (a retry) is the first one: 200 with the same answer.
    response.status_code = 201 if created else 200
    response.headers["Location"] = file_path(row["id"])
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


class _Row:
    def __init__(self, mapping: dict):
        self.__dict__.update(mapping)


def _signed(service: Attachments, purpose: str, subject: str) -> tuple[bool, int | None]:
    """(whether the request carries a signed link, its expiry); 403/410 for a bad one."""
    expires, signature = request.args.get("expires"), request.args.get("signature")
    if expires is None and signature is None:
        return False, None
    verdict = (service.signer.verify(purpose, subject, expires, signature)
               if service.signer is not None else Verdict.INVALID)
    if verdict == Verdict.EXPIRED:
        raise Problem(410, "link_expired", "This link has expired",
                      "Signed links to attachments work for a limited time; open the ticket "
                      "again (staff view or a fresh notification) for a new link")
    if verdict != Verdict.VALID:
        raise Problem(403, "invalid_link", "This link is not valid",
                      "The link's signature does not match (it was changed or cut short); "
                      "use the whole link as it was sent")
    return True, int(expires)


@bp.get("/reports/<report_id:tracking_id>/attachments")
def list_attachments(tracking_id: str):
    canonical = tracking_id_of(tracking_id)
    service = _attachments()
    signed, expires = _signed(service, LIST_PURPOSE, canonical)
    token = None if signed else bearer_token()
    with reading(service.engine) as conn:
        facts = report_facts(conn, canonical)
        if facts is None:
            raise _not_found("report")
        rows = service.rows(conn, canonical)
    if signed:
        # File links last as long as the list's link, never longer.
        shown = [full_json(r, _with_query(file_path(r.id), service.signed_query(
            FILE_PURPOSE, r.id, expires))) for r in rows]
    elif token is not None:
        _owned_report(canonical)
        shown = [full_json(r, file_path(r.id)) for r in rows]
    else:
        shown = [public_json(r) for r in rows if facts.public and r.public_key]
    return jsonify({"tracking_id": canonical, "attachments": shown})


def attachments_for_staff(tracking_id: str) -> list[dict]:
    """The report's files for a staff member routing has let see the ticket, each with a
    signed link (INTAKE_ATTACHMENT_LINK_SECONDS; none without a link secret)."""
    service = _attachments()
    with reading(service.engine) as conn:
        rows = service.rows(conn, tracking_id)
    return [full_json(r, _with_query(file_path(r.id), service.signed_query(FILE_PURPOSE, r.id))
                      if service.signer is not None else None) for r in rows]


def _with_query(path: str, query: dict) -> str:
    return f"{path}?expires={query['expires']}&signature={query['signature']}"


@bp.get("/attachments/<attachment_id>")
def get_attachment(attachment_id: str):
    service = _attachments()
    attachment_id = attachment_id.strip().lower()
    if not _ID.fullmatch(attachment_id):
        raise _not_found()
    signed, _ = _signed(service, FILE_PURPOSE, attachment_id)
    token = None if signed else bearer_token()
    with reading(service.engine) as conn:
        row = service.row(conn, attachment_id)
    if row is None:
        raise _not_found()
    if signed:
        key, private = row.storage_key, True
    elif token is not None:
        if not ids.token_matches(token, row.access_token_hash):
            raise Problem(403, "wrong_access_token", "Access token does not match",
                          "This access token is not the one issued for this file's report; "
                          "leave it out to get the public copy")
        key, private = row.storage_key, True
    else:
        public = not row.confidential and row.status != "ARCHIVED"
        if not public or not row.public_key:
            raise _not_found()
        key, private = row.public_key, False
    try:
        data = service.blobs.get(key)
    except blobs.BlobNotFound:
        log.warning("attachment file missing from storage", extra={"tracking_id":
                                                                  row.tracking_id})
        raise _not_found() from None
    except Exception as exc:
        log.warning("attachment storage unavailable (%s)", type(exc).__name__)
        raise Problem(503, "attachments_unavailable", "Files cannot be read right now",
                      "Please try again shortly", headers={"Retry-After": "30"}) from None
    response = Response(data, mimetype=row.content_type)
    extension = files.EXTENSIONS.get(row.content_type, "bin")
    disposition = "inline" if row.content_type.startswith("image/") else "attachment"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{row.id}.{extension}"'
    # A file is shown, never run: no scripts, no plugins, no requests from it.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store" if private else "public, max-age=300"
    return response
