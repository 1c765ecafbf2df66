"""Sends one citizen message into intake the way an SMS or WhatsApp gateway does (signed with
the channel's shared secret) and prints intake's reply: a stand-in for 1708 on one machine.

    python tools/gateway_message.py --channel sms --from +6281234567890 "Jalan rusak di Sijunjung"

The secret is read from --secret-file (default: var/<channel>-gateway-secret, which
`make up` writes and gives to intake)."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import uuid
from pathlib import Path

import requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", help="what the citizen writes")
    parser.add_argument("--channel", choices=("sms", "whatsapp"), default="sms")
    parser.add_argument("--from", dest="sender", required=True,
                        help="the sender's number, e.g. +6281234567890")
    parser.add_argument("--media-url", default="", help="a photo the citizen sent (WhatsApp)")
    parser.add_argument("--message-id", default="",
                        help="the provider's message id (default: a new one); the same id "
                             "again is a redelivery")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--secret-file", type=Path)
    args = parser.parse_args()

    secret_file = args.secret_file or Path("var") / f"{args.channel}-gateway-secret"
    try:
        secret = secret_file.read_text(encoding="utf-8").strip().encode()
    except OSError as exc:
        print(f"cannot read the gateway secret {secret_file}: {exc.strerror}", file=sys.stderr)
        return 2
    message = {"message_id": args.message_id or uuid.uuid4().hex, "from": args.sender,
               "text": args.text}
    if args.media_url:
        message["media_url"] = args.media_url
    body = json.dumps(message, ensure_ascii=False).encode()
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    answer = requests.post(f"{args.url}/api/v1/channels/{args.channel}", data=body, timeout=10,
                           headers={"Content-Type": "application/json",
                                    "X-Lapor-Signature": f"sha256={signature}"})
    if answer.headers.get("Content-Type", "").startswith("application/json") and answer.ok:
        print(answer.json().get("reply", ""))
        return 0
    print(f"{answer.status_code}: {answer.text}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
