"""The demo sinks `make up` starts (tools/devsinks.py) keep what notify sends in var/ and
write nothing personal to their log: the reporter's address and the message stay out of it,
as they stay out of the services' logs."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_mail_is_kept_and_its_address_and_text_stay_out_of_the_log(tmp_path):
    var = tmp_path / "var"
    secret = tmp_path / "secret"
    secret.write_text("demo-secret\n")
    smtp_port, webhook_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "tools/devsinks.py", "--var", str(var), "--secret-file", str(secret),
         "--smtp-port", str(smtp_port), "--webhook-port", str(webhook_port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _listening(smtp_port) and _listening(webhook_port), 20,
                 what="the sinks to listen")
        mail = EmailMessage()
        mail["From"] = "LAPOR <noreply@lapor.example.id>"
        mail["To"] = "rina.marlina@contoh.id"
        mail["Subject"] = "Laporan LPR-7K2-M9Q-XD4 diterima"
        mail.set_content("Yth. Rina Marlina, nomor 081234567890: laporan Anda diterima.")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.send_message(mail)
        wait_for(lambda: list((var / "mail").glob("*.eml")), 10, what="the mail in var/mail")
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    kept = list((var / "mail").glob("*.eml"))
    assert len(kept) == 1 and b"rina.marlina@contoh.id" in kept[0].read_bytes()
    assert "mail stored in var/mail/" in output, output
    for personal in ("rina.marlina@contoh.id", "Rina Marlina", "081234567890"):
        assert personal not in output, f"{personal!r} in the sinks' log:\n{output}"
