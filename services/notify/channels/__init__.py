"""Sending one attempt on a channel: email over SMTP (smtp), signed webhook POSTs to agencies
(webhook), SMS and WhatsApp through HTTP gateways (gateway, with SMS sizing in sms). Every
send returns a Result and ends within its time limit (sending).

The names the worker, the app and the tests use are re-exported here."""

from services.notify.channels.gateway import (
    DEFAULT_GATEWAY_BODY,
    GatewaySettings,
    gateway_body,
    gateway_headers,
    parse_gateway,
    send_gateway,
)
from services.notify.channels.sending import (
    SEND_LIMIT_FACTOR,
    USER_AGENT,
    Result,
    SendDeadline,
    _timed_out,
    send_limit,
    tls_context,
)
from services.notify.channels.smtp import (
    AddressError,
    Mailbox,
    OutgoingEmail,
    SmtpSettings,
    build_email,
    mailbox,
    parse_address_list,
    parse_smtp_url,
    send_email,
)
from services.notify.channels.webhook import send_webhook, webhook_headers

__all__ = [
    "DEFAULT_GATEWAY_BODY", "SEND_LIMIT_FACTOR", "USER_AGENT", "AddressError",
    "GatewaySettings", "Mailbox", "OutgoingEmail", "Result", "SendDeadline", "SmtpSettings",
    "_timed_out", "build_email", "gateway_body", "gateway_headers", "mailbox",
    "parse_address_list", "parse_gateway", "parse_smtp_url", "send_email", "send_gateway",
    "send_limit", "send_webhook", "tls_context", "webhook_headers",
]
