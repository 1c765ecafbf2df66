"""The dispatch webhook carries a signed, time-limited link to the report's attachments at
intake, made with the secret intake checks; it names the report and nothing about the
reporter; without a secret or intake's address there is no link."""

from urllib.parse import parse_qs, urlsplit

import pytest

from services.infra.config import Env
from services.infra.signed_links import LinkSigner, Verdict
from services.notify import payloads
from tests.unit.notify.test_notify_payloads import DELIVERY_ID, EMAIL, NAME, PHONE, dispatched

SECRET = b"s" * 40


@pytest.fixture(autouse=True)
def no_links_after():
    yield
    payloads.configure_attachment_links(None, "")


def test_the_dispatch_webhook_links_to_the_attachments_with_a_signed_expiring_link():
    payloads.configure_attachment_links(LinkSigner(SECRET), "https://lapor.example/",
                                        seconds=3600)
    body = payloads.dispatched_webhook("ticket.dispatched", dispatched(anonymous=True),
                                       DELIVERY_ID)
    link = urlsplit(body["attachments"]["url"])
    assert (link.scheme, link.netloc, link.path) == (
        "https", "lapor.example", "/api/v1/reports/LPR-7K3QX9M2/attachments")
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert set(query) == {"expires", "signature"}
    assert body["attachments"]["expires_at"].endswith("Z")
    intake = LinkSigner(SECRET)
    assert intake.verify("attachments", "LPR-7K3QX9M2", query["expires"],
                         query["signature"]) == Verdict.VALID
    assert intake.verify("attachments", "LPR-7K3QX9M2", query["expires"], query["signature"],
                         now=int(query["expires"])) == Verdict.EXPIRED
    assert not any(s in payloads.encode(body) for s in (NAME, EMAIL, PHONE))


def test_without_a_secret_or_intakes_address_there_is_no_link():
    payloads.configure_attachment_links(None, "https://lapor.example")
    assert "attachments" not in payloads.dispatched_webhook(
        "ticket.dispatched", dispatched(), DELIVERY_ID)
    payloads.configure_attachment_links(LinkSigner(SECRET), "")
    assert payloads.attachments_link("LPR-7K3QX9M2") is None


def test_the_settings_come_from_the_environment():
    payloads.attachment_links_from_env(Env({
        "LAPOR_ATTACHMENT_LINK_SECRET": SECRET.decode(),
        "NOTIFY_INTAKE_PUBLIC_URL": "https://lapor.example",
        "NOTIFY_ATTACHMENT_LINK_SECONDS": "60"}))
    link = payloads.attachments_link("LPR-7K3QX9M2", now=1_800_000_000)
    assert parse_qs(urlsplit(link["url"]).query)["expires"] == ["1800000060"]
