"""Open311 GeoReport v2 served by intake under /open311/v2 (XML by default, JSON with .json)."""

from flask import Blueprint

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")


def openapi_paths() -> dict:
    """The OpenAPI path items of the JSON form of these endpoints."""
    return {}


def openapi_schemas() -> dict:
    return {}
