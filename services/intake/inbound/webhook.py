"""One gateway message, from the signed request to the reply: authenticate, check, answer a
redelivery from the stored reply, count the sender's allowance, then do what the text asks
(a report, a question, a status, BATAL, STOP/START, help) and store it with the reply in one
transaction."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import sqlalchemy as sa
from flask import current_app, g, jsonify, request
from limits import parse_many, storage, strategies
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from lapor.v1 import common_pb2, events_pb2, routing_pb2
from services.infra import events, logs
from services.infra.db import reading
from services.intake import attachments, ids, reports
from services.intake.api import json_body
from services.intake.inbound import conversation, store
from services.intake.inbound.conversation import Intent
from services.intake.inbound.settings import SIGNATURE_HEADER, ChannelSettings
from services.intake.inbound.spec import GatewayMessage, received_at_problem
from services.intake.problems import Problem, validation
from services.intake.validation import (
    NewReport,
    Reporter,
    _message,
    normalise_phone,
    text_problem,
)

log = logging.getLogger(__name__)

OUTCOMES = ("report", "question", "status", "cancel", "opt_out", "opt_in", "help",
            "replayed", "rate_limited", "unauthenticated", "invalid")
MESSAGES = Counter("lapor_inbound_messages_total",
                   "Gateway messages by channel and what became of them",
                   ["channel", "outcome"])
for _channel in ("sms", "whatsapp"):
    for _outcome in OUTCOMES:
        MESSAGES.labels(_channel, _outcome)

EXTENSION = "lapor_inbound"
PURGE_SECONDS = 600.0  # how often a process deletes expired drafts and old messages


@dataclass
class Inbound:
    """What the webhooks hang on the app: the settings and the per-sender allowance."""

    settings: ChannelSettings
    limiter: strategies.RateLimiter
    limits: list
    last_purge: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, settings: ChannelSettings, redis_url: str | None) -> Inbound:
        # With LAPOR_REDIS_URL the counts hold across replicas, as the API's own limits do.
        backend = storage.storage_from_string(redis_url or "memory://")
        return cls(settings, strategies.MovingWindowRateLimiter(backend),
                   parse_many(settings.sender_limit))


@dataclass
class Message:
    channel: str
    message_id: str
    phone: str
    text: str
    media_url: str
    sender: str  # keyed hash of the phone


def handle(channel: str):
    inbound: Inbound = current_app.extensions[EXTENSION]
    settings = inbound.settings
    if channel not in settings.secrets:
        raise Problem(503, "channel_not_configured", "This channel is not open",
                      f"No shared secret is configured for the {channel} gateway "
                      f"(INTAKE_{channel.upper()}_GATEWAY_SECRET); the operator must set one "
                      "before messages are taken", headers={"Retry-After": "3600"})
    raw = request.get_data(cache=True)
    header = request.headers.get(SIGNATURE_HEADER)
    if not header:
        MESSAGES.labels(channel, "unauthenticated").inc()
        raise Problem(401, "signature_required", "Sign the message",
                      f"Send the header {SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the "
                      "raw body> made with the channel's shared secret")
    if not settings.signature_matches(channel, raw, header):
        MESSAGES.labels(channel, "unauthenticated").inc()
        raise Problem(401, "signature_mismatch", "The signature does not match",
                      f"{SIGNATURE_HEADER} must be sha256= and the hex HMAC-SHA256 of the "
                      "exact raw body with the channel's shared secret; check the secret "
                      "and that the body is not changed after signing")
    message = _parse(channel, settings)
    ctx = current_app.extensions["lapor"]
    _purge_now_and_then(inbound, ctx.engine)
    done = _handled_before(ctx.engine, message)
    if done is not None:
        return _replayed(channel, done)
    _count_sender(inbound, message)
    for _ in range(3):
        try:
            reply, tracking_id, outcome = _converse(ctx, message)
        except store.AlreadyHandled as done:
            return _replayed(channel, done)
        except sa.exc.IntegrityError:
            # Another request handled this message, or changed the sender's draft, at the
            # same moment: its reply is the answer, or the message is tried again.
            done = _handled_before(ctx.engine, message)
            if done is not None:
                return _replayed(channel, done)
            continue
        MESSAGES.labels(channel, outcome).inc()
        g.tracking_id = tracking_id or None
        with logs.bound(tracking_id=tracking_id or None):
            log.info("gateway message handled", extra={"channel": channel, "outcome": outcome})
        return _answer(reply, tracking_id)
    raise RuntimeError("a gateway message kept conflicting with concurrent ones")


def _handled_before(engine, message: Message) -> store.AlreadyHandled | None:
    with reading(engine) as conn:
        return store.previous_reply(conn, message.channel, message.message_id)


def _parse(channel: str, settings: ChannelSettings) -> Message:
    data = json_body()
    errors = []
    if not isinstance(data, dict):
        errors = [{"field": "(body)", "message": "send a JSON object with message_id, from "
                                                 "and text"}]
        checked = None
    else:
        try:
            checked = GatewayMessage.model_validate(data)
        except ValidationError as exc:
            checked = None
            errors = _field_errors(exc)
    if checked is not None:
        for name, value in (("text", checked.text or ""), ("media_url", checked.media_url)):
            if value and text_problem(value):
                errors.append({"field": name, "message": text_problem(value)})
        when = received_at_problem(checked.received_at)
        if when:
            errors.append({"field": "received_at", "message": when})
    if errors:
        MESSAGES.labels(channel, "invalid").inc()
        raise validation(errors)
    phone = normalise_phone(checked.sender)
    return Message(channel, checked.message_id, phone, (checked.text or "").strip(),
                   checked.media_url or "", settings.sender_hash(channel, phone))


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """One message per field, named as the gateway sends it ("from", not the model's name)."""
    found: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "(body)"
        info = GatewayMessage.model_fields.get("sender" if name == "from" else name)
        found.setdefault(name, _message(error, info))
    return [{"field": name, "message": message} for name, message in found.items()]


def _count_sender(inbound: Inbound, message: Message) -> None:
    """The sender's allowance (keyed by the hash, never the number); over it, 429."""
    key = f"{message.channel}:{message.sender[:32]}"
    try:
        over = [limit for limit in inbound.limits
                if not inbound.limiter.hit(limit, "inbound-sender", key)]
        if not over:
            return
        reset = max(inbound.limiter.get_window_stats(limit, "inbound-sender", key).reset_time
                    for limit in over)
    except Exception as exc:  # noqa: BLE001 - counting storage away: take the message
        log.warning("sender allowance unavailable (%s); message taken", type(exc).__name__)
        return
    wait = max(1, math.ceil(reset - time.time()))
    MESSAGES.labels(message.channel, "rate_limited").inc()
    raise Problem(429, "rate_limited", "Too many messages from this sender",
                  f"This sender sent more than {over[0]} messages; the message was not "
                  f"handled: send it again after {wait} seconds (Retry-After)",
                  headers={"Retry-After": str(wait)})


def _answer(reply: str, tracking_id: str, replayed: bool = False):
    response = jsonify({"reply": reply, "tracking_id": tracking_id or None})
    # A status reply may carry what only the sender may read.
    response.headers["Cache-Control"] = "no-store"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _replayed(channel: str, done: store.AlreadyHandled):
    MESSAGES.labels(channel, "replayed").inc()
    g.tracking_id = done.tracking_id or None
    return _answer(done.reply, done.tracking_id, replayed=True)


def _purge_now_and_then(inbound: Inbound, engine) -> None:
    now = time.monotonic()
    with inbound.lock:
        if now - inbound.last_purge < PURGE_SECONDS and inbound.last_purge:
            return
        inbound.last_purge = now
    try:
        with engine.begin() as conn:
            store.purge(conn)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not purge old gateway messages (%s)", type(exc).__name__)


# -- what the text asks for ------------------------------------------------------------------
def _converse(ctx, message: Message) -> tuple[str, str, str]:
    """(reply, tracking id or "", outcome) once stored."""
    command = conversation.parse(message.text)
    if command.intent == Intent.STATUS:
        return _finish(ctx, message, _status(ctx, message, command.argument)), "", "status"
    if command.intent == Intent.CANCEL:
        return _cancel(ctx, message), "", "cancel"
    if command.intent in (Intent.STOP, Intent.START):
        return _opt(ctx, message, opted_out=command.intent == Intent.STOP)
    if command.intent == Intent.HELP or (not message.text and not message.media_url):
        return _finish(ctx, message, conversation.HELP), "", "help"
    return _report(ctx, message)


def _finish(ctx, message: Message, reply: str,
            effects: Callable[[Connection], None] | None = None) -> str:
    """Stores the message as handled with its reply, and its effects, in one transaction."""
    reply = conversation.fit(reply, message.channel)
    with ctx.engine.begin() as conn:
        if effects is not None:
            effects(conn)
        store.record_message(conn, message.channel, message.message_id, reply)
    return reply


def _cancel(ctx, message: Message) -> str:
    """BATAL: drops the report waiting for an answer, if there is one."""
    with ctx.engine.begin() as conn:
        dropped = store.drop_draft(conn, message.channel, message.sender)
        reply = conversation.fit(conversation.CANCELLED if dropped
                                 else conversation.NOTHING_TO_CANCEL, message.channel)
        store.record_message(conn, message.channel, message.message_id, reply)
    return reply


def _opt(ctx, message: Message, *, opted_out: bool) -> tuple[str, str, str]:
    """STOP / START: notify hears it (contact.opted_out) and sends nothing more there."""
    event = events.new("contact.opted_out", "", events_pb2.ContactOptedOut(
        channel=message.channel, phone=message.phone, opted_out=opted_out), producer="intake")
    reply = _finish(ctx, message, conversation.STOPPED if opted_out else conversation.STARTED,
                    lambda conn: ctx.outbox.add(conn, event))
    ctx.outbox.wake()
    return reply, "", "opt_out" if opted_out else "opt_in"


def _status(ctx, message: Message, typed: str) -> str:
    if not typed:
        return conversation.STATUS_USAGE
    tracking_id = ids.normalise_tracking_id(typed)
    if tracking_id is None:
        return conversation.invalid_tracking_id(typed)
    with reading(ctx.engine) as conn:
        row, entries = reports.load(conn, tracking_id)
        own = row is not None and store.is_senders(conn, tracking_id, message.channel,
                                                   message.sender)
    # A confidential report of someone else does not exist, as far as this sender knows.
    if row is None or (row.confidential and not own):
        return conversation.not_found(tracking_id)
    view = reports.owner_view(row, entries) if own else reports.public_view(row, entries)
    return conversation.status(view, own=own)


def _report(ctx, message: Message) -> tuple[str, str, str]:
    channel, sender = message.channel, message.sender
    with reading(ctx.engine) as conn:
        draft = store.load_draft(conn, channel, sender)
    body = "\n".join(t for t in ((draft.body if draft else ""), message.text) if t)
    media = (*(draft.media_urls if draft else ()),
             *((message.media_url,) if message.media_url else ()))
    if len(body) < conversation.MIN_BODY:
        keep = store.Draft(body, media, ())
        reply = _finish(ctx, message, conversation.ASK_TEXT,
                        lambda conn: store.save_draft(conn, channel, sender, keep))
        return reply, "", "question"
    places = store.gazetteer(ctx.engine)
    finding = places.find(message.text, among=draft.choices if draft else ())
    if not finding.places and draft:
        finding = places.find(body)
    province_only = finding.found is not None and finding.found.kind == "provinsi"
    if finding.found is None or (province_only and draft is None):
        # A province alone is asked about once: it is often where the sender lives rather
        # than where it happened, and most public services are a regency's or a city's.
        # An answer that again names only a province is taken.
        choices = tuple(p.code for p in finding.places[:3]) if finding.ambiguous else ()
        question = (conversation.ask_choice([p.name for p in finding.places])
                    if finding.ambiguous else conversation.ASK_REGION)
        keep = store.Draft(body, media, choices)
        reply = _finish(ctx, message, question,
                        lambda conn: store.save_draft(conn, channel, sender, keep))
        return reply, "", "question"
    region = finding.found.code
    report = NewReport(kind="PENGADUAN", title=conversation.title_of(body), body=body[:10_000],
                       region_code=region, category=_category(ctx, body, region),
                       channel=channel, reporter=Reporter(phone=message.phone))
    replies: list[str] = []

    def also(conn: Connection, tracking_id: str) -> None:
        done = store.previous_reply(conn, channel, message.message_id)
        if done is not None:
            raise done
        reply = conversation.fit(conversation.accepted(tracking_id), channel)
        store.record_message(conn, channel, message.message_id, reply, tracking_id)
        store.record_sender(conn, tracking_id, channel, sender)
        store.drop_draft(conn, channel, sender)
        for url in media:
            attachments.enqueue_media_url(conn, tracking_id, url)
        replies.append(reply)

    answer, _ = reports.submit(ctx.engine, ctx.outbox, report, None, also=also)
    return replies[-1], answer["tracking_id"], "report"


def _category(ctx, body: str, region: str) -> str:
    """Routing's classifier's category when it is confident; "" when it is not, or does not
    answer in time: routing classifies every report on arrival anyway."""
    try:
        answer = ctx.routing.suggest(routing_pb2.SuggestRouteRequest(
            kind=common_pb2.REPORT_KIND_PENGADUAN, title=conversation.title_of(body),
            body=body[:10_000], region_code=region))
    except grpc.RpcError as exc:
        log.info("no category suggestion for a gateway message (%s)", exc.code().name)
        return ""
    return "" if answer.needs_triage else answer.category_code
