"""Inbound SMS (1708) and WhatsApp gateway webhooks under /api/v1/channels."""

from flask import Blueprint

bp = Blueprint("inbound", __name__, url_prefix="/api/v1/channels")


def openapi_paths() -> dict:
    return {}


def openapi_schemas() -> dict:
    return {}
