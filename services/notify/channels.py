"""Sending one attempt: an email over SMTP or a signed webhook POST. Each returns a Result
whose detail is short and free of personal data ("HTTP 503", "SMTP 250", "timeout"), since
it is stored in the delivery log and may be logged.

Whatever the other side does, a send ends within its time limit: socket timeouts apply to
each operation, so a peer that answers one byte at a time could otherwise keep a send going
far past the worker's lease, and another worker would send the same delivery again."""

from __future__ import annotations

import contextlib
import email.policy
import functools
import http.client
import json
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from email_validator import EmailNotValidError, validate_email

from services.notify import signing
from services.notify.templates import Email

USER_AGENT = "LAPOR-notify/1"
# The whole of one send may take this many per-operation timeouts: a slow but working peer
# gets a full timeout to connect and another to answer.
SEND_LIMIT_FACTOR = 2.0


@dataclass(frozen=True)
class Result:
    ok: bool
    detail: str
    permanent: bool = False  # retrying cannot help (e.g. the mail server refuses the address)
    # The HTTP status when an HTTP peer answered; the detail already says it to a reader.
    status: int = field(default=0, compare=False)


def send_limit(timeout: float) -> float:
    """The most seconds one send may take, given the per-operation timeout."""
    return SEND_LIMIT_FACTOR * timeout


# -- the time limit of one send ---------------------------------------------------------------
class SendDeadline:
    """An overall time limit for one send. Sockets opened through `connect` get a
    per-operation timeout no longer than the time left, and are shut down when the limit
    passes, which ends any read or write in progress; nothing is sent after it."""

    def __init__(self, limit: float, timeout: float):
        self._ends = time.monotonic() + max(0.0, limit)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(max(0.0, limit), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> SendDeadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._watched:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def timeout(self) -> float:
        """The timeout for the next operation; TimeoutError when no time is left."""
        left = self._ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("the send's time limit has passed")
        return min(self._timeout, left)

    def _watch(self, sock: socket.socket) -> None:
        # A duplicate of the descriptor: TLS wrapping detaches the original socket object,
        # and shutting down either shuts down the connection they share.
        with self._lock:
            if self.expired:
                raise TimeoutError("the send's time limit has passed")
            self._watched.append(sock.dup())

    def connect(self, address: tuple[str, int], timeout: object = None,
                source_address: tuple[str, int] | None = None) -> socket.socket:
        """socket.create_connection under this limit (the `timeout` argument is ignored)."""
        host, port = address
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0,
                                                                   socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                self._watch(sock)
                sock.settimeout(self.timeout())
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
                if isinstance(exc, TimeoutError):
                    break
        raise error or OSError(f"no address for {host}")


def _timed_out(exc: BaseException | None) -> bool:
    """True when a socket timeout caused `exc` (smtplib re-raises it as a disconnection)."""
    seen = 0
    while isinstance(exc, BaseException) and seen < 10:
        if isinstance(exc, TimeoutError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


# -- SMTP -----------------------------------------------------------------------------------
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


def send_email(settings: SmtpSettings, mail: OutgoingEmail, timeout: float,
               limit: float | None = None) -> Result:
    """One SMTP conversation, ending within `limit` seconds (default send_limit(timeout))."""
    limit = send_limit(timeout) if limit is None else limit
    with SendDeadline(limit, timeout) as deadline:
        client: smtplib.SMTP | None = None
        try:
            if settings.use_ssl:
                client = _SmtpTls(timeout=timeout, context=tls_context())
            else:
                client = _Smtp(timeout=timeout)
            client.deadline = deadline
            code, message = client.connect(settings.host, settings.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, message)
            if settings.starttls:
                client.starttls(context=tls_context())
            if settings.username:
                client.login(settings.username, settings.password)
            client.ehlo_or_helo_if_needed()
            options = []
            if mail.smtputf8:
                if not client.has_extn("smtputf8"):
                    return Result(False, "recipient needs SMTPUTF8", permanent=True)
                options.append("SMTPUTF8")
            # sendmail raises unless the server answered 250 to DATA.
            refused = client.sendmail(mail.sender, list(mail.recipients),
                                      mail.message.as_bytes(), mail_options=options)
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
                _quit(client)
    if refused:  # some of several recipients (the national admins) were refused
        return Result(True, f"SMTP 250, {len(refused)} of {len(mail.recipients)} refused")
    return Result(True, "SMTP 250")


# -- webhooks -------------------------------------------------------------------------------
class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST would arrive as a GET without its body: treat 3xx as a failure.
    def redirect_request(self, *args, **kwargs):
        return None


class _Connection(http.client.HTTPConnection):
    def __init__(self, *args, deadline: SendDeadline, **kwargs):
        super().__init__(*args, **kwargs)
        # http.client opens its socket through this attribute (HTTPS wraps what it returns).
        self._create_connection = deadline.connect


class _TlsConnection(http.client.HTTPSConnection):
    def __init__(self, *args, deadline: SendDeadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = deadline.connect


class _HttpHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: SendDeadline):
        super().__init__()
        self._deadline = deadline

    def http_open(self, req):
        return self.do_open(functools.partial(_Connection, deadline=self._deadline), req)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The client TLS context of every webhook and SMTP connection: the system's CAs, host
    names checked. Built once per process: loading the CA bundle took 20 ms of CPU, which
    every webhook paid (even to http:// receivers) and which slowed the other sending
    threads with it. A replaced CA bundle counts from the next start."""
    return ssl.create_default_context()


class _HttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: SendDeadline):
        super().__init__(context=tls_context())
        self._deadline = deadline

    def https_open(self, req):
        return self.do_open(functools.partial(_TlsConnection, deadline=self._deadline), req,
                            context=self._context)


def webhook_headers(event_type: str, delivery_id: str, secret: str, body: bytes,
                    now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.EVENT_HEADER: event_type,
        signing.DELIVERY_HEADER: delivery_id,
        signing.TIMESTAMP_HEADER: timestamp,
        signing.SIGNATURE_HEADER: signing.sign(secret, timestamp, body),
    }


def send_webhook(url: str, headers: dict[str, str], body: bytes, timeout: float,
                 limit: float | None = None) -> Result:
    """One signed POST, ending within `limit` seconds (default send_limit(timeout)). The
    agency's answer is its status code; a body it then sends slowly changes nothing."""
    limit = send_limit(timeout) if limit is None else limit
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with SendDeadline(limit, timeout) as deadline:
        handlers = [_NoRedirects, _HttpHandler(deadline)]
        if request.type == "https":
            handlers.append(_HttpsHandler(deadline))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=timeout) as response:
                status = response.status
                with contextlib.suppress(Exception):
                    response.read(65536)
        except urllib.error.HTTPError as exc:
            exc.close()
            return Result(False, f"HTTP {exc.code}", status=exc.code)
        except Exception as exc:  # whatever it is, the attempt is recorded, not crashed
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if deadline.expired or _timed_out(reason):
                return Result(False, "timeout")
            return Result(False, f"network {type(reason).__name__}")
    if 200 <= status < 300:
        return Result(True, f"HTTP {status}", status=status)
    return Result(False, f"HTTP {status}", status=status)


# -- SMS and WhatsApp gateways -----------------------------------------------------------------
DEFAULT_GATEWAY_BODY = {"to": "{to}", "text": "{text}", "reference": "{reference}"}


@dataclass(frozen=True)
class GatewaySettings:
    """An HTTP gateway that sends SMS or WhatsApp messages for us: where to POST, the whole
    Authorization header value (may be empty), and the JSON body with {to}, {text} and
    {reference} in its strings."""

    url: str
    authorization: str = ""
    body: object = field(default_factory=lambda: dict(DEFAULT_GATEWAY_BODY))

    def __repr__(self) -> str:  # the header is a credential; the URL may carry one too
        parts = urlsplit(self.url)
        where = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
        return (f"GatewaySettings(url={where!r}, "
                f"authorization={'<set>' if self.authorization else ''!r})")


def _strings(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def parse_gateway(url: str, authorization: str = "", template: str = "") -> GatewaySettings:
    """Checks a gateway's settings; ValueError says what to fix (without quoting the header)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the gateway URL must be http(s)://host/path")
    if any(ch in authorization for ch in "\r\n"):
        raise ValueError("the Authorization value must be one line")
    body: object = dict(DEFAULT_GATEWAY_BODY)
    if template.strip():
        try:
            body = json.loads(template)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the body template is not JSON ({exc.msg} at character "
                             f"{exc.pos})") from None
        if not isinstance(body, dict):
            raise ValueError("the body template must be a JSON object")
        used = "".join(_strings(body))
        missing = [p for p in ("{to}", "{text}") if p not in used]
        if missing:
            raise ValueError(f"the body template has no {' or '.join(missing)}: put them in "
                             f"its string values, e.g. {json.dumps(DEFAULT_GATEWAY_BODY)}")
    return GatewaySettings(url, authorization.strip(), body)


_PLACEHOLDER = re.compile(r"\{(to|text|reference)\}")


def _fill(value: object, values: dict[str, str]) -> object:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], value)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


def gateway_body(template: object, to: str, text: str, reference: str) -> bytes:
    """The template with its placeholders filled inside the JSON strings, so a quote or a
    newline in the text stays text and cannot change the body's structure; one pass, so a
    text that itself reads "{to}" stays as it is."""
    filled = _fill(template, {"to": to, "text": text, "reference": reference})
    return json.dumps(filled, ensure_ascii=False).encode()


def gateway_headers(gateway: GatewaySettings, reference: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               signing.DELIVERY_HEADER: reference}
    if gateway.authorization:
        headers["Authorization"] = gateway.authorization
    return headers


def send_gateway(gateway: GatewaySettings, body: bytes, reference: str, timeout: float,
                 limit: float | None = None,
                 post: Callable[..., Result] | None = None) -> Result:
    """One POST to an SMS or WhatsApp gateway: 2xx delivered; 408, 429, 5xx, timeouts and
    network errors tried again; any other answer (a refused number, a rejected body, bad
    credentials) failed for good, since sending the same again gets the same answer."""
    result = (post or send_webhook)(gateway.url, gateway_headers(gateway, reference), body,
                                    timeout, limit=limit)
    if not result.ok and 400 <= result.status < 500 and result.status not in (408, 429):
        return Result(False, result.detail, permanent=True, status=result.status)
    return result
