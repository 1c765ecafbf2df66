"""Notify's settings: checked at start, named in the error, never quoted."""

import pytest

from services.infra.config import ConfigError, Env
from services.notify.app import Settings


def settings(**env) -> Settings:
    return Settings.from_env(Env({"NOTIFY_DATABASE_URL": "sqlite://", **env}))


def test_unset_or_empty_means_no_email_to_the_national_admin():
    assert settings().national_admin_emails == ()
    assert settings(NOTIFY_NATIONAL_ADMIN_EMAILS="").national_admin_emails == ()


def test_addresses_separated_by_commas():
    found = settings(NOTIFY_NATIONAL_ADMIN_EMAILS="admin@lapor.go.id, piket@lapor.go.id")
    assert found.national_admin_emails == ("admin@lapor.go.id", "piket@lapor.go.id")


@pytest.mark.parametrize("raw, says", [
    ("admin@lapor.go.id;piket@lapor.go.id", "entry 1 is not an email address"),
    ("admin@lapor.go.id,", "entry 2 is empty"),
    ("admin@lapor.go.id, admin", "entry 2 is not an email address"),
])
def test_a_bad_list_stops_the_process_naming_the_variable(raw, says):
    with pytest.raises(ConfigError) as stopped:
        settings(NOTIFY_NATIONAL_ADMIN_EMAILS=raw)
    message = str(stopped.value)
    assert "NOTIFY_NATIONAL_ADMIN_EMAILS" in message and says in message
    assert "piket@lapor.go.id" not in message


@pytest.mark.parametrize("env, names", [
    ({"NOTIFY_ATTACHMENT_LINK_SECONDS": "0"}, "NOTIFY_ATTACHMENT_LINK_SECONDS"),
    ({"LAPOR_ATTACHMENT_LINK_SECRET": "short"}, "LAPOR_ATTACHMENT_LINK_SECRET"),
])
def test_a_bad_attachment_link_setting_stops_notify_at_start(env, names):
    # Not on the first dispatch webhook, where it could only drop the link.
    with pytest.raises(ConfigError) as stopped:
        settings(**env)
    assert names in str(stopped.value)
    assert "short" not in str(stopped.value), "a secret is never quoted"


def test_the_outbox_gather_window_is_a_tenth_of_a_second_unless_set():
    assert settings().outbox_gather == 0.1
    assert settings(NOTIFY_OUTBOX_GATHER="0").outbox_gather == 0.0  # send at once


@pytest.mark.parametrize("raw", ["-1", "60", "soon"])
def test_a_bad_outbox_gather_window_stops_notify_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="NOTIFY_OUTBOX_GATHER"):
        settings(NOTIFY_OUTBOX_GATHER=raw)
