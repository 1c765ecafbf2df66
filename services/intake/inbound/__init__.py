"""Inbound SMS (1708) and WhatsApp gateway webhooks under /api/v1/channels: a text message
becomes a report, or asks its status, or stops messages to the number (docs/channels.md).

places (region names in free text) and conversation (commands and replies) are plain
Python; store holds the tables; webhook is the request from signature to reply."""

from flask import Blueprint

from services.intake.inbound import settings, spec, webhook

bp = Blueprint("inbound", __name__, url_prefix="/api/v1/channels")


@bp.record_once
def _setup(state) -> None:
    # Read once, when the app is built: a bad secret or limit stops the process there.
    app = state.app
    app.extensions[webhook.EXTENSION] = webhook.Inbound.build(
        settings.from_config(app.config), app.config.get("REDIS_URL"))


@bp.post("/sms")
def sms():
    return webhook.handle("sms")


@bp.post("/whatsapp")
def whatsapp():
    return webhook.handle("whatsapp")


def openapi_paths() -> dict:
    return spec.openapi_paths()


def openapi_schemas() -> dict:
    return spec.openapi_schemas()
