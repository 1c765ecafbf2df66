"""The gateways' message and intake's answer as typed models, and the OpenAPI path items of
the two webhooks written from them (merged into intake's document by openapi.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from services.intake import models
from services.intake.inbound.settings import SIGNATURE_HEADER
from services.intake.openapi_parts import problem as _problem
from services.intake.openapi_parts import ref as _ref

MESSAGE_ID = "^[!-~]{1,200}$"
MEDIA_URL = "^https?://[!-~]+$"
RFC3339 = ("^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.][0-9]+)?"
           "(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$")


class GatewayMessage(BaseModel):
    """A text message as the SMS 1708 or WhatsApp gateway passes it on."""

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)

    message_id: str = Field(
        pattern=MESSAGE_ID, description="the provider's id of the message, 1 to 200 visible "
                                        "ASCII characters; a message sent again with the "
                                        "same id gets the first reply and changes nothing")
    sender: str = Field(
        alias="from", max_length=24, pattern=f"^{models.PHONE}$",
        json_schema_extra={"format": models.PHONE_FORMAT},
        description=f"the sender's number, e.g. +6281234567890 (Indonesian numbers; "
                    f"{models.PHONE_FORMAT_SAYS})")
    text: Annotated[str, Field(max_length=10_000, pattern=models.NO_NUL)] | None = Field(
        "", description="the message's text, at most 10000 characters (may be empty when "
                        "media_url is given)")
    media_url: Annotated[str, Field(max_length=2_000, pattern=MEDIA_URL)] | None = Field(
        None, description="an http(s) URL of a photo the sender attached (WhatsApp); it is "
                          "fetched and attached to the report in the background")
    received_at: Annotated[str, Field(max_length=40, pattern=RFC3339,
                                      json_schema_extra={"format": "date-time"})] | None = Field(
        None, description="when the provider received the message, ISO 8601 such as "
                          "2026-12-02T09:15:00+07:00")


class GatewayReply(BaseModel):
    """What the gateway sends back to the sender, at once."""

    model_config = ConfigDict(extra="forbid")

    reply: str = Field(description="the text to send to the sender: the tracking id, one "
                                   "question, a status; at most 160 GSM-7 characters on SMS")
    tracking_id: str | None = Field(description="the report the message created, if it did")


def received_at_problem(value: str | None) -> str | None:
    if not value:
        return None
    try:  # the pattern has the shape; the calendar says whether the day and time exist
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return "must be a date and time as ISO 8601, e.g. 2026-12-02T09:15:00+07:00"
    return None


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema) -> bool:
        return False


def openapi_schemas() -> dict:
    _, top = models_json_schema([(GatewayMessage, "validation"), (GatewayReply, "serialization")],
                                ref_template="#/components/schemas/{model}",
                                schema_generator=_Generator)
    return top["$defs"]


def _webhook(channel: str, name: str) -> dict[str, Any]:
    retry_after = {"Retry-After": {"description": "seconds to wait before sending again",
                                   "required": True,
                                   "schema": {"type": "integer", "minimum": 0}}}
    return {"post": {
        "operationId": f"receive{name}Message",
        "summary": f"A message to LAPOR from the {name} gateway",
        "tags": ["channels"],
        "description": (
            f"The {name} gateway passes on each message sent to LAPOR. A text becomes a "
            "report (region and category found in the text; otherwise one short question, "
            "answered by the sender's next message within 24 hours); `STATUS <tracking id>` "
            "answers the status; `BATAL` drops a report waiting for an answer; `STOP` and "
            "`START` stop and restart messages to the number; `BANTUAN`/`HELP` explains. "
            "The answer's `reply` is sent to the sender by the gateway. A message sent again "
            "with the same `message_id` gets the same answer and changes nothing "
            "(header Idempotent-Replayed: true). Authenticated by "
            f"`{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body>` with the "
            f"channel's shared secret (INTAKE_{channel.upper()}_GATEWAY_SECRET)."),
        "parameters": [{"name": SIGNATURE_HEADER, "in": "header", "required": True,
                        "description": "sha256= followed by the hex HMAC-SHA256 of the raw "
                                       "body with the channel's shared secret",
                        "schema": {"type": "string", "pattern": "^sha256=[0-9a-fA-F]{64}$"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref("GatewayMessage"),
            "example": {"message_id": "SM7f3a0c21", "from": "+6281234567890",
                        "text": "Jalan rusak berlubang di Nagari Muaro, Kab. Sijunjung",
                        "received_at": "2026-12-02T09:15:00+07:00"}}}},
        "responses": {
            "200": {"description": "Handled; send `reply` to the sender",
                    "headers": {"Idempotent-Replayed": {
                        "description": "present when the message was handled before",
                        "schema": {"type": "string", "enum": ["true"]}}},
                    "content": {"application/json": {"schema": _ref("GatewayReply")}}},
            "400": _problem("The body is not valid JSON (malformed_json)"),
            "401": _problem("No signature (signature_required) or one that does not match "
                            "the body and the channel's secret (signature_mismatch)"),
            "413": _problem("Body larger than the API takes (payload_too_large)"),
            "415": _problem("Not sent as application/json (unsupported_media_type)"),
            "422": _problem("Invalid fields (validation_failed, with `errors` naming each)"),
            "429": _problem("Too many messages from this sender (rate_limited); the message "
                            "was not handled: send it again after Retry-After seconds",
                            retry_after),
            "503": _problem("The channel has no shared secret configured "
                            "(channel_not_configured), or storage is temporarily unavailable "
                            "(temporarily_unavailable): nothing was saved, send it again",
                            retry_after),
        },
    }}


def openapi_paths() -> dict:
    return {"/api/v1/channels/sms": _webhook("sms", "SMS"),
            "/api/v1/channels/whatsapp": _webhook("whatsapp", "WhatsApp")}
