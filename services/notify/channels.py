"""Sending one attempt: an email over SMTP or a signed webhook POST. Each returns a Result
whose detail is short and free of personal data ("HTTP 503", "SMTP 250", "timeout"), since
it is stored in the delivery log and may be logged."""

from __future__ import annotations

import email.policy
import http.client
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from services.notify import signing
from services.notify.templates import Email

USER_AGENT = "LAPOR-notify/1"


@dataclass(frozen=True)
class Result:
    ok: bool
    detail: str
    permanent: bool = False  # retrying cannot help (e.g. the mail server refuses the address)


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


# Lines up to RFC 5322's hard limit: the stdlib folds a subject that starts with "[LAPOR!]"
# and exceeds 78 characters by breaking right after "Subject:", which some parsers read back
# with a leading space.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


def build_email(mail_from: str, to: str, content: Email, delivery_id: str) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = content.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "lapor.localhost"
    # Stable across retries, so a mail system that saw the first attempt can drop the second.
    message["Message-ID"] = f"<{delivery_id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    # 7-bit safe whatever the text, so no server needs 8BITMIME.
    message.set_content(content.body, charset="utf-8",
                        cte="7bit" if content.body.isascii() else "quoted-printable")
    return message


def send_email(settings: SmtpSettings, message: EmailMessage, timeout: float) -> Result:
    sender = parseaddr(str(message["From"]))[1]
    recipient = parseaddr(str(message["To"]))[1]
    try:
        if settings.use_ssl:
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
        with client:
            if settings.starttls:
                client.starttls(context=ssl.create_default_context())
            if settings.username:
                client.login(settings.username, settings.password)
            # sendmail raises unless the server answered 250 to DATA.
            client.sendmail(sender, [recipient], message.as_bytes())
        return Result(True, "SMTP 250")
    except smtplib.SMTPRecipientsRefused as exc:
        # The exception text carries the address: report only the code.
        codes = [code for code, _ in exc.recipients.values()]
        code = codes[0] if codes else 0
        return Result(False, f"SMTP {code} recipient refused", permanent=500 <= code < 600)
    except smtplib.SMTPResponseException as exc:
        return Result(False, f"SMTP {exc.smtp_code}")
    except TimeoutError:
        return Result(False, "SMTP timeout")
    except (smtplib.SMTPException, OSError) as exc:
        return Result(False, f"SMTP {type(exc).__name__}")


# -- webhooks -------------------------------------------------------------------------------
class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST would arrive as a GET without its body: treat 3xx as a failure.
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


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


def send_webhook(url: str, headers: dict[str, str], body: bytes, timeout: float) -> Result:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            status = response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return Result(False, f"HTTP {exc.code}")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return Result(False, "timeout")
        return Result(False, f"network {type(reason).__name__}")
    except TimeoutError:
        return Result(False, "timeout")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return Result(False, f"network {type(exc).__name__}")
    if 200 <= status < 300:
        return Result(True, f"HTTP {status}")
    return Result(False, f"HTTP {status}")
