"""Autovacuum's work, done by the bench on a PostgreSQL server that runs without it.

Production servers vacuum on their own (CloudNativePG's default, every packaged PostgreSQL);
the project's bench machine runs PostgreSQL with `autovacuum = off`. The outboxes leave a
dead row version for every event and notify's deliveries two for every send, so without
vacuum the pipeline bench's search left 28,000–165,000 dead versions in each service's
tables and its half-rate run measured index scans through them (p99 4.5–8.6 s at 80 reports/s,
against 245–391 ms on fresh databases or with autovacuum on: docs/performance.md,
7 December 2026, 21–24 h, and 8 December).

`stand_in(urls)` does, while the block runs and only when the server's autovacuum is off,
what autovacuum's launcher does with the server's own settings: every
`autovacuum_naptime` (1 min by default) it visits each of the given databases and VACUUMs
the tables whose dead row versions exceed `autovacuum_vacuum_threshold` +
`autovacuum_vacuum_scale_factor` × live rows (50 + 20% by default), ANALYZEs those whose
changes since the last ANALYZE exceed the analyse threshold (50 + 10%); the services set no
per-table autovacuum options, so the server's settings are the ones that apply. Its CPU is in
PostgreSQL's backends, as autovacuum's workers' would be. It pauses as autovacuum's
workers do (`autovacuum_vacuum_cost_delay`, 2 ms each `vacuum_cost_limit` units of work)
and leaves out what a run of minutes never meets (wraparound, inserts-only vacuums). With
the server's autovacuum on it does nothing; BENCH_VACUUM=0 turns it off, to measure the
server as it is.
"""

from __future__ import annotations

import contextlib
import os
import threading

ENABLED = os.environ.get("BENCH_VACUUM", "1") not in ("", "0")
_SETTINGS = ("autovacuum", "autovacuum_naptime", "autovacuum_vacuum_threshold",
             "autovacuum_vacuum_scale_factor", "autovacuum_analyze_threshold",
             "autovacuum_analyze_scale_factor", "autovacuum_vacuum_cost_delay",
             "autovacuum_vacuum_cost_limit", "vacuum_cost_limit")


class StandIn:
    """The thread doing autovacuum's rounds, and what it did."""

    def __init__(self, urls: list[str], settings: dict[str, str]):
        self.urls = urls
        self.autovacuum = settings["autovacuum"]
        self.active = ENABLED and self.autovacuum == "off"
        self.naptime = float(settings["autovacuum_naptime"])  # seconds
        self.vacuum_at = (int(settings["autovacuum_vacuum_threshold"]),
                          float(settings["autovacuum_vacuum_scale_factor"]))
        self.analyze_at = (int(settings["autovacuum_analyze_threshold"]),
                           float(settings["autovacuum_analyze_scale_factor"]))
        # Autovacuum's workers pause as its cost settings say (2 ms each 200 units by
        # default); a manual VACUUM does not unless told, so the stand-in's sessions are.
        limit = int(settings["autovacuum_vacuum_cost_limit"])
        self.cost = (float(settings["autovacuum_vacuum_cost_delay"]),
                     limit if limit > 0 else int(settings["vacuum_cost_limit"]))
        self.vacuums = self.analyses = self.rounds = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-vacuum", daemon=True)

    def start(self) -> StandIn:
        if self.active:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.naptime):
            self.rounds += 1
            for url in self.urls:
                if self._stop.is_set():
                    return
                try:
                    self._visit(url)
                except Exception as exc:  # noqa: BLE001 - said at the end, the run goes on
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def _visit(self, url: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"SET vacuum_cost_delay = '{self.cost[0]:g}ms'")
            conn.execute(f"SET vacuum_cost_limit = {self.cost[1]:d}")
            tables = conn.execute(
                "SELECT schemaname, relname, n_dead_tup, n_live_tup, n_mod_since_analyze "
                "FROM pg_stat_user_tables").fetchall()
            for schema, table, dead, live, changed in tables:
                vacuum = dead > self.vacuum_at[0] + self.vacuum_at[1] * live
                analyze = changed > self.analyze_at[0] + self.analyze_at[1] * live
                if not (vacuum or analyze):
                    continue
                command = ("VACUUM (ANALYZE) {}" if vacuum and analyze
                           else "VACUUM {}" if vacuum else "ANALYZE {}")
                conn.execute(sql.SQL(command).format(sql.Identifier(schema, table)))
                self.vacuums += vacuum
                self.analyses += analyze

    def summary(self) -> str:
        if not self.active:
            return (f"the server's autovacuum is {self.autovacuum}"
                    + ("" if self.autovacuum == "on" else "; the bench did not vacuum in its "
                       "place (BENCH_VACUUM=0)"))
        errors = f", {len(self.errors)} failed ({self.errors[-1]})" if self.errors else ""
        return (f"the server's autovacuum is off: the bench vacuumed in its place, every "
                f"{self.naptime:g} s, tables past {self.vacuum_at[0]} + "
                f"{self.vacuum_at[1]:.0%} of their rows dead, pausing {self.cost[0]:g} ms "
                f"each {self.cost[1]} cost units ({self.rounds} rounds: "
                f"{self.vacuums} VACUUMs, {self.analyses} ANALYZEs{errors})")


def server_settings(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                            [list(_SETTINGS)]).fetchall()
    return dict(rows)


@contextlib.contextmanager
def stand_in(urls: list[str]):
    """Autovacuum's rounds over `urls` (PostgreSQL databases of one server) while the block
    runs, when that server does not run them itself; yields the StandIn."""
    helper = StandIn(urls, server_settings(urls[0])).start()
    try:
        yield helper
    finally:
        helper.stop()
