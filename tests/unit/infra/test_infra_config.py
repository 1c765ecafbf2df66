"""Start-up configuration: an operator with a typo in a variable learns which one from the
single line the process prints before exiting."""

from __future__ import annotations

import pytest

from services.infra.config import PROJECT_ROOT, Env


def exit_message(call) -> str:
    with pytest.raises(SystemExit) as caught:
        call()
    # SystemExit with a string prints it to stderr and exits with status 1.
    assert isinstance(caught.value.code, str)
    return caught.value.code


@pytest.mark.parametrize("environ", [{}, {"ROUTING_ADDR": ""}])
def test_missing_required_variable_stops_with_its_name(environ):
    message = exit_message(lambda: Env(environ).str("ROUTING_ADDR"))
    assert "ROUTING_ADDR" in message
    assert "required" in message


def test_set_variables_and_defaults_are_returned():
    env = Env({"ROUTING_ADDR": "10.0.0.5:50051"})
    assert env.str("ROUTING_ADDR") == "10.0.0.5:50051"
    assert env.str("NOTIFY_MAIL_FROM", "lapor@contoh.go.id") == "lapor@contoh.go.id"
    assert env.int("INTAKE_PORT", 8080) == 8080
    assert env.float("NOTIFY_TIMEOUT", 2.5) == 2.5
    assert env.bool("NOTIFY_DRY_RUN", False) is False


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("INTAKE_PORT", "9090")
    assert Env().int("INTAKE_PORT", 8080) == 9090


@pytest.mark.parametrize("raw,expected", [("8080", 8080), (" 9000 ", 9000), ("", 1234)])
def test_integers(raw, expected):
    assert Env({"INTAKE_PORT": raw}).int("INTAKE_PORT", 1234) == expected


@pytest.mark.parametrize("raw", ["80a", "8080.5", "delapan", "0x1F90"])
def test_a_bad_integer_names_the_variable_and_the_value(raw):
    message = exit_message(lambda: Env({"INTAKE_PORT": raw}).int("INTAKE_PORT", 8080))
    assert "INTAKE_PORT" in message
    assert raw in message


def test_a_bad_number_names_the_variable():
    message = exit_message(lambda: Env({"SLA_SCALE": "cepat"}).float("SLA_SCALE", 1.0))
    assert "SLA_SCALE" in message and "cepat" in message


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "Yes", "on", " true "])
def test_true_values(raw):
    assert Env({"FLAG": raw}).bool("FLAG", False) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "OFF"])
def test_false_values(raw):
    assert Env({"FLAG": raw}).bool("FLAG", True) is False


@pytest.mark.parametrize("raw", ["maybe", "ya", "2", "t"])
def test_a_bad_boolean_names_the_variable_and_the_value(raw):
    message = exit_message(lambda: Env({"NOTIFY_DRY_RUN": raw}).bool("NOTIFY_DRY_RUN", False))
    assert "NOTIFY_DRY_RUN" in message
    assert raw in message


def test_database_defaults_to_a_sqlite_file_per_service_under_var():
    url = Env({}).database_url("ROUTING_DATABASE_URL", "routing")
    assert url == f"sqlite:///{PROJECT_ROOT / 'var' / 'routing.db'}"
    other = Env({}).database_url("NOTIFY_DATABASE_URL", "notify")
    assert other != url


def test_database_url_from_the_environment_wins():
    env = Env({"ROUTING_DATABASE_URL": "postgresql://lapor@db/routing"})
    assert env.database_url("ROUTING_DATABASE_URL", "routing") == "postgresql://lapor@db/routing"


def test_broker_default_is_the_documented_one():
    # DESIGN §8: LAPOR_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F
    assert Env({}).amqp_url() == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert Env({"LAPOR_AMQP_URL": "amqp://u:p@mq:5672/lapor"}).amqp_url() == \
        "amqp://u:p@mq:5672/lapor"


@pytest.mark.parametrize("raw", ["0", "-1", "-0.5"])
def test_a_duration_must_be_above_zero(raw):
    message = exit_message(lambda: Env({"INTAKE_ROUTING_ACTION_TIMEOUT": raw}).seconds(
        "INTAKE_ROUTING_ACTION_TIMEOUT", 5.0))
    assert "INTAKE_ROUTING_ACTION_TIMEOUT must be a number of seconds above 0" in message


def test_intake_refuses_a_routing_deadline_of_zero():
    from services.intake.app import settings_from_env

    message = exit_message(lambda: settings_from_env(Env({"INTAKE_ROUTING_TIMEOUT": "0"})))
    assert "INTAKE_ROUTING_TIMEOUT" in message
    assert settings_from_env(Env({}))["ROUTING_ACTION_TIMEOUT"] == 5.0


@pytest.mark.parametrize("raw, expected", [("", 16), ("1", 1), ("64", 64), ("256", 256)])
def test_the_consumer_batch_defaults_to_16_and_takes_1_to_256(raw, expected):
    assert Env({"LAPOR_CONSUMER_BATCH": raw}).consumer_batch() == expected


@pytest.mark.parametrize("raw", ["0", "-4", "257", "many"])
def test_a_consumer_batch_outside_1_to_256_stops_the_process_naming_it(raw):
    message = exit_message(lambda: Env({"LAPOR_CONSUMER_BATCH": raw}).consumer_batch())
    assert "LAPOR_CONSUMER_BATCH" in message and raw in message


@pytest.mark.parametrize("raw, expected", [("", 0.03), ("0", 0.0), ("0.05", 0.05), ("1", 1.0)])
def test_consumers_gather_for_30_ms_unless_set(raw, expected):
    assert Env({"LAPOR_CONSUMER_GATHER": raw}).consumer_gather() == expected


@pytest.mark.parametrize("raw", ["-0.1", "2", "soon"])
def test_a_consumer_gather_outside_0_to_1_s_stops_the_process_naming_it(raw):
    message = exit_message(lambda: Env({"LAPOR_CONSUMER_GATHER": raw}).consumer_gather())
    assert "LAPOR_CONSUMER_GATHER" in message and raw in message


def test_intakes_read_model_gathers_for_its_own_window_else_the_consumers_one():
    from services.intake.app import settings_from_env

    def gather(**env):
        return settings_from_env(Env(env))["CONSUMER_GATHER"]
    assert gather() == 0.2
    assert gather(LAPOR_CONSUMER_GATHER="0.05") == 0.05
    assert gather(LAPOR_CONSUMER_GATHER="0.05", INTAKE_CONSUMER_GATHER="0") == 0.0
    message = exit_message(lambda: gather(INTAKE_CONSUMER_GATHER="3"))
    assert "INTAKE_CONSUMER_GATHER" in message and "3" in message


def test_intakes_relay_gathers_for_50_ms_unless_set():
    from services.intake.app import settings_from_env

    assert settings_from_env(Env({}))["OUTBOX_GATHER"] == 0.05
    assert settings_from_env(Env({"INTAKE_OUTBOX_GATHER": "0"}))["OUTBOX_GATHER"] == 0.0


@pytest.mark.parametrize("raw", ["-0.01", "6", "soon"])
def test_a_bad_intake_gather_window_stops_the_process_naming_it(raw):
    from services.intake.app import settings_from_env

    message = exit_message(lambda: settings_from_env(Env({"INTAKE_OUTBOX_GATHER": raw})))
    assert "INTAKE_OUTBOX_GATHER" in message


def test_every_service_packs_events_unless_told_not_to_for_a_rolling_upgrade():
    from services.intake.app import settings_from_env
    from services.notify.app import Settings as NotifySettings
    from services.routing.app import Settings as RoutingSettings

    off = Env({"LAPOR_EVENT_BATCHES": "false"})
    assert Env({}).event_batches() is True and off.event_batches() is False
    assert settings_from_env(Env({}))["EVENT_BATCHES"] is True
    assert settings_from_env(off)["EVENT_BATCHES"] is False
    assert RoutingSettings.from_env(off).event_batches is False
    assert NotifySettings.from_env(off).event_batches is False
    message = exit_message(lambda: Env({"LAPOR_EVENT_BATCHES": "sometimes"}).event_batches())
    assert "LAPOR_EVENT_BATCHES" in message and "sometimes" in message
