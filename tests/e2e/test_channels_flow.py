"""SMS 1708 and WhatsApp through the whole platform: a text message sent to the gateway
becomes a report in intake, routing dispatches its ticket, and notify's text with the
tracking id reaches the sender through a local gateway receiver (an HTTP server standing in
for the SMS aggregator and the WhatsApp provider)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field

import pytest
import requests

from services.infra.regions import read_regions_csv
from tests.e2e.harness import AgencyReceiver, Stack
from tests.integration.helpers import ROAD_TEXTS, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SECRETS = {"sms": "e2e-sms-gateway-secret-0123456789",
           "whatsapp": "e2e-wa-gateway-secret-0123456"}
SMS_SENDER, SMS_E164 = "081234567890", "+6281234567890"
WA_SENDER, WA_E164 = "+62 852-9876-5432", "+6285298765432"
STOP_SENDER, STOP_E164 = "0813-1111-2222", "+6281311112222"


class GatewayReceiver(AgencyReceiver):
    """The providers' send APIs: records each JSON body notify POSTs, per channel path."""

    def to(self, channel: str, number: str) -> list[dict]:
        return [body for body in (json.loads(r["body"]) for r in self.requests
                                  if r["path"].rsplit("/", 1)[-1] == channel)
                if body["to"] == number]


@dataclass
class ChannelStack(Stack):
    """The three services with both gateways configured: intake takes signed messages, notify
    sends texts to the receiver."""

    gateway: GatewayReceiver = field(default_factory=GatewayReceiver)

    def env(self, service: str) -> dict:
        env = super().env(service)
        env.update({"INTAKE_SMS_GATEWAY_SECRET": SECRETS["sms"],
                    "INTAKE_WHATSAPP_GATEWAY_SECRET": SECRETS["whatsapp"],
                    "NOTIFY_SMS_GATEWAY_URL": f"{self.gateway.url}/sms",
                    "NOTIFY_WHATSAPP_GATEWAY_URL": f"{self.gateway.url}/whatsapp"})
        return env

    def import_regions(self, csv_path) -> None:
        """The operator's import of the official list into intake (provinces, regencies and
        cities: what the channels' region matcher reads; the whole list takes longer)."""
        rows = [r for r in read_regions_csv(csv_path) if r.level in ("provinsi",
                                                                     "kabupaten_kota")]
        upper = self.workdir / "regions.csv"
        upper.write_text("kode,nama,level\n" + "".join(
            f"{r.code},{r.name},{r.level}\n" for r in rows), encoding="utf-8")
        self.run("intake", "import-regions", str(upper))

    def text(self, channel: str, sender: str, text: str, message_id: str | None = None
             ) -> requests.Response:
        raw = json.dumps({"message_id": message_id or uuid.uuid4().hex, "from": sender,
                          "text": text}).encode()
        signature = hmac.new(SECRETS[channel].encode(), raw, hashlib.sha256).hexdigest()
        return requests.post(f"{self.base_url}/api/v1/channels/{channel}", data=raw,
                             headers={"Content-Type": "application/json",
                                      "X-Lapor-Signature": f"sha256={signature}"}, timeout=10)

    def reply(self, channel: str, sender: str, text: str, message_id: str | None = None
              ) -> dict:
        response = self.text(channel, sender, text, message_id)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        super().close()
        self.gateway.close()


@pytest.fixture
def channels(amqp_url, tmp_path, shared_data, request):
    stack = ChannelStack(amqp_url, tmp_path)
    stack.setup()
    stack.import_regions(shared_data / "wilayah-kepmendagri-2025.csv")
    yield stack
    stack.close()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for service in ("intake", "routing", "notify"):
            print(f"----- {service} log -----\n{stack.log(service)[-4000:]}")


def test_sms_and_whatsapp_messages_become_dispatched_tickets_and_the_senders_hear_back(
        channels):
    """One stack for the whole story (starting one takes longer than the story)."""
    for service in ("routing", "notify", "intake"):
        channels.start(service)

    # SMS: the text names its regency, so one message is a report.
    sms_text = ("Jalan utama di Nagari Muaro, Kab. Sijunjung, rusak berlubang sejak bulan lalu "
                "dan membahayakan pengendara motor.")
    first = channels.reply("sms", SMS_SENDER, sms_text, message_id="SM-e2e-1")
    sms_id = first["tracking_id"]
    assert first["reply"].startswith(f"Laporan diterima. Nomor pelacakan: {sms_id}.")
    # The provider delivers the same message again: same reply, no second report.
    again = channels.text("sms", SMS_SENDER, sms_text, message_id="SM-e2e-1")
    assert again.json() == first and again.headers["Idempotent-Replayed"] == "true"

    # WhatsApp: no region in the text, so one question; the answer completes the report.
    asked = channels.reply("whatsapp", WA_SENDER,
                           "Aspal jalan kabupaten mengelupas dan berlubang, motor sering "
                           "tergelincir kalau hujan.")
    assert asked["tracking_id"] is None and "kabupaten/kota mana" in asked["reply"]
    wa_id = channels.reply("whatsapp", WA_SENDER, "Sijunjung")["tracking_id"]
    assert wa_id and wa_id != sms_id

    for tracking_id in (sms_id, wa_id):
        view = wait_for(lambda t=tracking_id: (v := channels.report(t))["status"]
                        == "DISPATCHED" and v, 40, interval=0.5, what=f"{tracking_id} DISPATCHED")
        assert view["agency"]["code"] == "PUPR-13.03"
        assert view["region_code"] == "13.03"

    # notify's texts reach each sender through their own channel's gateway.
    sms_texts = wait_for(lambda: [b for b in channels.gateway.to("sms", SMS_E164)
                                  if sms_id in b["text"]], 40, what="SMS to the sender")
    wa_texts = wait_for(lambda: [b for b in channels.gateway.to("whatsapp", WA_E164)
                                 if wa_id in b["text"]], 40, what="WhatsApp to the sender")
    assert sms_texts[0]["reference"] and wa_texts[0]["reference"]
    assert not channels.gateway.to("whatsapp", SMS_E164), "an SMS reporter hears only by SMS"

    # STATUS by SMS answers in words, with the agency.
    status = channels.reply("sms", SMS_SENDER, f"STATUS {sms_id}")["reply"]
    assert status.startswith(f"{sms_id}: Terdisposisi ke ") and len(status) <= 160

    # The numbers went to notify only: not to the agency, not into any log.
    for hook in channels.agency.requests:
        assert b"81234567890" not in hook["body"] and b"85298765432" not in hook["body"]
    logs = channels.log("intake") + channels.log("routing") + channels.log("notify")
    assert "81234567890" not in logs and "85298765432" not in logs

    # STOP reaches notify: nothing goes to the number by SMS until START.
    assert "tidak akan menerima" in channels.reply("sms", STOP_SENDER, "STOP")["reply"]
    # A report from the web with only that number: its notices would go by SMS.
    # (Texts unlike the ones above: routing links near-identical reports as duplicates.)
    silenced = web_report(channels, ROAD_TEXTS[2])
    # (Polled twice a second: the lookups count against the API's per-address allowance.)
    wait_for(lambda: channels.report(silenced)["status"] == "DISPATCHED", 40, interval=0.5,
             what="DISPATCHED")
    assert "aktif kembali" in channels.reply("sms", STOP_SENDER, "START")["reply"]
    heard = web_report(channels, ROAD_TEXTS[9])
    wait_for(lambda: [b for b in channels.gateway.to("sms", STOP_E164) if heard in b["text"]],
             40, what="SMS after START")
    # notify handles one queue in order: the notices of the report made while the number
    # was opted out were settled before those of the later one, and none was sent.
    assert not [b for b in channels.gateway.to("sms", STOP_E164) if silenced in b["text"]]


def web_report(channels: ChannelStack, text: tuple[str, str]) -> str:
    """A report from the web whose only contact is STOP_SENDER's number (notices by SMS)."""
    title, body = text
    return channels.submit(title=title, body=body,
                           reporter={"name": "Rina", "phone": STOP_SENDER})["tracking_id"]
