"""A sending thread keeps its connection to an agency's server for the next webhook, against
real HTTP/1.1 servers on 127.0.0.1 that count connections and requests: one connection
carries several POSTs, a server that says `Connection: close` (or closed the connection
while it was kept) gets a new one, a kept connection closed as the request went out is
replaced without losing or doubling the webhook, and an answer not read whole is not kept."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.notify import channels
from services.notify.channels import Result, webhook
from tests.integration.helpers import accept_until

pytestmark = pytest.mark.integration

TIMEOUT = 1.0


class Agency:
    """An HTTP/1.1 server that keeps connections open unless told otherwise. `mode`:
    keep: 200, kept open; close: 200 with `Connection: close`, then closes;
    hang_up: 200 kept open, then closes without saying so;
    drop_second: closes at the second request of a connection without taking it;
    big: 200 with a body longer than what notify reads of an answer;
    silent_second: never answers the second request of a connection."""

    def __init__(self, mode: str = "keep", tls: ssl.SSLContext | None = None):
        self.mode, self.tls = mode, tls
        self.requests: list[tuple[int, bytes]] = []  # (connection number, body)
        self.connections = 0
        self.closed_by_client = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        accept_until(self._listener, self._stop, self._take)

    def _take(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections += 1
            number = self.connections
        threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _request(self, conn: socket.socket, buffered: bytes) -> tuple[bytes, bytes] | None:
        """(body, what follows it) of the next request, or None when the client closed."""
        while b"\r\n\r\n" not in buffered:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buffered += chunk
        head, rest = buffered.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += conn.recv(65536)
        return rest[:length], rest[length:]

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffered, served = b"", 0
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
        with conn, contextlib.suppress(OSError):
            while not self._stop.is_set():
                got = self._request(conn, buffered)
                if got is None:
                    with self.lock:
                        self.closed_by_client += 1
                    return
                body, buffered = got
                served += 1
                if served == 2 and self.mode == "drop_second":
                    return  # closed without taking it
                if served == 2 and self.mode == "silent_second":
                    self._stop.wait(10)
                    return
                with self.lock:
                    self.requests.append((number, body))
                if self.mode == "close":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                    return
                if self.mode == "big":
                    payload = b"x" * (webhook._ANSWER_READ + 10)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(payload), payload))
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                if self.mode == "hang_up":
                    return

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, body in self.requests]

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture
def agency():
    started: list[Agency] = []

    def start(mode: str = "keep", tls: ssl.SSLContext | None = None) -> Agency:
        started.append(Agency(mode, tls))
        return started[-1]

    yield start
    webhook.close_kept()
    for a in started:
        a.stop()


def post(url: str, n: int) -> Result:
    body = b'{"n":%d}' % n
    headers = channels.webhook_headers("ticket.dispatched", f"d-{n}", "s" * 32, body)
    return channels.send_webhook(url, headers, body, TIMEOUT)


def wait_for(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_one_connection_carries_a_threads_webhooks_to_one_server(agency):
    server = agency("keep")
    assert [post(server.url, n) for n in range(5)] == [Result(True, "HTTP 200")] * 5
    assert server.bodies() == [b'{"n":%d}' % n for n in range(5)]
    assert server.connections == 1


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agency.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "agency.crt", tmp_path / "agency.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_a_tls_connection_is_kept_so_the_handshake_is_made_once(agency, certificate,
                                                                monkeypatch):
    cert_path, key_path = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert_path, key_path)
    trusting = ssl.create_default_context(cafile=str(cert_path))
    monkeypatch.setattr(webhook, "tls_context", lambda: trusting)
    server = agency("keep", tls=server_side)
    assert [post(server.url, n) for n in range(4)] == [Result(True, "HTTP 200")] * 4
    assert server.bodies() == [b'{"n":%d}' % n for n in range(4)]
    assert server.connections == 1


def test_a_server_that_says_close_gets_a_new_connection_each_time(agency):
    server = agency("close")
    assert [post(server.url, n) for n in range(3)] == [Result(True, "HTTP 200")] * 3
    assert len(server.bodies()) == 3
    assert server.connections == 3


def test_a_connection_the_server_closed_while_kept_is_replaced_unseen(agency):
    server = agency("hang_up")
    for n in range(3):
        assert post(server.url, n) == Result(True, "HTTP 200")
        time.sleep(0.05)  # the server's close has arrived before the next POST
    assert server.bodies() == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert server.connections == 3


def test_a_kept_connection_closed_as_the_post_went_out_is_sent_once_on_a_new_one(agency):
    server = agency("drop_second")  # takes one request per connection, drops the next
    assert [post(server.url, n) for n in range(4)] == [Result(True, "HTTP 200")] * 4
    # Each webhook arrived exactly once; the dropped attempts were never taken.
    assert server.bodies() == [b'{"n":%d}' % n for n in range(4)]
    assert server.connections == 4


def test_an_answer_longer_than_what_is_read_is_not_kept(agency):
    server = agency("big")
    assert [post(server.url, n) for n in range(2)] == [Result(True, "HTTP 200")] * 2
    assert server.connections == 2


def test_a_kept_connection_unused_for_a_while_is_closed_rather_than_tried(agency,
                                                                           monkeypatch):
    monkeypatch.setattr(webhook, "KEEP_IDLE_S", 0.1)
    server = agency("keep")
    assert post(server.url, 1) == Result(True, "HTTP 200")
    time.sleep(0.2)
    assert post(server.url, 2) == Result(True, "HTTP 200")
    assert server.connections == 2
    assert wait_for(lambda: server.closed_by_client == 1)  # the idle one was closed


def test_a_kept_connection_that_goes_silent_ends_within_the_limit_and_is_dropped(agency):
    server = agency("silent_second")
    assert post(server.url, 1) == Result(True, "HTTP 200")
    started = time.monotonic()
    assert post(server.url, 2) == Result(False, "timeout")
    assert time.monotonic() - started < channels.send_limit(TIMEOUT) + 1.0
    assert post(server.url, 3) == Result(True, "HTTP 200")
    assert server.connections == 2


def test_a_stopping_thread_closes_its_kept_connections(agency):
    first, second = agency("keep"), agency("keep")
    assert post(first.url, 1) == post(second.url, 2) == Result(True, "HTTP 200")
    webhook.close_kept()
    assert wait_for(lambda: first.closed_by_client == 1 and second.closed_by_client == 1)


def test_kept_connections_are_per_thread(agency):
    server = agency("keep")
    results: list[Result] = []

    def sender(base: int) -> None:
        results.extend(post(server.url, base + n) for n in range(3))
        webhook.close_kept()

    threads = [threading.Thread(target=sender, args=(10 * i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [Result(True, "HTTP 200")] * 9
    assert sorted(server.bodies()) == sorted(b'{"n":%d}' % (10 * i + n)
                                             for i in range(3) for n in range(3))
    assert server.connections == 3


def test_a_url_that_is_not_http_fails_for_good_without_a_request():
    assert post("ftp://127.0.0.1/hook", 1) == Result(False, "unsupported URL", permanent=True)
