"""Signed webhook POSTs to agencies: one request within the send's time limit, no redirects
(a redirected POST would arrive as a GET without its body)."""

from __future__ import annotations

import contextlib
import functools
import http.client
import time
import urllib.error
import urllib.request

from services.notify import signing
from services.notify.channels.sending import (
    USER_AGENT,
    Result,
    SendDeadline,
    _timed_out,
    send_limit,
    tls_context,
)


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
