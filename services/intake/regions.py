"""The official region list in intake: reference data from the same Kemendagri file routing
imports, so a report from a region that does not exist is refused at once, even while routing
is down. Before the list is first imported any well-formed code is accepted, so a fresh
install without the file still takes reports."""

from __future__ import annotations

import bisect
import threading
import time
from array import array
from collections.abc import Callable, Iterable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.infra.db import reading
from services.infra.lifecycle import SupervisedLoop
from services.infra.regions import Region, valid_region_code
from services.intake.storage import regions

EXAMPLE = "13.03 (Kabupaten Sijunjung)"
T = TypeVar("T")


def import_regions(conn: Connection, rows: Iterable[Region], batch: int = 5000) -> int:
    """Inserts regions, or renames the ones that changed; returns how many rows were
    written (0 when the same list is imported again)."""
    existing = {r.code: (r.name, r.level) for r in conn.execute(
        sa.select(regions.c.code, regions.c.name, regions.c.level))}
    new, changed = [], []
    for region in rows:
        have = existing.get(region.code)
        values = {"code": region.code, "name": region.name, "level": region.level}
        if have is None:
            new.append(values)
        elif have != (region.name, region.level):
            changed.append({f"b_{k}": v for k, v in values.items()})
        existing[region.code] = (region.name, region.level)
    for i in range(0, len(new), batch):
        conn.execute(regions.insert(), new[i:i + batch])
    if changed:
        conn.execute(regions.update().where(regions.c.code == sa.bindparam("b_code"))
                     .values(name=sa.bindparam("b_name"), level=sa.bindparam("b_level")),
                     changed)
    forget(conn.engine)
    return len(new) + len(changed)


# The whole list in memory, per database: nearly every submission names a listed code, and
# asking the database each time was a tenth of a submission's cost (a third before a list
# was imported, when nothing was remembered at all). Codes are kept as sorted integers,
# "1" + their digits so that length and leading zeros survive: 91,599 codes in 0.7 MB. The
# list is read again after KNOWN_SECONDS, so a code removed by a new import is still taken
# for at most that long; a code the copy lacks is looked up in the database, so one added by
# an import is taken at once. An empty list (nothing imported: every well-formed code is
# taken) is kept only EMPTY_SECONDS, so a first import is in force within that.
KNOWN_SECONDS = 300.0
EMPTY_SECONDS = 2.0
_ALL_CODES = sa.select(regions.c.code)
_LISTED = sa.select(
    sa.exists(sa.select(regions.c.code).where(regions.c.code == sa.bindparam("code"))),
    sa.exists(sa.select(regions.c.code)))
_lists: dict[object, tuple[float, array]] = {}  # database URL -> (kept until, sorted codes)
_lists_lock = threading.Lock()


def _number(code: str) -> int:
    return int("1" + code.replace(".", ""))


def _listed(engine: Engine) -> array | None:
    """The database's codes as sorted numbers, read again once they are older than their
    time; None while another thread reads them for the first time. With a Keeper running
    the copy is read again before it gets old, so no submission pays for the read."""
    current = _current(engine)
    if current is not None:
        return current
    cached = _lists.get(engine.url)
    # Whoever finds the copy out of date reads it again; the others go on with the old one.
    if not _lists_lock.acquire(blocking=False):
        return cached[1] if cached is not None else None
    try:
        return _read(engine)
    finally:
        _lists_lock.release()


def _current(engine: Engine) -> array | None:
    """This process's copy of the database's codes while it is in time, else None."""
    cached = _lists.get(engine.url)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    return None


def _read(engine: Engine) -> array:
    numbers = []
    with reading(engine) as conn:
        for code in conn.execution_options(yield_per=10_000).execute(_ALL_CODES).scalars():
            if valid_region_code(code):
                numbers.append(_number(code))
    numbers.sort()
    codes = array("q", numbers)
    _lists[engine.url] = (time.monotonic() + (KNOWN_SECONDS if codes else EMPTY_SECONDS),
                          codes)
    return codes


class Keeper:
    """Reads the region list again in the background, at half its time (every 150 s, every
    second while it is empty), so the copy never gets old on a submission's path: the read
    of 91,599 codes fell on one submission every 5 minutes. A supervised loop: liveness
    fails if it dies or hangs; a failed read is retried with backoff while the old copy
    serves (and a submission finding it old still reads it itself)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.loop = SupervisedLoop("intake-regions", self._iteration, backoff_base=1.0,
                                   backoff_cap=60.0, stall_after=KNOWN_SECONDS)

    def _iteration(self, loop: SupervisedLoop) -> None:
        with _lists_lock:
            codes = _read(self.engine)
        loop.wait(KNOWN_SECONDS / 2 if codes else EMPTY_SECONDS / 2)

    def start(self) -> Keeper:
        self.loop.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        return self.loop.stop(timeout)


def problem(engine: Engine, code: str) -> str | None:
    """Why a well-formed region code cannot be taken, or None: it is in the official list,
    or no list was imported."""
    codes = _listed(engine)
    if codes is not None:
        if not codes:
            return None
        number = _number(code)
        at = bisect.bisect_left(codes, number)
        if at < len(codes) and codes[at] == number:
            return None
    # Not in the copy (or no copy yet): the database says, and an import since then counts.
    with reading(engine) as conn:
        found, imported = conn.execute(_LISTED, {"code": code}).one()
    if found or not imported:
        return None
    return (f"no region with code {code} in the official list; send a Kemendagri code such "
            f"as {EXAMPLE}")


def forget(engine: Engine) -> None:
    """Drops this process's copy of the list (after an import in this process)."""
    _lists.pop(engine.url, None)


def count(engine: Engine) -> int | None:
    """How many regions intake holds (0: never imported, any well-formed code is accepted);
    None when the database does not answer. From the copy while it is current (readiness
    asks every few seconds; counting 91,599 rows each time is work for nothing)."""
    current = _current(engine)
    if current is not None:
        return len(current)
    try:
        with reading(engine) as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(regions)).scalar()
    except sa.exc.SQLAlchemyError:
        return None


# Matchers over the list's names (the SMS door's place names in a text, Open311's geocoded
# county), each built from the provinces and regencies once per database and rebuilt after
# MATCHER_SECONDS, so a new import is seen within that time.
MATCHER_SECONDS = 300.0
_NAMED = sa.select(regions.c.code, regions.c.name, regions.c.level).where(
    regions.c.level.in_(("provinsi", "kabupaten_kota")))
_matchers: dict[tuple[object, Callable], tuple[float, object]] = {}
_matchers_lock = threading.Lock()


def matcher(engine: Engine, build: Callable[[list], T], *, empty_seconds: float = 0.0) -> T:
    """`build(rows)` over the provinces and regencies (rows of code, name, level), kept per
    database and `build` for MATCHER_SECONDS; built from an empty list (nothing imported
    yet: the import may be under way) it is kept only `empty_seconds`."""
    now = time.monotonic()
    key = (engine.url, build)
    with _matchers_lock:
        cached = _matchers.get(key)
        if cached and cached[0] > now:
            return cached[1]
    with reading(engine) as conn:
        rows = conn.execute(_NAMED).all()
    built = build(rows)
    seconds = MATCHER_SECONDS if rows else empty_seconds
    if seconds > 0:
        with _matchers_lock:
            _matchers[key] = (now + seconds, built)
    return built
