"""What every channel's send shares: the Result of one attempt, whose detail is short and
free of personal data ("HTTP 503", "SMTP 250", "timeout") since it is stored in the delivery
log and may be logged; and the time limit of one send.

Whatever the other side does, a send ends within its time limit: socket timeouts apply to
each operation, so a peer that answers one byte at a time could otherwise keep a send going
far past the worker's lease, and another worker would send the same delivery again."""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

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
class _Watchdog:
    """One thread that ends every send whose limit passes. A timer thread per send (started
    and joined for each webhook and email) took about a sixth of the sending threads' time
    at a hundred deliveries a second."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, SendDeadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: SendDeadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.ends, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="notify-send-limits",
                                                daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                # Woken only when this limit passes before the one it sleeps until: every
                # send's limit is as long as the last one's, so that is rarely, and a wake-up
                # per send cost notify a twentieth of its time in handing the thread over.
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].finished:
                        heapq.heappop(self._heap)
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        deadline = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            deadline._expire()


_WATCHDOG = _Watchdog()


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
        self.finished = False  # the send ended: the watchdog forgets this limit

    @property
    def ends(self) -> float:
        return self._ends

    def __enter__(self) -> SendDeadline:
        _WATCHDOG.watch(self)
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            self.finished = True
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()

    def _expire(self) -> None:
        with self._lock:
            if self.finished:
                return
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

    def adopt(self, sock: socket.socket) -> None:
        """Puts a connection opened under an earlier limit (a kept SMTP connection) under
        this one: shut down when it passes, each operation's timeout no longer than the
        time left."""
        with self._lock:
            if self.expired:
                raise TimeoutError("the send's time limit has passed")
            # By descriptor: a TLS socket cannot be dup()ed as an object.
            self._watched.append(socket.socket(fileno=os.dup(sock.fileno())))
        sock.settimeout(self.timeout())

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


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The client TLS context of every webhook and SMTP connection: the system's CAs, host
    names checked. Built once per process: loading the CA bundle took 20 ms of CPU, which
    every webhook paid (even to http:// receivers) and which slowed the other sending
    threads with it. A replaced CA bundle counts from the next start."""
    return ssl.create_default_context()
