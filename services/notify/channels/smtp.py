"""Email over SMTP: settings from NOTIFY_SMTP_URL, recipient addresses, the message of one
delivery, and one SMTP conversation within the send's time limit."""

from __future__ import annotations

import binascii
import contextlib
import email
import email.policy
import functools
import re
import select
import smtplib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from email_validator import EmailNotValidError, validate_email

from services.infra import randomness
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


@functools.lru_cache(maxsize=8)  # the configured sender (NOTIFY_MAIL_FROM): one or two
def _envelope_sender(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    local, at, domain = address.rpartition("@")
    if at and not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}{at}{domain}"


@dataclass(frozen=True)
class OutgoingEmail:
    """A message, as it goes on the wire, with its envelope."""

    data: bytes
    sender: str
    recipients: tuple[str, ...]
    smtputf8: bool

    @property
    def message(self) -> EmailMessage:
        """The message read back from its bytes (for inspection; sending uses `data`)."""
        return email.message_from_bytes(self.data, policy=email.policy.default)


# Lines up to RFC 5322's hard limit: the stdlib folds a subject that starts with "[LAPOR!]"
# and exceeds 78 characters by breaking right after "Subject:", which some parsers read back
# with a leading space.
_MAX_LINE = 998
_POLICY = email.policy.SMTP.clone(max_line_length=_MAX_LINE)
# For a recipient whose local part is not ASCII: headers in UTF-8 (RFC 6532), since an
# encoded word is not allowed inside an address.
_POLICY_UTF8 = email.policy.SMTPUTF8.clone(max_line_length=_MAX_LINE)


# Values the policy writes back as they are, checked without it (its header classes parse
# and refold every value: 5% of notify's time a report): a subject of printable ASCII words
# with single spaces and no encoded word ("=?"), recipients that are plain dot-atom
# addresses, on a line that needs no folding. A property test holds both paths equal.
_PLAIN = {
    "Subject": re.compile(r"[!-~]+(?: [!-~]+)*", re.ASCII),
    "To": re.compile(r"(?:[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
                     r"(?:, (?!$)|$))+", re.ASCII),
}


def _header(policy: email.policy.EmailPolicy, name: str, value: str) -> bytes:
    """One header line as EmailMessage writes it under `policy`: parsed by the policy's
    header classes, encoded words for text that is not ASCII unless the policy is UTF-8,
    folded, CRLF. A line break in the value is refused as EmailMessage refuses it (it
    would start a header of its own)."""
    plain = _PLAIN.get(name)
    if plain is not None and len(name) + 2 + len(value) <= policy.max_line_length and \
            "=?" not in value and plain.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    if len(value.splitlines()) > 1:
        raise ValueError("Header values may not contain linefeed or carriage return characters")
    folded = policy.header_factory(name, value).fold(policy=policy)
    return folded.encode("utf-8" if policy.utf8 else "ascii")


@functools.lru_cache(maxsize=16)
@functools.lru_cache(maxsize=8)
def _from_header(mail_from: str, smtputf8: bool) -> bytes:
    return _header(_POLICY_UTF8 if smtputf8 else _POLICY, "From", mail_from)


def _part(text: str, subtype: str) -> bytes:
    """A text part's headers and body: 7bit when it is ASCII in lines SMTP takes, else
    quoted-printable, so no server needs 8BITMIME."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii() and all(len(line) <= _MAX_LINE for line in text.split("\n")):
        cte, body = "7bit", text
    else:
        cte = "quoted-printable"
        body = binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    if not body.endswith("\n"):
        body += "\n"
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {cte}\r\n\r\n"
            + body.replace("\n", "\r\n")).encode("ascii")


def _date_now() -> str:
    """The Date header's value now; it changes once a second, so it is formatted once a
    second."""
    second = int(time.time())
    cached = _date_cache
    if cached[0] != second:
        cached = (second, formatdate(second, localtime=False, usegmt=True))
        _date_cache[:] = cached  # two threads may both format it: the same text
    return cached[1]


_date_cache: list = [None, ""]


def build_email(mail_from: str, to: str | Sequence[str], content: Email,
                delivery_id: str) -> OutgoingEmail:
    """The message for one delivery (one reporter, or the national admins together): text,
    with the HTML alternative when the content has one. AddressError when an address in
    `to` cannot be sent to.

    The headers that carry text (From, To, Subject) are folded and encoded by the stdlib's
    SMTP policy; the rest is written here: building an EmailMessage and generating it took
    1.6 ms an email, most of notify's CPU for a reporter's notice."""
    boxes = [mailbox(address) for address in ([to] if isinstance(to, str) else to)]
    if not boxes:
        raise AddressError("no recipient")
    sender = _envelope_sender(mail_from)
    smtputf8 = any(box.smtputf8 for box in boxes) or not sender.isascii()
    policy = _POLICY_UTF8 if smtputf8 else _POLICY
    domain = sender.rpartition("@")[2] or "lapor.localhost"
    head = b"".join((
        _from_header(mail_from, smtputf8),
        _header(policy, "To", ", ".join(box.header for box in boxes)),
        _header(policy, "Subject", content.subject),
        f"Date: {_date_now()}\r\n"
        # Stable across retries, so a mail system that saw the first attempt can drop the
        # second.
        f"Message-ID: <{delivery_id}@{domain}>\r\n"
        "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n".encode("ascii")))
    text = _part(content.body, "plain")
    if not content.html:
        return OutgoingEmail(head + text, sender, tuple(box.envelope for box in boxes),
                             smtputf8)
    html = _part(content.html, "html")
    boundary = f"=_lapor_{randomness.token_hex(12)}".encode("ascii")
    data = b"".join((
        head, b'Content-Type: multipart/alternative; boundary="', boundary, b'"\r\n\r\n',
        b"--", boundary, b"\r\n", text, b"\r\n--", boundary, b"\r\n", html,
        b"\r\n--", boundary, b"--\r\n"))
    return OutgoingEmail(data, sender, tuple(box.envelope for box in boxes), smtputf8)


class _Stale(Exception):
    """A kept connection turned out dead at MAIL FROM: the server accepted nothing."""


class _Smtp(smtplib.SMTP):
    """smtplib.SMTP whose socket lives under a SendDeadline."""

    deadline: SendDeadline
    # A kept connection carrying its next message: a connection that fails at MAIL FROM,
    # the conversation's first command, raises _Stale.
    reused = False

    def _get_socket(self, host, port, timeout):
        return self.deadline.connect((host, port), source_address=self.source_address)

    # The envelope addresses come here in their wire form already (mailbox(),
    # _envelope_sender), and smtplib's quoteaddr parsed each again with email.utils'
    # address parser: a third of MAIL FROM's and RCPT TO's CPU. One that is a dot-atom at a
    # dot-atom is quoted as quoteaddr quotes it; any other goes through smtplib.
    def mail(self, sender, options=()):
        try:
            if not options and _WIRE_ADDRESS.fullmatch(sender):
                self.putcmd("mail", f"FROM:<{sender}>")
                return self.getreply()
            return super().mail(sender, options)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if not self.reused:
                raise
            raise _Stale() from exc

    def rcpt(self, recip, options=()):
        if not options and _WIRE_ADDRESS.fullmatch(recip):
            self.putcmd("rcpt", f"TO:<{recip}>")
            return self.getreply()
        return super().rcpt(recip, options)


# A dot-atom local part at a domain of letters, digits and hyphens (RFC 5322's atext):
# what email.utils.parseaddr gives back unchanged.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_WIRE_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


class _SmtpTls(smtplib.SMTP_SSL, _Smtp):
    """smtplib.SMTP_SSL connecting through _Smtp._get_socket, then wrapping in TLS."""


def _quit(client: smtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        client.quit()
    client.close()


# A sending thread keeps its SMTP connection for the next email: connecting, the greeting,
# EHLO (and STARTTLS, AUTH) and QUIT were most of an email's conversation with a local relay.
# A kept connection is only kept after a conversation that ended with the server's 250 to the
# message (or before MAIL FROM), so its session is ready for the next MAIL FROM without an
# RSET, which was one round trip in five an email. It is closed rather than tried when unused
# for this long (servers drop idle sessions) or when the server has closed it or said
# anything since (a 421 before closing); one that fails at MAIL FROM all the same is replaced
# by a new connection within the same send: nothing was accepted on it, so nothing goes twice.
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
        # Nothing is due from the server between conversations: a socket with something to
        # read has been closed by it, or carries a farewell (421).
        # (poll, not select: a descriptor past 1024 is fine.)
        ready = select.poll()
        ready.register(client.sock, select.POLLIN)
        if ready.poll(0):
            raise ConnectionError("the server closed the kept connection")
        deadline.adopt(client.sock)
        client.deadline = deadline
    except Exception:  # a dead or unwilling connection: a new one is opened instead
        client.close()
        return None
    client.reused = True
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
            while True:
                if mail.smtputf8 and not client.has_extn("smtputf8"):
                    keep = True
                    return Result(False, "recipient needs SMTPUTF8", permanent=True)
                try:
                    # sendmail raises unless the server answered 250 to DATA.
                    refused = client.sendmail(mail.sender, list(mail.recipients), mail.data,
                                              mail_options=["SMTPUTF8"] if mail.smtputf8
                                              else [])
                    break
                except _Stale:  # the kept connection was dead: once more, on a new one
                    client.close()
                    client = None
                    client = _open(settings, deadline, timeout)
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
