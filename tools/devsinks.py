"""Stand-ins for the outside world on one machine (`make up`): an SMTP server that keeps
every message in var/mail/, an agency webhook receiver that checks the signature and keeps
every delivery in var/webhooks/, and an SMS/WhatsApp gateway (POST /gateway/sms and
/gateway/whatsapp) that keeps every outgoing message in var/sms/. Never used in
production."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

from services.infra import logs
from services.notify.signing import verify

log = logging.getLogger("devsinks")


class MailStore:
    def __init__(self, folder: Path):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        name = f"{time.time_ns()}.eml"
        (self.folder / name).write_bytes(envelope.content)
        subject = message_from_bytes(envelope.content, policy=policy.default)["Subject"]
        log.info("mail stored in var/mail/%s", name, extra={"subject": subject})
        return "250 Message accepted"


def receiver(folder: Path, secret: bytes, texts: Path | None = None):
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if texts is not None and self.path.startswith("/gateway/"):
                return self._gateway(body)
            valid = verify(secret, self.headers, body)
            name = f"{time.time_ns()}.json"
            (folder / name).write_text(json.dumps({
                "path": self.path, "signature_valid": valid,
                "headers": {k: v for k, v in self.headers.items() if k.startswith("X-Lapor")},
                "body": json.loads(body or b"null")}, indent=2, ensure_ascii=False))
            log.info("webhook stored in var/webhooks/%s", name,
                     extra={"signature_valid": valid})
            self.send_response(200 if valid else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _gateway(self, body: bytes):
            # An SMS or WhatsApp gateway: what notify asks it to send to a reporter's phone.
            channel = self.path.removeprefix("/gateway/").strip("/") or "sms"
            name = f"{time.time_ns()}-{channel}.json"
            (texts / name).write_text(json.dumps({"channel": channel,
                                                  "body": json.loads(body or b"null")},
                                                 indent=2, ensure_ascii=False))
            log.info("%s message stored in var/sms/%s", channel, name)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--var", type=Path, default=Path("var"))
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--webhook-port", type=int, default=8099)
    parser.add_argument("--secret-file", type=Path, required=True)
    args = parser.parse_args()
    logs.setup("devsinks")
    # aiosmtpd logs each SMTP command at INFO, the reporter's address among them (and at
    # DEBUG the message itself): the mail is kept in var/mail, the log gets none of it.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    mail, hooks, texts = args.var / "mail", args.var / "webhooks", args.var / "sms"
    for folder in (mail, hooks, texts):
        folder.mkdir(parents=True, exist_ok=True)
    smtp = Controller(MailStore(mail), hostname="127.0.0.1", port=args.smtp_port)
    smtp.start()
    http = ThreadingHTTPServer(("127.0.0.1", args.webhook_port),
                               receiver(hooks, args.secret_file.read_bytes().strip(), texts))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    log.info("SMTP sink on 127.0.0.1:%s, webhook receiver and SMS/WhatsApp gateway on "
             "127.0.0.1:%s",
             args.smtp_port, args.webhook_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    http.shutdown()
    smtp.stop()


if __name__ == "__main__":
    main()
