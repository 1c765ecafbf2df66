"""SMS/WhatsApp gateway settings and bodies: the template is filled inside JSON strings, the
Authorization value is never shown, answers are classed like the contract says."""

import json

import pytest

from services.infra.config import ConfigError, Env
from services.notify import channels
from services.notify.app import Settings
from services.notify.channels import Result

AUTH = "Bearer gw-token-0123456789"


def settings(**env) -> Settings:
    return Settings.from_env(Env({"NOTIFY_DATABASE_URL": "sqlite://", **env}))


def test_the_default_body_is_to_text_reference():
    gateway = channels.parse_gateway("https://sms.example/send")
    body = json.loads(channels.gateway_body(gateway.body, "+6281234567890", "Halo", "d-1"))
    assert body == {"to": "+6281234567890", "text": "Halo", "reference": "d-1"}


def test_a_template_is_filled_json_safely_and_in_one_pass():
    gateway = channels.parse_gateway(
        "https://wa.example/v1/messages", AUTH,
        '{"messaging_product": "whatsapp", "recipient": "{to}", '
        '"message": {"body": "LAPOR: {text}"}, "tags": ["{reference}", 1]}')
    text = 'kata "kutip" {to}\nbaris } ]'
    raw = channels.gateway_body(gateway.body, "+6281234567890", text, "d-2")
    assert json.loads(raw) == {"messaging_product": "whatsapp", "recipient": "+6281234567890",
                               "message": {"body": f"LAPOR: {text}"}, "tags": ["d-2", 1]}


@pytest.mark.parametrize("template, says", [
    ("{to}", "not JSON"),
    ('["{to}", "{text}"]', "JSON object"),
    ('{"to": "{to}"}', "no {text}"),
])
def test_a_bad_template_stops_the_process_naming_the_variable(template, says):
    with pytest.raises(ConfigError) as stopped:
        settings(NOTIFY_SMS_GATEWAY_URL="https://sms.example/send",
                 NOTIFY_SMS_GATEWAY_AUTH=AUTH, NOTIFY_SMS_GATEWAY_TEMPLATE=template)
    assert "NOTIFY_SMS_GATEWAY" in str(stopped.value) and says in str(stopped.value)
    assert AUTH not in str(stopped.value)


def test_settings_read_both_gateways_and_never_show_the_header(tmp_path):
    secret = tmp_path / "wa-auth"
    secret.write_text(AUTH + "\n")
    found = settings(NOTIFY_SMS_GATEWAY_URL="https://sms.example/send",
                     NOTIFY_SMS_GATEWAY_AUTH=AUTH,
                     NOTIFY_WHATSAPP_GATEWAY_URL="https://wa.example/send",
                     NOTIFY_WHATSAPP_GATEWAY_AUTH_FILE=str(secret),
                     NOTIFY_SMS_MAX_PARTS="2")
    assert found.sms_gateway.authorization == AUTH
    assert found.whatsapp_gateway.authorization == AUTH
    assert found.sms_max_parts == 2
    assert AUTH not in repr(found) and "gw-token" not in repr(found)
    assert settings().sms_gateway is None and settings().whatsapp_gateway is None


@pytest.mark.parametrize("env, says", [
    ({"NOTIFY_SMS_GATEWAY_AUTH": AUTH}, "NOTIFY_SMS_GATEWAY_URL is not"),
    ({"NOTIFY_WHATSAPP_GATEWAY_URL": "ftp://wa.example"}, "http(s)"),
    ({"NOTIFY_SMS_MAX_PARTS": "0"}, "NOTIFY_SMS_MAX_PARTS"),
    ({"NOTIFY_GATEWAY_TIMEOUT": "0"}, "NOTIFY_GATEWAY_TIMEOUT"),
])
def test_bad_gateway_settings_say_what_to_fix(env, says):
    with pytest.raises(ConfigError) as stopped:
        settings(**env)
    assert says in str(stopped.value) and AUTH not in str(stopped.value)


@pytest.mark.parametrize("status, ok, permanent", [
    (200, True, False), (202, True, False),
    (400, False, True), (401, False, True), (404, False, True), (422, False, True),
    (408, False, False), (429, False, False), (500, False, False), (503, False, False),
    (302, False, False),
])
def test_gateway_answers_are_classed_like_the_contract(status, ok, permanent):
    def post(url, headers, body, timeout, limit=None):
        assert headers["Authorization"] == AUTH and headers["Content-Type"] == "application/json"
        return Result(200 <= status < 300, f"HTTP {status}", status=status)

    gateway = channels.parse_gateway("https://sms.example/send", AUTH)
    result = channels.send_gateway(gateway, b"{}", "d-1", 5.0, post=post)
    assert (result.ok, result.permanent, result.detail) == (ok, permanent, f"HTTP {status}")


def test_a_network_error_is_tried_again():
    gateway = channels.parse_gateway("https://sms.example/send")
    result = channels.send_gateway(gateway, b"{}", "d-1", 5.0,
                                   post=lambda *a, **k: Result(False, "timeout"))
    assert (result.ok, result.permanent) == (False, False)
