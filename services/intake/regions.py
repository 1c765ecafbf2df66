"""The official region list in intake: reference data from the same Kemendagri file routing
imports, so a report from a region that does not exist is refused at once, even while routing
is down. Before the list is first imported any well-formed code is accepted, so a fresh
install without the file still takes reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.infra.db import reading
from services.infra.regions import Region
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
    return len(new) + len(changed)


# Codes found in the list, remembered for KNOWN_SECONDS: nearly every report names one of a
# few hundred regencies, and asking the database each time was a tenth of a submission's
# cost. Only found codes are remembered, so a code added by a new import works at once; a
# code removed from the list is still taken for at most KNOWN_SECONDS.
KNOWN_SECONDS = 300.0
_KNOWN_LIMIT = 100_000           # more than the whole national list (91,599 codes)
_known: dict[tuple[object, str], float] = {}   # (database URL, code) -> remembered until
_LISTED = sa.select(
    sa.exists(sa.select(regions.c.code).where(regions.c.code == sa.bindparam("code"))),
    sa.exists(sa.select(regions.c.code)))


def problem(engine: Engine, code: str) -> str | None:
    """Why a well-formed region code cannot be taken, or None: it is in the official list,
    or no list was imported."""
    now = time.monotonic()
    key = (engine.url, code)      # each database's own list: a code found in one is not in all
    if _known.get(key, 0.0) > now:
        return None
    with reading(engine) as conn:
        found, imported = conn.execute(_LISTED, {"code": code}).one()
    if found:
        if len(_known) >= _KNOWN_LIMIT:
            _known.clear()
        _known[key] = now + KNOWN_SECONDS
    if found or not imported:
        return None
    return (f"no region with code {code} in the official list; send a Kemendagri code such "
            f"as {EXAMPLE}")


def count(engine: Engine) -> int | None:
    """How many regions intake holds (0: never imported, any well-formed code is accepted);
    None when the database does not answer."""
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
