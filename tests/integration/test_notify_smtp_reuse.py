"""A sending thread keeps its SMTP connection for its next email, against a real aiosmtpd
server: one session carries several messages without an RSET between them, a connection the
server dropped (closed between emails, or dead when the next MAIL FROM arrives) is replaced
without losing the email or sending it twice, and a failed conversation is not kept."""

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
        self.resets = 0
        # The next MAIL FROM (or the next message, once taken) ends its connection without
        # an answer, as a relay that crashed or dropped the session.
        self.vanish_at_mail = False
        self.vanish_after_data = False
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        if self.vanish_at_mail:
            self.vanish_at_mail = False
            server.transport.abort()
            return "421 4.4.2 gone"  # never reaches the client
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):  # noqa: N802
        with self.lock:
            self.resets += 1
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        if self.refuse:
            return "451 4.3.0 Try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.accepted.append((tuple(session.peer), parsed["Message-ID"]))
        if self.vanish_after_data:
            self.vanish_after_data = False
            server.transport.abort()
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
    assert server.resets == 0  # a session after a 250 to the message is ready for the next


def test_a_kept_connection_dead_at_mail_from_is_replaced_within_the_send(server):
    """The server vanished without closing (nothing to read on the socket) and the next MAIL
    FROM finds it gone: nothing was accepted, so the email goes on a new connection in the
    same send, once."""
    smtp.close_kept()
    assert send(server.port, "d-1").ok
    server.vanish_at_mail = True
    assert send(server.port, "d-2") == Result(True, "SMTP 250")
    assert [mid for _, mid in server.accepted] == ["<d-1@lapor.example.go.id>",
                                                    "<d-2@lapor.example.go.id>"]
    peers = [peer for peer, _ in server.accepted]
    assert peers[0] != peers[1]
    assert send(server.port, "d-3").ok  # the new connection is kept in turn
    assert server.accepted[-1][0] == peers[1]


def test_a_connection_lost_after_the_message_is_not_sent_again_in_the_same_send(server):
    """Once the message may have been taken, a lost connection fails the attempt (the retry
    comes later under the same Message-ID) instead of sending it again at once."""
    smtp.close_kept()
    assert send(server.port, "d-1").ok
    server.vanish_after_data = True
    result = send(server.port, "d-2")
    assert not result.ok
    assert [mid for _, mid in server.accepted] == ["<d-1@lapor.example.go.id>",
                                                    "<d-2@lapor.example.go.id>"]


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
