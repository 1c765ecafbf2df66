"""Schema migrations with Alembic. Each service keeps frozen revision scripts in
services/<service>/migrations/ (never built from the live table definitions) and its own
version table `alembic_version_<service>`; one environment (services/infra/alembic/) serves all
three.

`upgrade` runs at start-up. Several replicas may start at once: on PostgreSQL they queue on an
advisory lock, on SQLite on the write lock, and the optional `after` step (seeding reference
data) runs under the same lock, so exactly one replica does each piece of work.

A database created before Alembic (by the old in-code runner, table `schema_migrations`) is
recognised and stamped at the baseline revision, whose schema is identical, then upgraded.

`python -m services.infra.migrations SERVICE upgrade|current|history|check|revision -m MSG`
is the developer's and operator's tool (DATABASE URL from the service's usual variable).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

# Alembic is imported only when there is something to migrate (or a command asks for it): a
# service that finds its schema current, every start but the first after a release, does
# not carry its 11 MB of modules (docs/performance.md).

log = logging.getLogger(__name__)

ENVIRONMENT = Path(__file__).with_name("alembic")
LEGACY_TABLE = "schema_migrations"
# The first Alembic revision of every service reproduces what the old runner's version 1
# created, so a database at that version is stamped with it.
BASELINE = "0001"


@dataclass(frozen=True)
class MigrationPlan:
    """A service's schema: its live table definitions and where its revisions live."""

    service: str
    metadata: sa.MetaData
    versions: Path

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.service}"


def _config(plan: MigrationPlan, connection: Connection | None = None):
    from alembic.config import Config

    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(ENVIRONMENT))
    config.set_main_option("version_locations", str(plan.versions))
    config.set_main_option("path_separator", "os")
    config.attributes.update(connection=connection, target_metadata=plan.metadata,
                             version_table=plan.version_table, service=plan.service)
    return config


@contextlib.contextmanager
def _locked(engine: Engine, plan: MigrationPlan) -> Iterator[Connection]:
    """One connection inside one transaction, holding the service's migration lock."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Batch alterations copy tables; with foreign keys enforced, dropping the old copy
            # would cascade into the tables that reference it. The pragma only takes effect
            # outside a transaction; it is checked again before commit.
            _pragma(conn, "foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # A schema change may take longer than a request may; replicas queue here
                    # for as long as the first one needs.
                    conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                    conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": zlib.crc32(f"lapor-migrate-{plan.service}".encode())})
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"{plan.service}: migration left {len(broken)} rows "
                                           "violating foreign keys; rolled back")
        finally:
            if sqlite:
                _pragma(conn, "foreign_keys=ON")


def _pragma(conn: Connection, setting: str) -> None:
    # On the driver's connection: through SQLAlchemy it would begin a transaction first.
    conn.connection.driver_connection.execute(f"PRAGMA {setting}")


def current(conn: Connection, plan: MigrationPlan) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"version_table": plan.version_table})
    return context.get_current_revision()


def head(plan: MigrationPlan) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(plan)).get_current_head()


_REVISION = re.compile(r"""^revision\b[^=\n]*=\s*["']([^"'\n]+)["']""", re.M)
_DOWN_REVISION = re.compile(r"""^down_revision\b[^=\n]*=\s*(?:["']([^"'\n]+)["']|None)""",
                            re.M)


def head_from_scripts(plan: MigrationPlan) -> str | None:
    """The newest revision, read from the scripts' `revision` and `down_revision` lines
    without importing Alembic; None unless they form one line of revisions (then Alembic
    decides). tests/integration/test_migrations.py holds it equal to Alembic's head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in plan.versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None:
            continue
        if down is None:
            return None  # a merge or something else this reading does not know
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _stored_revision(conn: Connection, plan: MigrationPlan) -> str | None:
    if not sa.inspect(conn).has_table(plan.version_table):
        return None
    stored = conn.execute(sa.text(f"SELECT version_num FROM {plan.version_table}")).scalars()
    found = list(stored)
    return found[0] if len(found) == 1 else None


def upgrade(engine: Engine, plan: MigrationPlan,
            after: Callable[[Connection], None] | None = None) -> list[str]:
    """Brings the database to the newest revision; returns the revisions applied."""
    newest = head_from_scripts(plan)
    with _locked(engine, plan) as conn:
        if newest is not None and _stored_revision(conn, plan) == newest:
            if after is not None:
                after(conn)
            return []
        from alembic import command
        from alembic.script import ScriptDirectory

        before = current(conn, plan)
        if before is None and sa.inspect(conn).has_table(LEGACY_TABLE):
            versions = set(conn.execute(sa.text(f"SELECT version FROM {LEGACY_TABLE}")).scalars())
            if versions != {1}:
                raise RuntimeError(f"{plan.service}: {LEGACY_TABLE} holds versions "
                                   f"{sorted(versions)}; only version 1 can be taken over")
            command.stamp(_config(plan, conn), BASELINE)
            before = BASELINE
            log.info("took over a database created before Alembic",
                     extra={"service": plan.service})
        command.upgrade(_config(plan, conn), "head")
        after_rev = current(conn, plan)
        if after is not None:
            after(conn)
    script = ScriptDirectory.from_config(_config(plan))
    applied = []
    if after_rev != before:
        for revision in script.iterate_revisions(after_rev, before):
            applied.append(revision.revision)
        applied.reverse()
        log.info("database migrated", extra={"service": plan.service,
                                              "revisions": ",".join(applied)})
    return applied


def check(engine: Engine, plan: MigrationPlan) -> None:
    """Raises alembic.util.CommandError when the live tables and the revisions disagree."""
    from alembic import command

    with engine.connect() as conn:
        command.check(_config(plan, conn))


# -- command line -----------------------------------------------------------------------------
_PLANS = {
    "intake": ("services.intake.storage", "INTAKE_DATABASE_URL"),
    "routing": ("services.routing.storage", "ROUTING_DATABASE_URL"),
    "notify": ("services.notify.store", "NOTIFY_DATABASE_URL"),
}


def plan_for(service: str) -> MigrationPlan:
    module = importlib.import_module(_PLANS[service][0])
    return module.MIGRATIONS


def main(argv: list[str] | None = None) -> int:
    from services.infra import db
    from services.infra.config import Env

    parser = argparse.ArgumentParser(prog="python -m services.infra.migrations")
    parser.add_argument("service", choices=sorted(_PLANS))
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("upgrade", help="migrate the service's database to the newest revision")
    sub.add_parser("current", help="print the database's revision")
    sub.add_parser("history", help="list the revisions")
    sub.add_parser("check", help="fail when the table definitions and the revisions disagree")
    rev = sub.add_parser("revision", help="write a new revision script (review it, then freeze)")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true",
                     help="draft it from the difference between the database and the tables")
    args = parser.parse_args(argv)
    from alembic import command
    from alembic.script import ScriptDirectory

    plan = plan_for(args.service)
    engine = db.make_engine(Env().database_url(_PLANS[args.service][1], args.service))
    try:
        if args.action == "upgrade":
            print("applied:", " ".join(upgrade(engine, plan)) or "nothing")
        elif args.action == "current":
            with engine.connect() as conn:
                print(current(conn, plan) or "empty")
        elif args.action == "history":
            for script in ScriptDirectory.from_config(_config(plan)).walk_revisions():
                print(f"{script.revision}  {script.doc}")
        elif args.action == "check":
            check(engine, plan)
            print("the tables and the revisions agree")
        else:
            with engine.connect() as conn:
                config = _config(plan, conn)
                config.stdout = sys.stdout
                number = len(list(ScriptDirectory.from_config(config).walk_revisions())) + 1
                command.revision(config, message=args.message, autogenerate=args.autogenerate,
                                 rev_id=f"{number:04d}")
                conn.commit()
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
