"""Signed links: valid until their expiry, then expired; any change to what they open, their
expiry or their signature makes them invalid; the secret is read once and checked."""

import pytest

from services.infra import signed_links
from services.infra.config import ConfigError, Env
from services.infra.signed_links import LinkSigner, Verdict

SECRET = b"k" * 32
NOW = 1_800_000_000


def test_a_link_is_valid_until_its_expiry_and_expired_after():
    signer = LinkSigner(SECRET)
    query = signer.query("attachment", "abc", ttl=60, now=NOW)
    assert query["expires"] == str(NOW + 60)
    verify = signer.verify
    assert verify("attachment", "abc", query["expires"], query["signature"], now=NOW) \
        == Verdict.VALID
    assert verify("attachment", "abc", query["expires"], query["signature"], now=NOW + 59) \
        == Verdict.VALID
    assert verify("attachment", "abc", query["expires"], query["signature"], now=NOW + 60) \
        == Verdict.EXPIRED


@pytest.mark.parametrize("change", ["subject", "purpose", "expires", "signature", "secret"])
def test_a_changed_link_is_invalid_not_expired(change):
    signer = LinkSigner(SECRET)
    query = signer.query("attachment", "abc", ttl=60, now=NOW)
    args = {"purpose": "attachment", "subject": "abc", "expires": query["expires"],
            "signature": query["signature"]}
    if change == "subject":
        args["subject"] = "abd"
    elif change == "purpose":
        args["purpose"] = "attachments"
    elif change == "expires":
        args["expires"] = str(NOW + 10 ** 6)  # stretched into the future
    elif change == "signature":
        args["signature"] = ("0" if query["signature"][0] != "0" else "1") + \
            query["signature"][1:]
    else:
        signer = LinkSigner(b"z" * 32)
    assert signer.verify(**args, now=NOW) == Verdict.INVALID


@pytest.mark.parametrize("expires,signature", [(None, "ab"), ("123", None), ("", ""),
                                               ("12a", "ab" * 32), ("-5", "ab" * 32),
                                               ("9" * 40, "ab" * 32)])
def test_malformed_links_are_invalid(expires, signature):
    assert LinkSigner(SECRET).verify("attachment", "abc", expires, signature, now=NOW) \
        == Verdict.INVALID


def test_the_secret_comes_from_the_environment_or_a_file(tmp_path):
    assert signed_links.from_env(Env({})) is None
    assert signed_links.from_env(Env({"LAPOR_ATTACHMENT_LINK_SECRET": "s" * 40})).secret \
        == b"s" * 40
    path = tmp_path / "secret"
    path.write_text("f" * 40 + "\n")
    assert signed_links.from_env(Env({"LAPOR_ATTACHMENT_LINK_SECRET_FILE": str(path)})) \
        .secret == b"f" * 40


@pytest.mark.parametrize("env,message", [
    ({"LAPOR_ATTACHMENT_LINK_SECRET": "short"}, "at least 32 bytes"),
    ({"LAPOR_ATTACHMENT_LINK_SECRET_FILE": "/nonexistent/secret"}, "cannot read"),
    ({"LAPOR_ATTACHMENT_LINK_SECRET": "s" * 40, "LAPOR_ATTACHMENT_LINK_SECRET_FILE": "/x"},
     "not both"),
])
def test_a_bad_secret_stops_the_process_naming_the_setting(env, message):
    with pytest.raises(ConfigError, match=message) as raised:
        signed_links.from_env(Env(env))
    assert "LAPOR_ATTACHMENT_LINK_SECRET" in str(raised.value)
