"""Signed webhook POSTs to agencies (and to SMS and WhatsApp gateways): one request within
the send's time limit, no redirects (a redirected POST would arrive as a GET without its
body: a 3xx is a failure).

A sending thread keeps its connection to a server for the next POST there, as it keeps its
SMTP connection: a TLS handshake is most of a webhook's CPU, and a new TCP connection per
POST was, with urllib's opener built per request, a third of a plain-HTTP webhook's time in
the sending thread. A connection is kept only when the server said it may be (HTTP/1.1
without `Connection: close`), the answer was read whole and the send ended in time; it is
put under the next send's time limit, checked before use (a server that closed it shows it
as readable), and closed after KEEP_IDLE_S unused. When a kept connection turns out closed
before any answer came, the POST goes once more on a new connection, as browsers and
urllib3 do: the server closed it idle, so it did not take the request. The one exception, a
server that took the whole request and closed without answering, makes the agency see that
delivery id twice, which the delivery contract allows (docs/webhooks.md: deduplicate on
X-Lapor-Delivery)."""

from __future__ import annotations

import contextlib
import http.client
import select
import threading
import time
from collections import OrderedDict
from urllib.parse import urlsplit

from services.notify import signing
from services.notify.channels.sending import (
    USER_AGENT,
    Result,
    SendDeadline,
    _timed_out,
    send_limit,
    tls_context,
)

# Below the 5 s idle limit of common servers (Apache, Node), so a kept connection is seldom
# one the server is closing at that moment.
KEEP_IDLE_S = 4.0
KEEP_MAX = 8  # connections a sending thread keeps, to as many servers
_ANSWER_READ = 65536  # what is read of an answer; a longer one is not kept


class _Connection(http.client.HTTPConnection):
    def __init__(self, *args, deadline: SendDeadline, **kwargs):
        super().__init__(*args, **kwargs)
        # http.client opens its socket through this attribute (HTTPS wraps what it returns).
        self._create_connection = deadline.connect


class _TlsConnection(http.client.HTTPSConnection):
    def __init__(self, *args, deadline: SendDeadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = deadline.connect


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


# -- kept connections, per sending thread ------------------------------------------------------
_kept = threading.local()


def _kept_connections() -> OrderedDict:
    """This thread's kept connections: (scheme, host, port) -> (connection, last used)."""
    kept = getattr(_kept, "connections", None)
    if kept is None:
        kept = _kept.connections = OrderedDict()
    return kept


def _take_kept(server: tuple, deadline: SendDeadline) -> http.client.HTTPConnection | None:
    """This thread's open connection to `server`, under `deadline`, or None."""
    entry = _kept_connections().pop(server, None)
    if entry is None:
        return None
    conn, used_at = entry
    sock = conn.sock
    try:
        # Gone, too old, or readable while no answer is due (the server closed it): not used.
        usable = sock is not None and time.monotonic() - used_at <= KEEP_IDLE_S \
            and not _readable(sock)
        if usable:
            deadline.adopt(sock)
    except (OSError, ValueError):
        usable = False
    if not usable:
        conn.close()
        return None
    return conn


def _readable(sock) -> bool:
    """Whether the socket has something to read (poll, not select: any descriptor number)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _keep(server: tuple, conn: http.client.HTTPConnection) -> None:
    kept = _kept_connections()
    kept[server] = (conn, time.monotonic())
    while len(kept) > KEEP_MAX:
        _, (oldest, _) = kept.popitem(last=False)
        oldest.close()


def close_kept() -> None:
    """Closes this thread's kept connections (a sending thread that stops)."""
    kept = _kept_connections()
    while kept:
        _, (conn, _) = kept.popitem()
        conn.close()


def _server(url: str) -> tuple[tuple[str, str, int], str]:
    """((scheme, host, port), the request target) of an http(s) URL; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target


def _open(server: tuple, deadline: SendDeadline, timeout: float) -> http.client.HTTPConnection:
    scheme, host, port = server
    if scheme == "https":
        return _TlsConnection(host, port, timeout=timeout, context=tls_context(),
                              deadline=deadline)
    return _Connection(host, port, timeout=timeout, deadline=deadline)


# Raised on a kept connection the server had closed before taking the request.
_CLOSED_BEFORE_ANSWER = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                         ConnectionAbortedError)


def send_webhook(url: str, headers: dict[str, str], body: bytes, timeout: float,
                 limit: float | None = None) -> Result:
    """One signed POST, ending within `limit` seconds (default send_limit(timeout)). The
    agency's answer is its status code; a body it then sends slowly changes nothing."""
    limit = send_limit(timeout) if limit is None else limit
    try:
        server, target = _server(url)
    except ValueError:
        return Result(False, "unsupported URL", permanent=True)
    with SendDeadline(limit, timeout) as deadline:
        conn = _take_kept(server, deadline)
        reused = conn is not None
        while True:
            if conn is None:
                conn = _open(server, deadline, timeout)
            try:
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
                break
            except Exception as exc:  # whatever it is, the attempt is recorded, not crashed
                conn.close()
                if reused and isinstance(exc, _CLOSED_BEFORE_ANSWER) and not deadline.expired:
                    conn, reused = None, False  # the kept one was closed: once on a new one
                    continue
                if deadline.expired or _timed_out(exc):
                    return Result(False, "timeout")
                return Result(False, f"network {type(exc).__name__}")
        status = response.status
        with contextlib.suppress(Exception):
            response.read(_ANSWER_READ)
        if response.isclosed() and not response.will_close and not deadline.expired \
                and conn.sock is not None:
            _keep(server, conn)
        else:
            conn.close()
    if 200 <= status < 300:
        return Result(True, f"HTTP {status}", status=status)
    return Result(False, f"HTTP {status}", status=status)
