"""What leaves notify, built field by field from explicit allow-lists; never by dumping a
message. Agencies get the report and, only when the reporter is not anonymous, the name;
never an email address or a phone number: they reach reporters through the platform."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime

from lapor.v1 import common_pb2, events_pb2
from services.infra import signed_links
from services.infra.config import ConfigError, Env
from services.notify import dates
from services.notify.store import Contact


def _kind(value: int) -> str:
    name = common_pb2.ReportKind.Name(value) if value in common_pb2.ReportKind.values() else ""
    return "" if name.endswith("UNSPECIFIED") else name.removeprefix("REPORT_KIND_")


def state_name(value: int) -> str:
    """TICKET_STATE_SUBMITTED -> SUBMITTED ('' when unset or unknown)."""
    if value not in common_pb2.TicketState.values():
        return ""
    name = common_pb2.TicketState.Name(value)
    return "" if name.endswith("UNSPECIFIED") else name.removeprefix("TICKET_STATE_")


def when(message, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime, None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)


def _iso(message, field: str, zone: str) -> str | None:
    value = when(message, field)
    return dates.iso(value, zone) if value is not None else None


def _agency(agency: common_pb2.Agency) -> dict:
    return {"code": agency.code, "name": agency.name}


def _report(report: common_pb2.ReportContent, zone: str, *, hide_identity: bool) -> dict:
    anonymous = bool(report.anonymous) or hide_identity
    body = {
        "kind": _kind(report.kind),
        "title": report.title,
        "body": report.body,
        "region_code": report.region_code,
        "region_name": report.region_name,
        "incident_date": report.incident_date or None,
        "address": report.address,
        "submitted_at": _iso(report, "submitted_at", zone),
        "anonymous": anonymous,
        "confidential": bool(report.confidential),
    }
    if report.HasField("location"):
        body["location"] = {"latitude": report.location.latitude,
                            "longitude": report.location.longitude}
    if not anonymous and report.reporter_name:
        body["reporter_name"] = report.reporter_name
    return body


# -- signed links to the report's attachments (served by intake) -----------------------------
log = logging.getLogger(__name__)
ATTACHMENT_LINK_SECONDS = 7 * 24 * 3600.0
_links_lock = threading.Lock()
_links: tuple | None = None
_links_read = False


def configure_attachment_links(signer: signed_links.LinkSigner | None, intake_url: str,
                               seconds: float = ATTACHMENT_LINK_SECONDS) -> None:
    """Sets how agency webhooks link to attachments; no signer or no URL: no link."""
    global _links, _links_read
    with _links_lock:
        _links = (signer, intake_url.rstrip("/"), seconds) if signer and intake_url else None
        _links_read = True


def attachment_links_from_env(env: Env | None = None) -> None:
    """NOTIFY_INTAKE_PUBLIC_URL (intake's address as agencies reach it), the shared
    LAPOR_ATTACHMENT_LINK_SECRET(_FILE) and NOTIFY_ATTACHMENT_LINK_SECONDS (7 days)."""
    env = env or Env()
    configure_attachment_links(signed_links.from_env(env),
                               env.str("NOTIFY_INTAKE_PUBLIC_URL", ""),
                               env.seconds("NOTIFY_ATTACHMENT_LINK_SECONDS",
                                           ATTACHMENT_LINK_SECONDS))


def _attachment_links() -> tuple | None:
    if not _links_read:
        try:
            attachment_links_from_env()
        except ConfigError as exc:
            # Read on first use in a worker thread: a bad setting loses the link, not the
            # delivery.
            log.error("attachment links disabled: %s", exc)
            configure_attachment_links(None, "")
    return _links


def attachments_link(tracking_id: str, now: float | None = None) -> dict | None:
    """A signed, time-limited link to the report's attachment list at intake (which
    answers signed links to each file), or None when not configured."""
    links = _attachment_links()
    if links is None:
        return None
    signer, base, seconds = links
    query = signer.query("attachments", tracking_id, seconds,
                         now=time.time() if now is None else now)
    return {"url": f"{base}/api/v1/reports/{tracking_id}/attachments?expires="
                   f"{query['expires']}&signature={query['signature']}",
            "expires_at": datetime.fromtimestamp(int(query["expires"]), UTC).isoformat()
            .replace("+00:00", "Z")}


def dispatched_webhook(event_type: str, msg: events_pb2.TicketDispatched, delivery_id: str,
                       contact: Contact | None = None) -> dict:
    """The agency's webhook body for ticket.dispatched.

    Defence in depth: the name is withheld when either the event or the reporter's own
    registration (when notify already has it) says anonymous.
    """
    zone = dates.zone_name(msg.deadline_zone)
    hide = contact is not None and contact.anonymous
    return {
        "event": event_type,
        "delivery_id": delivery_id,
        "tracking_id": msg.tracking_id,
        "ticket_id": msg.ticket_id,
        "agency": _agency(msg.agency),
        "category": msg.category,
        "confidence": round(float(msg.confidence), 3),
        "decision": msg.decision,
        "deadline": _iso(msg, "deadline", zone),
        "deadline_zone": zone,
        "working_days": msg.working_days,
        "report": _report(msg.report, zone, hide_identity=hide),
        **({"attachments": link} if (link := attachments_link(msg.tracking_id)) else {}),
    }


def status_changed_webhook(event_type: str, msg: events_pb2.TicketStatusChanged,
                           delivery_id: str) -> dict:
    """Not reporter_note: it is written for the reporter (the admin's question, the archive
    reason); what a reporter writes to the agency comes as ticket.message."""
    zone = dates.zone_name(msg.deadline_zone)
    return {
        "event": event_type,
        "delivery_id": delivery_id,
        "tracking_id": msg.tracking_id,
        "ticket_id": msg.ticket_id,
        "agency": _agency(msg.agency),
        "action": msg.action,
        "from_state": state_name(msg.from_state),
        "to_state": state_name(msg.to_state),
        "actor_role": msg.actor_role,
        "deadline": _iso(msg, "deadline", zone),
        "deadline_zone": zone,
        "public_note": msg.public_note,
    }


def escalated_webhook(event_type: str, msg: events_pb2.TicketEscalated,
                      delivery_id: str) -> dict:
    zone = dates.zone_name(msg.deadline_zone)
    return {
        "event": event_type,
        "delivery_id": delivery_id,
        "tracking_id": msg.tracking_id,
        "ticket_id": msg.ticket_id,
        "kind": msg.kind or "parent",
        "stage": state_name(msg.stage),
        "level": msg.level,
        "from_agency": _agency(msg.from_agency),
        "to_agency": _agency(msg.to_agency),
        "deadline": _iso(msg, "deadline", zone),
        "deadline_zone": zone,
        "reason": msg.reason,
    }


def sla_warning_webhook(event_type: str, msg: events_pb2.TicketSlaWarning,
                        delivery_id: str) -> dict:
    zone = dates.zone_name(msg.deadline_zone)
    return {
        "event": event_type,
        "delivery_id": delivery_id,
        "tracking_id": msg.tracking_id,
        "ticket_id": msg.ticket_id,
        "clock": msg.clock,
        "stage": state_name(msg.stage),
        "agency": _agency(msg.agency),
        "deadline": _iso(msg, "deadline", zone),
        "deadline_zone": zone,
    }


def message_webhook(event_type: str, msg: events_pb2.TicketMessage, delivery_id: str) -> dict:
    """The reporter's message for the agency: the text and nothing about who wrote it (the
    agency reaches the reporter only through the platform)."""
    return {
        "event": event_type,
        "delivery_id": delivery_id,
        "tracking_id": msg.tracking_id,
        "ticket_id": msg.ticket_id,
        "agency": _agency(msg.agency),
        "direction": msg.direction,
        "text": msg.text,
        "confidential": bool(msg.confidential),
    }


def email_fields(template: str, tracking_id: str, *, deadline: datetime | None = None,
                 deadline_zone: str = "", ticket_version: int = 0, **text: object) -> dict:
    """What an email delivery stores: the template's inputs, never an address (that is
    looked up when sending, from the contact, which may arrive later). `text` holds the
    named values the template reads (agency_name, question, response, ...: see
    templates.FIELDS); which of them reach the email is the template's allow-list."""
    fields = {
        "template": template,
        "tracking_id": tracking_id,
        "deadline": deadline.isoformat() if deadline is not None else None,
        "deadline_zone": dates.zone_name(deadline_zone),
        "ticket_version": int(ticket_version),
    }
    for key, value in text.items():
        fields[key] = value if isinstance(value, int) else str(value)
    return fields


def encode(body: dict) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
