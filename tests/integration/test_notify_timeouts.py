"""A send ends within its time limit whatever the other side does. Socket timeouts apply to
each operation, so a peer that answers one byte at a time kept a webhook with a 1 s timeout
going for 9.6 s, longer than the worker's lease: another worker then sent it again. These
peers are real TCP servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from services.notify import channels
from services.notify.channels import Result, SmtpSettings
from services.notify.templates import Email
from tests.integration.helpers import accept_until

pytestmark = pytest.mark.integration

TIMEOUT = 1.0
LIMIT = channels.send_limit(TIMEOUT)
NO_HANG = LIMIT + 2.0  # generous: the point is that nothing runs for the dripped 20 s


class SlowPeer:
    """Accepts connections, reads whatever comes, and answers `answer` one byte every
    `interval` seconds after sending `prompt` at once (no answer at all when None)."""

    def __init__(self, answer: bytes | None, interval: float = 0.5, prompt: bytes = b""):
        self.answer, self.interval, self.prompt = answer, interval, prompt
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self.connections = 0
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        accept_until(self._listener, self._stop, self._take)

    def _take(self, conn: socket.socket) -> None:
        self.connections += 1
        self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        with conn, contextlib.suppress(OSError):
            conn.sendall(self.prompt)
            pending = self.answer or b""
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    if conn.recv(65536) == b"":
                        return  # the client gave up and closed
                if pending:
                    conn.sendall(pending[:1])
                    pending = pending[1:]
                self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(2)


@pytest.fixture
def peer():
    started: list[SlowPeer] = []

    def start(*args, **kwargs) -> SlowPeer:
        started.append(SlowPeer(*args, **kwargs))
        return started[-1]

    yield start
    for p in started:
        p.stop()


def post(port: int) -> tuple[Result, float]:
    body = b'{"event":"ticket.dispatched"}'
    headers = channels.webhook_headers("ticket.dispatched", "d-1", "s" * 32, body)
    started = time.monotonic()
    result = channels.send_webhook(f"http://127.0.0.1:{port}/hook", headers, body, TIMEOUT)
    return result, time.monotonic() - started


def mail(port: int) -> tuple[Result, float]:
    message = channels.build_email("LAPOR! <no-reply@lapor.localhost>", "rina@contoh.id",
                                   Email("[LAPOR!] uji", "isi"), "d-2")
    started = time.monotonic()
    result = channels.send_email(SmtpSettings("127.0.0.1", port), message, TIMEOUT)
    return result, time.monotonic() - started


def test_a_webhook_answer_dripped_byte_by_byte_is_cut_at_the_limit(peer):
    # 38 bytes at 0.5 s each: 19 s if each byte only had to beat the 1 s timeout.
    slow = peer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    result, took = post(slow.port)
    assert result == Result(False, "timeout")
    assert took < NO_HANG


def test_a_webhook_endpoint_that_never_answers_times_out(peer):
    silent = peer(None)
    result, took = post(silent.port)
    assert result == Result(False, "timeout")
    assert took < NO_HANG


def test_an_answer_whose_status_came_in_time_counts_even_if_the_body_drips(peer):
    status = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"
    slow_body = peer(b"x" * 40, prompt=status)
    result, took = post(slow_body.port)
    assert result == Result(True, "HTTP 200")
    assert took < NO_HANG


def test_an_smtp_greeting_dripped_byte_by_byte_is_cut_at_the_limit(peer):
    slow = peer(b"220 mail.contoh.id ESMTP ready\r\n")
    result, took = mail(slow.port)
    assert result == Result(False, "SMTP timeout")
    assert took < NO_HANG


def test_an_smtp_server_that_never_greets_times_out(peer):
    silent = peer(None)
    result, took = mail(silent.port)
    assert result == Result(False, "SMTP timeout")
    assert took < NO_HANG


def test_nothing_is_sent_once_the_limit_has_passed(peer):
    listening = peer(None)
    with channels.SendDeadline(0.0, TIMEOUT) as deadline:
        time.sleep(0.05)  # the watchdog fires
        with pytest.raises(TimeoutError):
            deadline.connect(("127.0.0.1", listening.port))
    assert listening.connections == 0


def test_a_short_limit_set_while_a_long_one_runs_still_ends_its_send_on_time(peer):
    # The limits' thread sleeps until the earliest limit it knows: a shorter one set later
    # must wake it, or a send to a silent peer would hang until the long one passes.
    silent = peer(None)
    with channels.SendDeadline(60.0, 60.0) as long_send:
        time.sleep(0.05)  # the limits' thread now sleeps towards the long one
        started = time.monotonic()
        with channels.SendDeadline(0.3, 60.0) as short_send:
            with short_send.connect(("127.0.0.1", silent.port)) as sock:
                sock.settimeout(30)  # only the limits' thread can end the read in time
                assert sock.recv(1) == b""  # shut down by the limits' thread
                took = time.monotonic() - started
        assert short_send.expired and not long_send.expired
    assert 0.3 <= took < NO_HANG
