"""Photos and documents attached to reports: upload, media URLs fetched in the background,
signed links for the handling agency. See docs/attachments.md."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from services.intake.attachments import fetcher
from services.intake.attachments.api import bp
from services.intake.attachments.openapi import openapi_paths, openapi_schemas
from services.intake.attachments.service import Attachments, settings_from_env

__all__ = ["Attachments", "bp", "enqueue_media_url", "openapi_paths", "openapi_schemas",
           "settings_from_env"]


def enqueue_media_url(conn: Connection, tracking_id: str, url: str) -> None:
    """Records, in the caller's transaction, a media URL (Open311 media_url, a WhatsApp
    image) to be fetched and attached to the report in the background."""
    fetcher.enqueue(conn, tracking_id, url)
