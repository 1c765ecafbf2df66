"""`python -m services.intake [serve|import-regions CSV]`: the HTTP server (waitress),
metrics and health on their own port, the outbox relay and the read-model consumer in one
process, stopped in order within LAPOR_SHUTDOWN_SECONDS on SIGTERM
(services/intake/server.py); or the import of the official region list."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.infra import db, logs
from services.infra.config import Env
from services.infra.lifecycle import wait_for_shutdown_signal
from services.infra.regions import read_regions_csv
from services.intake import regions, storage
from services.intake.app import create_app, settings_from_env
from services.intake.server import IntakeProcess, ServerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake",
                                     description="LAPOR intake: the HTTP edge")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP server and its workers (default)")
    imp = sub.add_parser("import-regions", help="import the Kemendagri region list (CSV: "
                         "kode,nama,level): reports from a region not in it are refused")
    imp.add_argument("csv", type=Path)
    args = parser.parse_args(argv)
    env = Env()
    logs.setup("intake", env.str("LAPOR_LOG_LEVEL", "INFO"))
    if args.command == "import-regions":
        return import_regions(args.csv, env)
    settings = ServerSettings.from_env(env)
    process = IntakeProcess(create_app(settings_from_env(env)), settings).start()
    wait_for_shutdown_signal()
    process.stop()
    return 0


def import_regions(path: Path, env: Env) -> int:
    """Imports the official region list into intake's own table (idempotent)."""
    try:
        rows = read_regions_csv(path)
    except (OSError, ValueError) as exc:
        print(f"import-regions: {exc}", file=sys.stderr)
        return 2
    engine = db.make_engine(env.database_url("INTAKE_DATABASE_URL", "intake"))
    try:
        db.migrate(engine, "intake", storage.MIGRATIONS)
        with engine.begin() as conn:
            written = regions.import_regions(conn, rows)
    finally:
        engine.dispose()
    print(f"import-regions {path}: {len(rows):,} regions, {written:,} rows written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
