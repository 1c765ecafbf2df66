"""What a text message asks for, and the replies: commands only when they stand alone, every
fixed reply one SMS in GSM-7, titles from the first words."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from services.infra.config import ConfigError, Env
from services.intake import ids
from services.intake.inbound import conversation, settings
from services.intake.inbound.conversation import Intent, parse


@pytest.mark.parametrize("text, intent", [
    ("STOP", Intent.STOP), ("stop.", Intent.STOP), (" Berhenti ", Intent.STOP),
    ("START", Intent.START), ("mulai", Intent.START),
    ("BATAL", Intent.CANCEL), ("batal!", Intent.CANCEL),
    ("HELP", Intent.HELP), ("bantuan", Intent.HELP),
    ("STATUS", Intent.STATUS),
    ("Stop pungli di kantor desa Sijunjung", Intent.REPORT),
    ("Batal berangkat karena jembatan putus di Sijunjung", Intent.REPORT),
    ("status jalan di desa kami rusak parah sejak lama", Intent.REPORT),
    ("Jalan rusak", Intent.REPORT),
])
def test_a_command_is_the_word_alone(text, intent):
    assert parse(text).intent == intent


@pytest.mark.parametrize("text, argument", [
    ("STATUS LPR-7K2-M9Q-XD4", "LPR-7K2-M9Q-XD4"),
    ("status lpr7k2m9qxd4", "lpr7k2m9qxd4"),
    ("Cek status: LPR 7K2 M9Q XD4", "LPR 7K2 M9Q XD4"),
    ("STATUS 7K2M9QXD4", "7K2M9QXD4"),
])
def test_status_takes_what_looks_like_a_tracking_id(text, argument):
    assert parse(text) == conversation.Command(Intent.STATUS, argument)


def test_every_fixed_reply_is_one_gsm7_sms():
    longest = "LPR-" + "W" * 3 + "-" + "W" * 3 + "-" + "W" * 3
    replies = [conversation.HELP, conversation.ASK_REGION, conversation.ASK_TEXT,
               conversation.CANCELLED, conversation.NOTHING_TO_CANCEL, conversation.STOPPED,
               conversation.STARTED, conversation.STATUS_USAGE,
               conversation.accepted(longest), conversation.not_found(longest),
               conversation.invalid_tracking_id("LPR-7K2-M9Q-XD5-EXTRA"),
               conversation.ask_choice(["Kabupaten Kepulauan Siau Tagulandang Biaro",
                                        "Kota Administrasi Jakarta Selatan",
                                        "Kabupaten Administrasi Kepulauan Seribu"])]
    for reply in replies:
        assert conversation.fit(reply, "sms") == reply, reply
        assert len(reply) <= 160 and set(reply) <= conversation.GSM7, reply


def test_the_accepted_reply_names_the_tracking_id_twice():
    tracking_id = ids.new_tracking_id()
    reply = conversation.accepted(tracking_id)
    assert reply.count(tracking_id) == 2 and f"STATUS {tracking_id}" in reply


def test_sms_replies_are_folded_to_gsm7_and_cut_to_one_message():
    reply = conversation.fit("Catatan: jalan ditutup — cek ke Dinas PU “segera” ✓ " * 5, "sms")
    assert len(reply) <= 160 and set(reply) <= conversation.GSM7 and reply.endswith("..")
    long = "x" * 2000
    assert len(conversation.fit(long, "whatsapp")) == conversation.WHATSAPP_LIMIT
    assert conversation.fit("Pemberitahuan é", "whatsapp") == "Pemberitahuan é"


def test_titles_are_the_first_words():
    assert conversation.title_of("Jalan rusak di Sijunjung\nsudah lama") == \
        "Jalan rusak di Sijunjung"
    long = "Jalan utama Nagari Muaro di Kabupaten Sijunjung berlubang besar sejak tiga bulan"
    title = conversation.title_of(long)
    assert title.endswith("...") and len(title) <= conversation.TITLE_WORDS + 3
    assert long.startswith(title.removesuffix("..."))
    assert len(conversation.title_of("Air")) >= 5


def test_status_words_for_the_public_and_for_the_owner():
    view = {"tracking_id": "LPR-7K2-M9Q-XD4", "status": "DISPATCHED",
            "status_label": "Terdisposisi ke Dinas PUPR", "deadline": "2030-07-19T09:00:00Z",
            "deadline_zone": "WITA",
            "timeline": [{"status": "ON_HOLD", "note": "Menunggu", "private_note": "RT berapa?"},
                         {"status": "DISPATCHED", "note": "Terdisposisi"}]}
    public = conversation.status(view, own=False)
    assert public == ("LPR-7K2-M9Q-XD4: Terdisposisi ke Dinas PUPR. "
                      "Batas tindak lanjut 19-07-2030 17:00 WITA.")
    assert conversation.status(view, own=True) == public + " Catatan: RT berapa?"


# -- settings ----------------------------------------------------------------------------------
def test_the_signature_is_an_hmac_of_the_raw_body():
    config = settings.from_config({"SMS_GATEWAY_SECRET": "s" * 32}, Env({}))
    body = b'{"message_id":"1"}'
    good = "sha256=" + hmac.new(b"s" * 32, body, hashlib.sha256).hexdigest()
    assert config.signature_matches("sms", body, good)
    assert config.signature_matches("sms", body, good.upper().replace("SHA256", "sha256"))
    assert not config.signature_matches("sms", body + b" ", good)
    assert not config.signature_matches("sms", body, good.replace("sha256", "sha1"))
    assert "whatsapp" not in config.secrets


def test_secrets_come_from_the_environment_or_a_file(tmp_path):
    path = tmp_path / "wa-secret"
    path.write_text("w" * 40 + "\n")
    config = settings.from_config({}, Env({"INTAKE_SMS_GATEWAY_SECRET": "s" * 20,
                                           "INTAKE_WHATSAPP_GATEWAY_SECRET_FILE": str(path)}))
    assert config.secrets == {"sms": b"s" * 20, "whatsapp": b"w" * 40}
    # The same number hashes the same way each time, differently per channel, never clear.
    a = config.sender_hash("sms", "+6281234567890")
    assert a == config.sender_hash("sms", "+6281234567890")
    assert a != config.sender_hash("whatsapp", "+6281234567890") and "812" not in a


@pytest.mark.parametrize("env, says", [
    ({"INTAKE_SMS_GATEWAY_SECRET": "short"}, "shorter than 16"),
    ({"INTAKE_SMS_GATEWAY_SECRET": "s" * 20, "INTAKE_SMS_GATEWAY_SECRET_FILE": "/x"},
     "not both"),
    ({"INTAKE_WHATSAPP_GATEWAY_SECRET_FILE": "/nonexistent/secret"}, "cannot read"),
    ({"INTAKE_RATE_LIMIT_CHANNEL_SENDER": "lots"}, "INTAKE_RATE_LIMIT_CHANNEL_SENDER"),
])
def test_a_bad_setting_stops_with_its_name(env, says):
    with pytest.raises(ConfigError, match=says):
        settings.from_config({}, Env(env))


def test_the_example_tracking_id_in_the_replies_is_a_real_one():
    # A sender may copy it: it must pass the check character, like the ones we issue.
    for reply in (conversation.STATUS_USAGE, conversation.invalid_tracking_id("x")):
        example = reply.rsplit("STATUS ", 1)[1].rstrip(".")
        assert ids.normalise_tracking_id(example) == example
