"""SMTP settings from NOTIFY_SMTP_URL."""

import pytest

from services.notify.channels import parse_smtp_url


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
