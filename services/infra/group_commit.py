"""Group commit: the inserts of writers that arrive while another group commits, written
together in the next transaction.

Each writer (a request thread with its rows) calls `write(parts)`. The first to find no
group committing leads: it takes the writers waiting by then (itself first, at most
`most`), writes all their rows in one transaction (db.insert_together, the rows of one
table in one statement) and commits, then hands the lead to the first writer that came
in meanwhile, which does the same for those that wait with it. Nobody waits for a
timer: a writer alone commits at once, as it would without this, and under load a
group is the writers that arrived during the previous group's commit. Every writer is
answered only after the transaction that holds its rows has committed, so an answer
means what it meant before: the rows are stored.

One transaction for several writers' rows saves, for each writer after the first, its
connection's checkout, BEGIN and COMMIT (on SQLite, also its turn at the file's write
lock and the WAL frames of pages the others' rows share; on PostgreSQL, its round trips
and its own flush of the WAL at commit), and the statement overhead of its rows.

intake uses it on SQLite; on PostgreSQL a submission is one statement that commits by itself
and groups measured no gain (decision 88).

A group that fails (a reused Idempotency-Key, a tracking id drawn twice, the database
refusing) commits nothing: each of its writers is told so and writes alone, meeting its
own outcome. A writer alone in its group gets its failure raised as it happened.
"""

from __future__ import annotations

import collections
import logging
import threading
import weakref

from prometheus_client import Histogram
from sqlalchemy.engine import Engine

from services.infra import db

log = logging.getLogger(__name__)

# A group's size cap: enough for every request thread of a process to join one group.
MOST = 16

_LEAD = object()

GROUP_SIZE = Histogram("lapor_commit_group_size",
                       "Writers whose rows one group commit wrote in one transaction",
                       buckets=(1, 2, 4, 8, 16))


class _Writer:
    __slots__ = ("parts", "woken", "outcome")

    def __init__(self, parts: list[tuple[db.Insert, list[dict]]]):
        self.parts = parts
        self.woken = threading.Event()
        self.outcome: object = None  # True (committed), False (write alone) or _LEAD


class GroupCommit:
    """Group commit of db.insert_together parts on one engine (see the module's doc)."""

    def __init__(self, engine: Engine, most: int = MOST):
        self.engine, self.most = engine, most
        self._lock = threading.Lock()
        self._waiting: collections.deque[_Writer] = collections.deque()
        self._leading = False

    def waiting(self) -> int:
        """Writers waiting for the group being committed to finish."""
        with self._lock:
            return len(self._waiting)

    def write(self, parts: list[tuple[db.Insert, dict | list[dict]]]) -> bool:
        """Writes `parts` (as db.insert_together takes them) in a committed transaction,
        alone or with other writers' parts; True once committed. False when it was in a
        group that failed: nothing of it is written, and the caller writes it alone (in
        its own transaction) to meet its own outcome. Alone in its group, a failure is
        raised as db.insert_together raised it."""
        writer = _Writer([(insert, [rows] if isinstance(rows, dict) else rows)
                          for insert, rows in parts])
        with self._lock:
            if self._leading:
                self._waiting.append(writer)
            else:
                self._leading = True
                writer.outcome = _LEAD
        if writer.outcome is not _LEAD:
            writer.woken.wait()
            if writer.outcome is not _LEAD:
                return writer.outcome
        return self._lead(writer)

    def _lead(self, writer: _Writer) -> bool:
        group = [writer]
        failure: BaseException | None = None
        try:
            with self._lock:
                while self._waiting and len(group) < self.most:
                    group.append(self._waiting.popleft())
            self._commit(group)
        except BaseException as exc:  # noqa: BLE001 - every writer is answered below
            failure = exc
        finally:
            with self._lock:
                following = self._waiting.popleft() if self._waiting else None
                if following is None:
                    self._leading = False
            for other in group[1:]:
                other.outcome = failure is None
                other.woken.set()
            if following is not None:
                following.outcome = _LEAD
                following.woken.set()
        if failure is None:
            return True
        if len(group) == 1:
            raise failure
        if not isinstance(failure, Exception):
            raise failure
        log.debug("a group of %d writers failed (%s); each writes alone", len(group),
                  type(failure).__name__)
        return False

    def _commit(self, group: list[_Writer]) -> None:
        if len(group) == 1:
            parts = group[0].parts
        else:
            merged: dict[int, tuple[db.Insert, list[dict]]] = {}
            for member in group:
                for insert, rows in member.parts:
                    part = merged.get(id(insert))
                    if part is None:
                        merged[id(insert)] = (insert, list(rows))
                    else:
                        part[1].extend(rows)
            parts = list(merged.values())
        with self.engine.connect() as conn:
            # One statement on PostgreSQL commits by itself (one round trip); several (a
            # group too big for one) go in a transaction: a group is all or nothing.
            together = db.is_postgres(conn) and db.together_fits(parts)
            with (db.each_committed(conn) if together else conn.begin()):
                db.insert_together(conn, parts)
        GROUP_SIZE.observe(len(group))


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, GroupCommit] = weakref.WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def of(engine: Engine) -> GroupCommit:
    """The engine's group commit, made on first use (one per engine and process)."""
    group = _BY_ENGINE.get(engine)
    if group is None:
        with _BY_ENGINE_LOCK:
            group = _BY_ENGINE.get(engine)
            if group is None:
                group = _BY_ENGINE[engine] = GroupCommit(engine)
    return group
