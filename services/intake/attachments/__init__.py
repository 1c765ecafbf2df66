"""Photos and documents attached to reports: upload, media URLs fetched in the background,
signed links for the handling agency."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy.engine import Connection

bp = Blueprint("attachments", __name__, url_prefix="/api/v1")


def enqueue_media_url(conn: Connection, tracking_id: str, url: str) -> None:
    """Records, in the caller's transaction, a media URL (Open311 media_url, a WhatsApp
    image) to be fetched and attached to the report in the background."""


def openapi_paths() -> dict:
    return {}


def openapi_schemas() -> dict:
    return {}
