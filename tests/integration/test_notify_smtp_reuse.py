"""A sending thread keeps its SMTP connection for its next email, against a real aiosmtpd
server: one session carries several messages, a connection the server dropped is replaced
without losing the email, and a failed conversation is not kept."""

from __future__ import annotations

import email
import email.policy
import threading

import pytest
from aiosmtpd.controller import Controller

from services.notify import channels
from services.notify.channels import Result, SmtpSettings, smtp
from services.notify.templates import Email
from tests.conftest import free_port

pytestmark = pytest.mark.integration


class Sink:
    """Keeps (client address, Message-ID) of each accepted message; refuses with 451 while
    `refuse` is set."""

    def __init__(self):
        self.accepted: list[tuple[tuple, str]] = []
        self.refuse = False
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        if self.refuse:
            return "451 4.3.0 Try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.accepted.append((tuple(session.peer), parsed["Message-ID"]))
        return "250 OK"


@pytest.fixture
def server():
    sink, port = Sink(), free_port()
    controllers = [Controller(sink, hostname="127.0.0.1", port=port)]
    controllers[0].start()

    def restart():
        controllers[-1].stop()  # drops every open session
        controllers.append(Controller(sink, hostname="127.0.0.1", port=port))
        controllers[-1].start()

    sink.port, sink.restart = port, restart
    yield sink
    controllers[-1].stop()
    smtp.close_kept()


def send(port: int, delivery_id: str) -> Result:
    message = channels.build_email("LAPOR! <noreply@lapor.example.go.id>",
                                   ("pelapor@example.id",), Email("[LAPOR!] uji", "isi"),
                                   delivery_id)
    return channels.send_email(SmtpSettings("127.0.0.1", port), message, 5.0)


def test_one_thread_sends_several_emails_on_one_connection(server):
    smtp.close_kept()
    results = [send(server.port, f"d-{i}") for i in range(3)]
    assert results == [Result(True, "SMTP 250")] * 3
    assert [mid for _, mid in server.accepted] == [f"<d-{i}@lapor.example.go.id>"
                                                    for i in range(3)]
    assert len({peer for peer, _ in server.accepted}) == 1


def test_a_connection_the_server_dropped_is_replaced_and_the_email_goes(server):
    smtp.close_kept()
    assert send(server.port, "d-1").ok
    server.restart()
    assert send(server.port, "d-2") == Result(True, "SMTP 250")
    peers = [peer for peer, _ in server.accepted]
    assert [mid for _, mid in server.accepted] == ["<d-1@lapor.example.go.id>",
                                                    "<d-2@lapor.example.go.id>"]
    assert peers[0] != peers[1]


def test_a_failed_conversation_is_not_kept(server):
    smtp.close_kept()
    server.refuse = True
    assert send(server.port, "d-1") == Result(False, "SMTP 451")
    server.refuse = False
    assert send(server.port, "d-2").ok
    assert send(server.port, "d-3").ok
    peers = [peer for peer, _ in server.accepted]
    assert len(peers) == 2 and peers[0] == peers[1]  # a new session after the 451, kept


def test_each_thread_has_its_own_connection(server):
    smtp.close_kept()
    results: list[Result] = []

    def twice(prefix: str) -> None:
        results.extend(send(server.port, f"{prefix}-{i}") for i in range(2))
        smtp.close_kept()

    threads = [threading.Thread(target=twice, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r.ok for r in results) and len(results) == 4
    by_thread = {}
    for peer, mid in server.accepted:
        by_thread.setdefault(mid[1], set()).add(peer)
    assert all(len(peers) == 1 for peers in by_thread.values())
    assert by_thread["a"] != by_thread["b"]
