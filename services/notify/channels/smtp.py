"""Email over SMTP: settings from NOTIFY_SMTP_URL, recipient addresses, the message of one
delivery, and one SMTP conversation within the send's time limit."""

from __future__ import annotations

import contextlib
import email.policy
import smtplib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from email_validator import EmailNotValidError, validate_email

from services.notify.channels.sending import (
    Result,
    SendDeadline,
    _timed_out,
    send_limit,
    tls_context,
)
from services.notify.templates import Email


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    use_ssl: bool = False
    starttls: bool = False
    username: str = ""
    password: str = ""

    def __repr__(self) -> str:
        return (f"SmtpSettings(host={self.host!r}, port={self.port}, use_ssl={self.use_ssl}, "
                f"starttls={self.starttls}, username={'<set>' if self.username else ''!r})")


def parse_smtp_url(url: str) -> SmtpSettings:
    """smtp://host:port, smtp://user:pass@host:port?starttls=1 or smtps://host:port."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("expected smtp://[user:pass@]host[:port][?starttls=1] or smtps://...")
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[-1].lower() in ("1", "true", "yes", "on")
    use_ssl = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if use_ssl else 25)
    except ValueError:
        raise ValueError("the port is not a number") from None
    return SmtpSettings(host=parts.hostname, port=port, use_ssl=use_ssl,
                        starttls=starttls and not use_ssl,
                        username=unquote(parts.username or ""),
                        password=unquote(parts.password or ""))


class AddressError(ValueError):
    """A recipient address that cannot be put on the wire. The message never holds it."""


@dataclass(frozen=True)
class Mailbox:
    envelope: str   # for RCPT TO: the local part as given, the domain in ASCII (IDNA)
    header: str     # for the To header
    smtputf8: bool  # the local part is not ASCII: only a server offering SMTPUTF8 takes it


def mailbox(address: str) -> Mailbox:
    """Checks a reporter's address and gives the forms to send it in; AddressError when it
    is not one address (a comma, a space, a missing domain)."""
    try:
        checked = validate_email(address.strip(), check_deliverability=False,
                                 globally_deliverable=False, test_environment=True)
    except EmailNotValidError:
        raise AddressError("recipient address invalid") from None
    if checked.ascii_email:  # an ASCII local part, the domain as IDNA if it was Unicode
        return Mailbox(checked.ascii_email, checked.ascii_email, False)
    return Mailbox(f"{checked.local_part}@{checked.ascii_domain}", checked.normalized, True)


def parse_address_list(raw: str) -> tuple[str, ...]:
    """Addresses separated by commas (NOTIFY_NATIONAL_ADMIN_EMAILS), each checked; "" gives
    none. ValueError says which entry is wrong without quoting it."""
    if not raw.strip():
        return ()
    addresses: list[str] = []
    for number, entry in enumerate(raw.split(","), start=1):
        if not entry.strip():
            raise ValueError(f"entry {number} is empty (a stray comma?)")
        try:
            checked = validate_email(entry.strip(), check_deliverability=False,
                                     globally_deliverable=False, test_environment=True)
        except EmailNotValidError as exc:
            raise ValueError(f"entry {number} is not an email address: {exc}") from None
        if checked.normalized not in addresses:
            addresses.append(checked.normalized)
    return tuple(addresses)


def _envelope_sender(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    local, at, domain = address.rpartition("@")
    if at and not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}{at}{domain}"


@dataclass(frozen=True)
class OutgoingEmail:
    """A message with its envelope."""

    message: EmailMessage
    sender: str
    recipients: tuple[str, ...]
    smtputf8: bool


# Lines up to RFC 5322's hard limit: the stdlib folds a subject that starts with "[LAPOR!]"
# and exceeds 78 characters by breaking right after "Subject:", which some parsers read back
# with a leading space.
_POLICY = email.policy.SMTP.clone(max_line_length=998)
# For a recipient whose local part is not ASCII: headers in UTF-8 (RFC 6532), since an
# encoded word is not allowed inside an address.
_POLICY_UTF8 = email.policy.SMTPUTF8.clone(max_line_length=998)


def _cte(text: str) -> str:
    # 7-bit safe whatever the text, so no server needs 8BITMIME.
    return "7bit" if text.isascii() else "quoted-printable"


def build_email(mail_from: str, to: str | Sequence[str], content: Email,
                delivery_id: str) -> OutgoingEmail:
    """The message for one delivery (one reporter, or the national admins together): text,
    with the HTML alternative when the content has one. AddressError when an address in
    `to` cannot be sent to."""
    boxes = [mailbox(address) for address in ([to] if isinstance(to, str) else to)]
    if not boxes:
        raise AddressError("no recipient")
    sender = _envelope_sender(mail_from)
    smtputf8 = any(box.smtputf8 for box in boxes) or not sender.isascii()
    message = EmailMessage(policy=_POLICY_UTF8 if smtputf8 else _POLICY)
    message["From"] = mail_from
    message["To"] = ", ".join(box.header for box in boxes)
    message["Subject"] = content.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rpartition("@")[2] or "lapor.localhost"
    # Stable across retries, so a mail system that saw the first attempt can drop the second.
    message["Message-ID"] = f"<{delivery_id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(content.body, charset="utf-8", cte=_cte(content.body))
    if content.html:
        message.add_alternative(content.html, subtype="html", charset="utf-8",
                                cte=_cte(content.html))
    return OutgoingEmail(message, sender, tuple(box.envelope for box in boxes), smtputf8)


class _Smtp(smtplib.SMTP):
    """smtplib.SMTP whose socket lives under a SendDeadline."""

    deadline: SendDeadline

    def _get_socket(self, host, port, timeout):
        return self.deadline.connect((host, port), source_address=self.source_address)


class _SmtpTls(smtplib.SMTP_SSL, _Smtp):
    """smtplib.SMTP_SSL connecting through _Smtp._get_socket, then wrapping in TLS."""


def _quit(client: smtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        client.quit()
    client.close()


# A sending thread keeps its SMTP connection for the next email: connecting, the greeting,
# EHLO (and STARTTLS, AUTH) and QUIT were most of an email's conversation with a local relay.
# A kept connection is checked with RSET before it carries a message, never kept after a
# failed conversation, and closed rather than tried when unused for this long (servers drop
# idle sessions).
KEEP_IDLE_S = 30.0
_kept = threading.local()


def _open(settings: SmtpSettings, deadline: SendDeadline, timeout: float) -> smtplib.SMTP:
    client: smtplib.SMTP
    if settings.use_ssl:
        client = _SmtpTls(timeout=timeout, context=tls_context())
    else:
        client = _Smtp(timeout=timeout)
    client.deadline = deadline
    try:
        code, message = client.connect(settings.host, settings.port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, message)
        if settings.starttls:
            client.starttls(context=tls_context())
        if settings.username:
            client.login(settings.username, settings.password)
        client.ehlo_or_helo_if_needed()
    except BaseException:
        _quit(client)
        raise
    return client


def _take_kept(settings: SmtpSettings, deadline: SendDeadline) -> smtplib.SMTP | None:
    """This thread's connection to the same server, alive and under `deadline`, or None."""
    client, kept_for, used_at = getattr(_kept, "entry", None) or (None, None, 0.0)
    _kept.entry = None
    if client is None:
        return None
    if kept_for != settings or time.monotonic() - used_at > KEEP_IDLE_S or client.sock is None:
        client.close()
        return None
    try:
        deadline.adopt(client.sock)
        client.deadline = deadline
        client.rset()  # raises when the server has gone
    except Exception:  # a dead or unwilling connection: a new one is opened instead
        client.close()
        return None
    return client


def close_kept() -> None:
    """Ends this thread's kept connection (a sending thread that stops)."""
    client, _, _ = getattr(_kept, "entry", None) or (None, None, 0.0)
    _kept.entry = None
    if client is not None:
        with contextlib.suppress(OSError):
            if client.sock is not None:
                client.sock.settimeout(1.0)  # a polite QUIT, not a wait
        _quit(client)


def send_email(settings: SmtpSettings, mail: OutgoingEmail, timeout: float,
               limit: float | None = None) -> Result:
    """One SMTP conversation, ending within `limit` seconds (default send_limit(timeout)),
    on this thread's kept connection when it has a live one."""
    limit = send_limit(timeout) if limit is None else limit
    with SendDeadline(limit, timeout) as deadline:
        client: smtplib.SMTP | None = None
        keep = False
        try:
            client = _take_kept(settings, deadline) or _open(settings, deadline, timeout)
            options = []
            if mail.smtputf8:
                if not client.has_extn("smtputf8"):
                    keep = True
                    return Result(False, "recipient needs SMTPUTF8", permanent=True)
                options.append("SMTPUTF8")
            # sendmail raises unless the server answered 250 to DATA.
            refused = client.sendmail(mail.sender, list(mail.recipients),
                                      mail.message.as_bytes(), mail_options=options)
            keep = not deadline.expired
        except smtplib.SMTPRecipientsRefused as exc:
            # The exception text carries the address: report only the code.
            codes = [code for code, _ in exc.recipients.values()]
            code = codes[0] if codes else 0
            return Result(False, f"SMTP {code} recipient refused", permanent=500 <= code < 600)
        except smtplib.SMTPResponseException as exc:
            return Result(False, f"SMTP {exc.smtp_code}")
        except smtplib.SMTPNotSupportedError:
            return Result(False, "recipient needs SMTPUTF8", permanent=True)
        except Exception as exc:  # whatever it is, the attempt is recorded, not crashed
            if deadline.expired or _timed_out(exc):
                return Result(False, "SMTP timeout")
            return Result(False, f"SMTP {type(exc).__name__}")
        finally:
            if client is not None:
                if keep:
                    _kept.entry = (client, settings, time.monotonic())
                else:
                    _quit(client)
    if refused:  # some of several recipients (the national admins) were refused
        return Result(True, f"SMTP 250, {len(refused)} of {len(mail.recipients)} refused")
    return Result(True, "SMTP 250")
