"""The attachment endpoints in the OpenAPI document (merged by services/intake/openapi.py)."""

from __future__ import annotations

from services.intake import ids
from services.intake.attachments.files import EXTENSIONS
from services.intake.openapi_parts import problem as _problem
from services.intake.openapi_parts import ref as _ref

_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_TYPES = sorted(EXTENSIONS)
_INT = {"type": "integer", "minimum": 0}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                                "required": True, "schema": _INT}}


def _tracking_id() -> dict:
    return {"name": "tracking_id", "in": "path", "required": True,
            "description": "the report's tracking id, e.g. LPR-7K2-M9Q-XD4 (its last "
                           "character is a check character)",
            "schema": {"type": "string", "pattern": ids.TRACKING_ID_PATTERN,
                       "format": "lapor-tracking-id"}}


def _link_params(what: str) -> list[dict]:
    return [
        {"name": "expires", "in": "query", "required": False,
         "description": f"with `signature`: a signed link to {what}, valid until this Unix "
                        "time (seconds). Signed links are handed to the handling agency in "
                        "its webhook and the staff view; they need no token.",
         "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}},
        {"name": "signature", "in": "query", "required": False,
         "description": "the link's signature (hex HMAC-SHA256); use the link whole as it "
                        "was sent",
         "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}}]


_LINK_ERRORS = {
    "403": _problem("A signed link whose signature does not match: changed or cut short "
                    "(invalid_link); or a token that is not the report's "
                    "(wrong_access_token)"),
    "410": _problem("A signed link past its expiry (link_expired): ask for a fresh one"),
}
_UNAVAILABLE = _problem("File storage or the virus scanner is unavailable; nothing was kept "
                        "(attachments_unavailable), or the database "
                        "(temporarily_unavailable); retry after Retry-After seconds",
                        _RETRY_AFTER)
_LOCATION = {"description": "the file", "required": True, "schema": {"type": "string"}}
_FILE_LINK = {"GetAttachment": {"operationId": "getAttachment",
                                "parameters": {"attachment_id": "$response.body#/id"}}}
_BAD_REQUEST = _problem("Not a tracking id (invalid_tracking_id), the access token outside the "
                        "Authorization header (token_not_in_header), or not exactly one file "
                        "in the field `file` (file_required)")


def openapi_paths() -> dict:
    return {
        "/api/v1/reports/{tracking_id}/attachments": {
            "post": {
                "operationId": "uploadAttachment",
                "summary": "Attach a photo or PDF to your report",
                "description": (
                    "With the report's access token. One file per request in the multipart "
                    "field `file`: a JPEG, PNG or WebP photo, or a PDF, of at most "
                    "INTAKE_ATTACHMENT_MAX_BYTES (10 MiB by default; a larger Content-Length "
                    "is refused before the body is read), and at most "
                    "INTAKE_ATTACHMENT_MAX_PER_REPORT files (10) per report. The type is "
                    "read from the content, never the file name. Photos are decoded whole "
                    "and re-encoded: every piece of metadata (camera, serial numbers, date, "
                    "comments, EXIF, XMP, ICC) is dropped; the GPS position is kept only with "
                    "keep_location=true and never for anonymous reports, and the public copy "
                    "never has it. The same file sent again for the report is not stored twice "
                    "(200, Idempotent-Replayed). PDFs are kept as sent; an anonymous reporter's "
                    "PDF whose "
                    "document properties may name someone (author, title, XMP) is refused "
                    "(identifying_pdf). Files may be scanned for malware."),
                "parameters": [_tracking_id()],
                "security": [{"reportToken": []}],
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"],
                               "properties": {
                                   "file": {"type": "string", "format": "binary",
                                            "description": "the photo or PDF"},
                                   "keep_location": {
                                       "type": "string", "enum": ["true", "false"],
                                       "description": "keep the photo's GPS position for "
                                                      "the handling agency (default false)"}}},
                    "encoding": {"file": {"contentType": ", ".join(_TYPES)}}}}},
                "responses": {
                    "201": {"description": "Stored",
                            "headers": {"Location": _LOCATION},
                            "content": {"application/json": {"schema": _ref("Attachment")}},
                            "links": _FILE_LINK},
                    "200": {"description": "The same file was stored for this report before "
                                           "(a retry): its first answer",
                            "headers": {"Location": _LOCATION, "Idempotent-Replayed": {
                                "description": "the file was already there",
                                "required": True,
                                "schema": {"type": "string", "enum": ["true"]}}},
                            "content": {"application/json": {"schema": _ref("Attachment")}},
                            "links": _FILE_LINK},
                    "400": _BAD_REQUEST,
                    "401": _problem("No access token (access_token_required)"),
                    "403": _problem("The token is not this report's (wrong_access_token)"),
                    "404": _problem("No such report (report_not_found)"),
                    "409": _problem("The report has the most files allowed "
                                    "(too_many_attachments) or is archived (report_archived)"),
                    "413": _problem("The file is larger than allowed (attachment_too_large)"),
                    "415": _problem("Not multipart/form-data (unsupported_media_type)"),
                    "422": _problem(
                        "The file is not accepted: not an accepted type by its content "
                        "(unsupported_type), an empty file (empty_file), a damaged or cut-short "
                        "image (damaged_image), too many pixels (image_too_large), an "
                        "incomplete PDF (damaged_pdf), an anonymous reporter's PDF that may "
                        "name someone (identifying_pdf), malware found (infected_file); or "
                        "keep_location is not true/false (validation_failed)"),
                    "429": _problem("Too many requests (rate_limited)", _RETRY_AFTER),
                    "503": _UNAVAILABLE,
                },
            },
            "get": {
                "operationId": "listAttachments",
                "summary": "The files attached to a report",
                "description": (
                    "With the report's access token: every file. With a signed link (the "
                    "handling agency's, from its webhook): every file, each `url` a signed "
                    "link that expires with this one. Without either: the files of a public "
                    "report (not confidential, not archived), as the public copy (no GPS; "
                    "PDFs that may name the reporter are left out)."),
                "parameters": [_tracking_id(), *_link_params("this list")],
                "security": [{}, {"reportToken": []}],
                "responses": {
                    "200": {"description": "The files you may see",
                            "content": {"application/json": {
                                "schema": _ref("AttachmentList")}}},
                    "400": _problem("Not a tracking id (invalid_tracking_id) or the token "
                                    "outside the Authorization header (token_not_in_header)"),
                    "401": _problem("A malformed Authorization header "
                                    "(access_token_required)"),
                    **_LINK_ERRORS,
                    "404": _problem("No such report (report_not_found)"),
                    "429": _problem("Too many requests (rate_limited)", _RETRY_AFTER),
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/api/v1/attachments/{attachment_id}": {
            "get": {
                "operationId": "getAttachment",
                "summary": "One attached file",
                "description": (
                    "With a signed link or the report's access token: the file as stored. "
                    "Without: the public copy, for files of public reports only (404 "
                    "otherwise, whether or not the file exists). Images are served inline, "
                    "PDFs as a download, both with a sandboxing Content-Security-Policy."),
                "parameters": [
                    {"name": "attachment_id", "in": "path", "required": True,
                     "description": "the attachment's id", "schema": _ID},
                    *_link_params("this file")],
                "security": [{}, {"reportToken": []}],
                "responses": {
                    "200": {"description": "The file",
                            "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                        for t in _TYPES}},
                    "400": _problem("The token outside the Authorization header "
                                    "(token_not_in_header)"),
                    **_LINK_ERRORS,
                    "404": _problem("No such file, or not one you may see "
                                    "(attachment_not_found)"),
                    "429": _problem("Too many requests (rate_limited)", _RETRY_AFTER),
                    "503": _UNAVAILABLE,
                },
            },
        },
    }


def _attachment(public: bool) -> dict:
    properties = {
        "id": _ID,
        "content_type": {"type": "string", "enum": _TYPES},
        "created_at": {"type": "string", "format": "date-time"},
        "url": {"type": "string", "description": "where to get the file"},
    }
    if not public:
        properties.update({
            "size": {"type": "integer", "minimum": 1, "description": "bytes"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "location_kept": {"type": "boolean",
                              "description": "the photo keeps its GPS position"},
            "url": {"type": ["string", "null"],
                    "description": "the file's path; in a signed list, a signed link"},
        })
    return {"type": "object", "additionalProperties": False,
            "required": sorted(properties), "properties": properties}


def openapi_schemas() -> dict:
    return {
        "Attachment": {**_attachment(public=False),
                       "description": "A file as its reporter and the handling agency see it"},
        "PublicAttachment": {**_attachment(public=True),
                             "description": "A file of a public report, as the public sees it"},
        "AttachmentList": {
            "type": "object", "additionalProperties": False,
            "required": ["tracking_id", "attachments"],
            "properties": {
                "tracking_id": {"type": "string"},
                "attachments": {"type": "array", "items": {
                    "oneOf": [_ref("Attachment"), _ref("PublicAttachment")]}}}},
    }
