"""Log lines an operator greps and ships: one JSON object per line, carrying the tracking id
and event id of the work in hand."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from services.infra import logs

TRACKING_ID = "LPR-7K2-M9Q-4TX"
EVENT_ID = "0d7f5e0c-6a43-4d0e-9b5e-3f1c2a7b8d90"


class Captured:
    """A logger writing through the JSON formatter into a buffer."""

    def __init__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logs.JsonFormatter("intake"))
        self.log = logging.getLogger(f"lapor.test.{uuid.uuid4().hex}")
        self.log.addHandler(self.handler)
        self.log.setLevel(logging.DEBUG)
        self.log.propagate = False

    def raw(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        text = self.raw()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def capture():
    captured = Captured()
    yield captured.log, captured
    captured.log.removeHandler(captured.handler)


def test_a_line_is_one_json_object_with_the_bound_ids(capture):
    log, out = capture
    with logs.bound(tracking_id=TRACKING_ID, event_id=EVENT_ID):
        log.info("ticket opened: %s to %s", "dispatched", "PUPR-13.03")
    [line] = out.lines()
    assert line["msg"] == "ticket opened: dispatched to PUPR-13.03"
    assert line["tracking_id"] == TRACKING_ID
    assert line["event_id"] == EVENT_ID
    assert line["service"] == "intake"
    assert line["level"] == "info"
    assert line["ts"].endswith("+00:00")


def test_ids_are_present_but_null_outside_any_work(capture):
    log, out = capture
    log.warning("outbox backlog growing")
    [line] = out.lines()
    assert line["tracking_id"] is None and line["event_id"] is None
    assert line["level"] == "warning"


def test_nested_bound_adds_and_restores(capture):
    log, out = capture
    with logs.bound(tracking_id=TRACKING_ID):
        log.info("outer")
        with logs.bound(event_id=EVENT_ID):
            log.info("inner")
            with logs.bound(tracking_id="LPR-AAA-BBB-CCC"):
                log.info("innermost")
            log.info("inner again")
        log.info("outer again")
    log.info("outside")
    seen = [(line["msg"], line["tracking_id"], line["event_id"]) for line in out.lines()]
    assert seen == [
        ("outer", TRACKING_ID, None),
        ("inner", TRACKING_ID, EVENT_ID),
        ("innermost", "LPR-AAA-BBB-CCC", EVENT_ID),
        ("inner again", TRACKING_ID, EVENT_ID),
        ("outer again", TRACKING_ID, None),
        ("outside", None, None),
    ]


def test_bound_restores_after_an_exception(capture):
    log, out = capture
    with pytest.raises(RuntimeError), logs.bound(tracking_id=TRACKING_ID):
        raise RuntimeError("handler failed")
    log.info("next message")
    assert out.lines()[0]["tracking_id"] is None


def test_empty_values_do_not_erase_bound_ids(capture):
    log, out = capture
    with logs.bound(tracking_id=TRACKING_ID), logs.bound(tracking_id=None, event_id=""):
        log.info("inside")
    assert out.lines()[0]["tracking_id"] == TRACKING_ID


def test_multi_line_messages_and_tracebacks_stay_on_one_line(capture):
    log, out = capture
    try:
        raise ValueError("baris pertama\nbaris kedua")
    except ValueError:
        log.exception("gagal memproses\nlaporan")
    [line] = out.lines()
    assert line["msg"] == "gagal memproses\nlaporan"
    assert "ValueError: baris pertama" in line["exc"]
    assert line["level"] == "error"


def test_extra_fields_are_emitted(capture):
    log, out = capture
    log.info("report accepted", extra={"channel": "sms", "kind": "PENGADUAN",
                                        "at": object()})
    [line] = out.lines()
    assert line["channel"] == "sms" and line["kind"] == "PENGADUAN"
    assert isinstance(line["at"], str)  # unserialisable values do not break the line


def test_indonesian_text_is_readable_in_the_line(capture):
    log, out = capture
    log.info("Laporan diterima — terima kasih")
    assert "Laporan diterima — terima kasih" in out.raw()  # not \u2014 escapes


def test_setup_sends_all_logging_to_stdout_as_json(capsys):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("pika").level,
             logging.getLogger("waitress").level)
    try:
        logs.setup("routing", "info")
        logs.setup("routing", "info")  # twice: still one line per record
        with logs.bound(event_id=EVENT_ID):
            logging.getLogger("services.routing.workflow").info("ticket opened")
        logging.getLogger("pika.connection").info("connecting to 10.0.0.7")
        logging.getLogger("services.routing.workflow").debug("noise")
    finally:
        root.handlers[:], level, pika_level, waitress_level = saved
        root.setLevel(level)
        logging.getLogger("pika").setLevel(pika_level)
        logging.getLogger("waitress").setLevel(waitress_level)
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["service"], line["msg"], line["event_id"]) for line in lines] == [
        ("routing", "ticket opened", EVENT_ID)]
