"""SMTP settings from NOTIFY_SMTP_URL; recipient addresses and the message built for them."""

import smtplib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notify.channels import (
    AddressError,
    Mailbox,
    _timed_out,
    build_email,
    mailbox,
    parse_address_list,
    parse_smtp_url,
    send_limit,
    smtp,
)
from services.notify.templates import Email


def test_plain_smtp_with_port():
    s = parse_smtp_url("smtp://127.0.0.1:1025")
    assert (s.host, s.port, s.use_ssl, s.starttls, s.username) == ("127.0.0.1", 1025, False,
                                                                   False, "")


def test_credentials_and_starttls():
    s = parse_smtp_url("smtp://mailer:p%40ss@mail.example.go.id:587?starttls=1")
    assert (s.host, s.port, s.starttls, s.username, s.password) == (
        "mail.example.go.id", 587, True, "mailer", "p@ss")
    assert "p@ss" not in repr(s)


def test_smtps_defaults_to_465():
    s = parse_smtp_url("smtps://mail.example.go.id")
    assert (s.port, s.use_ssl, s.starttls) == (465, True, False)


@pytest.mark.parametrize("url", ["http://mail:25", "smtp://", "mail.example:25",
                                 "smtp://host:port"])
def test_bad_urls(url):
    with pytest.raises(ValueError):
        parse_smtp_url(url)


# -- addresses ------------------------------------------------------------------------------
def test_an_ascii_address_goes_as_it_is():
    assert mailbox(" siti.rahayu@example.id ") == Mailbox("siti.rahayu@example.id",
                                                          "siti.rahayu@example.id", False)


def test_a_unicode_domain_goes_as_idna_without_smtputf8():
    assert mailbox("rina@contóh.id") == Mailbox("rina@xn--conth-3ta.id",
                                                "rina@xn--conth-3ta.id", False)


def test_a_unicode_local_part_needs_smtputf8():
    box = mailbox("rína@contóh.id")
    assert box == Mailbox("rína@xn--conth-3ta.id", "rína@contóh.id", True)


@pytest.mark.parametrize("address", ["a,postmaster@contoh.id", "rina", "rina@", "@contoh.id",
                                     "rina@contoh.id\r\nBcc: x@contoh.id", "a b@contoh.id"])
def test_what_is_not_one_address_is_refused_without_quoting_it(address):
    with pytest.raises(AddressError) as refused:
        mailbox(address)
    assert str(refused.value) == "recipient address invalid"


def test_a_message_to_a_unicode_mailbox_has_utf8_headers_and_a_stable_message_id():
    content = Email("[LAPOR!] Laporan diteruskan", "Yth. Pelapor,\n\nLaporan Anda ...")
    first = build_email("LAPOR! <no-reply@lapor.localhost>", "rína@contoh.id", content, "d-1")
    again = build_email("LAPOR! <no-reply@lapor.localhost>", "rína@contoh.id", content, "d-1")
    assert (first.sender, first.recipients, first.smtputf8) == (
        "no-reply@lapor.localhost", ("rína@contoh.id",), True)
    raw = first.data
    assert "To: rína@contoh.id\r\n".encode() in raw  # no encoded word inside an address
    assert first.message["Message-ID"] == again.message["Message-ID"] == (
        "<d-1@lapor.localhost>")


def test_an_ascii_message_stays_seven_bit():
    mail = build_email("LAPOR! <no-reply@lapor.localhost>", "rina@contóh.id",
                       Email("[LAPOR!] Status laporan", "Catatan: jalan sudah diperbaiki"),
                       "d-2")
    assert not mail.smtputf8 and mail.data.isascii()


def test_a_timeout_behind_another_exception_is_recognised():
    try:
        try:
            raise TimeoutError("timed out")
        except OSError as exc:
            raise smtplib.SMTPServerDisconnected(f"closed: {exc}")  # noqa: B904 (as smtplib)
    except smtplib.SMTPServerDisconnected as exc:
        assert _timed_out(exc)
    assert not _timed_out(smtplib.SMTPServerDisconnected("closed"))


def test_the_send_limit_is_a_fixed_multiple_of_the_timeout():
    assert send_limit(10.0) == 20.0


def test_an_email_with_html_is_text_and_html_alternatives_both_seven_bit():
    content = Email("[LAPOR!] Laporan diteruskan", "Yth. Pelapor,\n\nBatas waktu: Jumat",
                    "<p>Yth. Pelapor,</p><p>Dinas PU &amp; Penataan Ruang — Sijunjung</p>")
    mail = build_email("LAPOR! <no-reply@lapor.localhost>", "rina@contoh.id", content, "d-3")
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain", "text/html"]
    assert message.get_body(("html",)).get_content().startswith("<p>Yth. Pelapor,</p>")
    assert "Penataan Ruang — Sijunjung" in message.get_body(("html",)).get_content()
    assert message.get_body(("plain",)).get_content().startswith("Yth. Pelapor,")
    assert mail.data.isascii()  # quoted-printable where the text is not ASCII


def test_text_that_is_not_ascii_reaches_an_ascii_mailbox_encoded_and_reads_back_whole():
    subject = "[LAPOR!] Laporan Anda — diteruskan ke Dinas PU & Penataan Ruang"
    body = "Yth. Pelapor,\n\nDinas PU — Sijunjung.\n.baris bertitik\n" + "x" * 1200
    mail = build_email("Layanan LAPOR! — Nasional <no-reply@lapor.localhost>",
                       "rina@contoh.id", Email(subject, body), "d-6")
    assert not mail.smtputf8 and mail.data.isascii()
    assert b"=?utf-8?" in mail.data.split(b"\r\n\r\n", 1)[0]  # encoded words
    assert all(len(line) <= 998 for line in mail.data.split(b"\r\n"))
    assert b"\n" not in mail.data.replace(b"\r\n", b"")  # CRLF only
    message = mail.message
    assert message["Subject"] == subject
    assert message["From"] == "Layanan LAPOR! — Nasional <no-reply@lapor.localhost>"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == body + "\n"  # MIME text: CRLF


@pytest.mark.parametrize("field", ["subject", "mail_from"])
def test_a_line_break_in_a_header_value_is_refused_not_sent_as_another_header(field):
    values = {"subject": "[LAPOR!] Status", "mail_from": "LAPOR! <no-reply@lapor.localhost>"}
    values[field] += "\r\nBcc: semua@contoh.id"
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        build_email(values["mail_from"], "rina@contoh.id", Email(values["subject"], "isi"), "d-7")


def test_the_national_admins_are_one_message_to_every_address():
    mail = build_email("LAPOR! <no-reply@lapor.localhost>", ("admin@lapor.go.id",
                                                            "piket@lapor.go.id"),
                       Email("[LAPOR!] Eskalasi", "isi"), "d-4")
    assert mail.recipients == ("admin@lapor.go.id", "piket@lapor.go.id")
    assert mail.message["To"] == "admin@lapor.go.id, piket@lapor.go.id"
    with pytest.raises(AddressError):
        build_email("LAPOR! <no-reply@lapor.localhost>", (), Email("s", "b"), "d-5")


def test_an_address_list_is_checked_entry_by_entry():
    assert parse_address_list("") == parse_address_list("  ") == ()
    assert parse_address_list(" admin@lapor.go.id, Piket@Lapor.go.id ,admin@lapor.go.id") == (
        "admin@lapor.go.id", "Piket@lapor.go.id")
    with pytest.raises(ValueError, match="entry 2 is empty"):
        parse_address_list("admin@lapor.go.id,,piket@lapor.go.id")
    with pytest.raises(ValueError, match="entry 2 is not an email address") as bad:
        parse_address_list("admin@lapor.go.id, piket-at-lapor.go.id")
    assert "piket-at-lapor.go.id" not in str(bad.value)


# -- header lines written without the policy's header classes ----------------------------------
_ATOM = st.text("abcXYZ019_+-", min_size=1, max_size=12)
_ADDRESS = st.builds(lambda local, more, domain: ".".join([local, *more]) + "@" + domain,
                     _ATOM, st.lists(_ATOM, max_size=2),
                     st.lists(st.text("abz09-", min_size=1, max_size=10), min_size=1,
                              max_size=3).map(".".join))
_SUBJECT = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.lists(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                     max_size=300), min_size=1, max_size=6).map(" ".join),
    st.text(st.sampled_from(" \t=?()\"\\<>,;:@[]aé"), max_size=30))


def _by_the_policy(policy, name: str, value: str) -> bytes:
    return policy.header_factory(name, value).fold(policy=policy).encode(
        "utf-8" if policy.utf8 else "ascii")


@pytest.mark.parametrize("policy", [smtp._POLICY, smtp._POLICY_UTF8], ids=["ascii", "utf8"])
@settings(max_examples=300, deadline=None)
@given(subject=_SUBJECT, to=st.lists(_ADDRESS, min_size=1, max_size=3).map(", ".join))
def test_subject_and_to_lines_are_what_the_policy_writes(policy, subject, to):
    assert smtp._header(policy, "Subject", subject) == _by_the_policy(policy, "Subject", subject)
    assert smtp._header(policy, "To", to) == _by_the_policy(policy, "To", to)


@pytest.mark.parametrize("value", ["x" * 989, "x" * 990, "y " * 495, "=?utf-8?q?a?=", " lead",
                                   "trail ", "two  spaces", "tab\there"])
def test_subject_lines_at_the_edges_are_what_the_policy_writes(value):
    assert smtp._header(smtp._POLICY, "Subject", value) == _by_the_policy(
        smtp._POLICY, "Subject", value)


class _Recorder(smtp._Smtp):
    """_Smtp with its wire replaced by a list of the commands it would send."""

    def __init__(self):
        super().__init__()
        self.sent: list[str] = []

    def putcmd(self, cmd, args=""):
        self.sent.append(f"{cmd} {args}")

    def getreply(self):
        return 250, b"ok"


@settings(max_examples=300, deadline=None)
@given(address=st.from_regex(smtp._WIRE_ADDRESS, fullmatch=True)
       | st.text(alphabet="ab.@<>\"() ,;:\\[]é-", min_size=1, max_size=12))
def test_envelope_addresses_are_quoted_as_smtplib_quotes_them(address):
    """MAIL FROM and RCPT TO skip smtplib's address parser for a plain address: whatever
    the address, the command on the wire is the one smtplib would send."""
    client = _Recorder()
    client.mail(address)
    client.rcpt(address)
    quoted = smtplib.quoteaddr(address)
    assert client.sent == [f"mail FROM:{quoted}", f"rcpt TO:{quoted}"]
