"""The supervised loop every background job runs in: nothing its body raises kills it, its
failures back off and recover, and a dead or wedged loop shows as unhealthy."""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import REGISTRY

from services.infra.lifecycle import Budget, SupervisedLoop, loops_healthy
from tests.integration.helpers import wait_for


class Boom(Exception):
    """Not an error type any loop expects (pika's connector timeouts are plain Exceptions)."""


def test_a_body_that_raises_anything_is_retried_with_backoff_and_recovers(caplog):
    calls: list[float] = []

    def body(loop):
        calls.append(time.monotonic())
        if len(calls) <= 3:
            raise Boom("the broker accepted TCP and never answered")
        loop.wait(0.05)

    caplog.set_level(logging.WARNING, logger="services.infra.lifecycle")
    loop = SupervisedLoop("test-recovers", body, backoff_base=0.05, backoff_cap=1.0).start()
    try:
        wait_for(lambda: len(calls) >= 5, 5, what="the loop to run again after failures")
        status = loop.status()
        assert status.alive and not status.stalled and status.healthy
        assert status.failures == 0 and status.last_error == "", "a good iteration resets"
        gaps = [b - a for a, b in zip(calls, calls[1:4], strict=False)]
        assert all(gap >= 0.02 for gap in gaps), f"each failure waited its backoff: {gaps}"
        assert gaps[1] > gaps[0] * 0.9 or gaps[2] > gaps[0], "the backoff grows"
        failures = [r for r in caplog.records if "failed" in r.getMessage()]
        assert len(failures) == 3, "one line per failure"
        assert "Boom: the broker accepted TCP" in failures[0].getMessage()
        assert failures[0].exc_info and not failures[1].exc_info, (
            "the traceback once per streak, not once per retry")
    finally:
        assert loop.stop(2)


def test_a_failing_loop_reports_its_streak_and_stays_alive():
    def body(loop):
        raise Boom("still down")

    loop = SupervisedLoop("test-streak", body, backoff_base=0.01, backoff_cap=0.02).start()
    try:
        wait_for(lambda: loop.status().failures >= 5, 5, what="several failures")
        status = loop.status()
        assert status.alive, "failing is not dying"
        assert status.last_error == "Boom: still down"
        assert REGISTRY.get_sample_value("lapor_loop_failures_total",
                                         {"loop": "test-streak"}) >= 5
    finally:
        loop.stop(2)


def test_a_wedged_body_makes_the_loop_unhealthy():
    release = threading.Event()

    def body(loop):
        release.wait(10)  # stuck in a call that never returns, beating no more

    loop = SupervisedLoop("test-wedged", body, stall_after=0.2).start()
    check = loops_healthy([loop])
    try:
        wait_for(lambda: loop.status().stalled, 5, what="the loop to count as stalled")
        assert not check()
        assert REGISTRY.get_sample_value("lapor_loop_healthy", {"loop": "test-wedged"}) == 0
    finally:
        release.set()
        loop.stop(2)


def test_a_busy_body_that_beats_is_not_wedged():
    def body(loop):
        for _ in range(20):
            time.sleep(0.02)
            loop.beat()
        loop.wait(0.05)

    loop = SupervisedLoop("test-busy", body, stall_after=0.1).start()
    try:
        for _ in range(10):
            time.sleep(0.05)
            assert loop.healthy()
        assert REGISTRY.get_sample_value("lapor_loop_healthy", {"loop": "test-busy"}) == 1
    finally:
        loop.stop(2)


def test_extra_stall_signs_count_too():
    wedged = threading.Event()
    loop = SupervisedLoop("test-extra", lambda lp: lp.wait(0.05),
                          extra_stall=wedged.is_set).start()
    try:
        assert loop.healthy()
        wedged.set()
        assert not loop.healthy()
    finally:
        loop.stop(2)


def test_a_dead_thread_is_unhealthy_and_stop_wakes_a_waiting_body():
    entered = threading.Event()

    def body(loop):
        entered.set()
        loop.wait(60)

    loop = SupervisedLoop("test-stop", body).start()
    assert entered.wait(2)
    started = time.monotonic()
    assert loop.stop(5)
    assert time.monotonic() - started < 1, "a waiting body is woken by stop()"
    assert not loop.status().alive and not loop.healthy()


def test_on_exit_runs_on_the_loops_own_thread():
    threads: list[threading.Thread] = []
    loop = SupervisedLoop("test-exit", lambda lp: lp.wait(1),
                          on_exit=lambda lp: threads.append(threading.current_thread()))
    loop.start()
    loop.stop(2)
    assert threads and threads[0] is not threading.current_thread()
    assert threads[0].name == "test-exit"


def test_a_budget_shares_what_is_left():
    budget = Budget(1.0)
    assert 0.9 < budget.left() <= 1.0
    assert 0.4 < budget.share(0.5) <= 0.5
    time.sleep(0.05)
    assert budget.left() < 0.96
    assert Budget(0.0).left(floor=0.1) == 0.1


def test_a_loop_waiting_longer_than_its_stall_limit_is_idle_not_wedged():
    """A retention job that runs every ten minutes waits most of the time."""
    loop = SupervisedLoop("test-idle", lambda lp: lp.wait(60), stall_after=0.1).start()
    try:
        time.sleep(0.4)
        assert loop.healthy()
        assert not loop.status().stalled
    finally:
        loop.stop(2)
