"""A bench given a setting it cannot use stops at once and says which setting and what to give."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.settings import SettingError, env_float, env_int, env_list, median_round

ROOT = Path(__file__).resolve().parents[2]


def test_unset_or_empty_settings_take_the_default(monkeypatch):
    monkeypatch.delenv("BENCH_X", raising=False)
    assert env_int("BENCH_X", 3, minimum=1) == 3
    monkeypatch.setenv("BENCH_X", " ")
    assert env_float("BENCH_X", 8) == 8.0
    assert env_list("BENCH_X", "sqlite,postgresql", ("sqlite", "postgresql")) == [
        "sqlite", "postgresql"]


def test_given_settings_are_read(monkeypatch):
    monkeypatch.setenv("BENCH_X", " 5 ")
    assert env_int("BENCH_X", 3) == 5
    monkeypatch.setenv("BENCH_X", "0.5")
    assert env_float("BENCH_X", 8) == 0.5
    monkeypatch.setenv("BENCH_X", "postgresql")
    assert env_list("BENCH_X", "sqlite", ("sqlite", "postgresql")) == ["postgresql"]


@pytest.mark.parametrize("reader, raw, says", [
    (lambda: env_int("BENCH_X", 3, minimum=1), "three", "give a whole number (default 3)"),
    (lambda: env_int("BENCH_X", 3, minimum=1), "1.5", "give a whole number"),
    (lambda: env_int("BENCH_X", 3, minimum=1), "0", "of at least 1"),
    (lambda: env_float("BENCH_X", 8, minimum=1), "8s", "give a number (default 8)"),
    (lambda: env_float("BENCH_X", 8, minimum=1), "nan", "give a number"),
    (lambda: env_float("BENCH_X", 8, minimum=1), "0.2", "of at least 1"),
    (lambda: env_list("BENCH_X", "sqlite", ("sqlite", "postgresql")), "sqlite,mysql",
     "one or more of sqlite, postgresql"),
    (lambda: env_list("BENCH_X", "sqlite", ("sqlite", "postgresql")), ",",
     "one or more of sqlite, postgresql"),
])
def test_a_setting_the_bench_cannot_use_is_named_with_what_to_give(monkeypatch, reader, raw,
                                                                    says):
    monkeypatch.setenv("BENCH_X", raw)
    with pytest.raises(SettingError) as stopped:
        reader()
    assert str(stopped.value).startswith("BENCH_X=")
    assert says in str(stopped.value)


def test_a_bench_with_a_bad_setting_stops_before_it_starts_anything():
    done = subprocess.run([sys.executable, "-m", "bench.intake_accept"], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "BENCH_ACCEPT_ROUNDS": "x"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == "BENCH_ACCEPT_ROUNDS='x': give a whole number (default 3)"
    assert done.stdout == ""


def test_the_median_round_is_the_middle_one_by_its_ratio():
    rounds = [(10, 30), (10, 20), (10, 40)]
    assert median_round(rounds, lambda r: r[0] / r[1]) == (10, 30)
    assert median_round(rounds[:2], lambda r: r[0] / r[1]) == (10, 20)  # the upper of two
