"""`python -m services.intake [serve|import-regions CSV|open311-keys add|list|revoke]`: the
HTTP server (waitress), metrics and health on their own port, the outbox relay and the
read-model consumer in one process, stopped in order within LAPOR_SHUTDOWN_SECONDS on SIGTERM
(services/intake/server.py); the import of the official region list; or the Open311 clients'
API keys."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.infra import db, logs
from services.infra.config import Env
from services.infra.lifecycle import freeze_start_up_heap, wait_for_shutdown_signal
from services.infra.regions import read_regions_csv
from services.intake import regions, storage
from services.intake.app import create_app, settings_from_env
from services.intake.open311 import keys as open311_keys_store
from services.intake.server import IntakeProcess, ServerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake",
                                     description="LAPOR intake: the HTTP edge")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP server and its workers (default)")
    imp = sub.add_parser("import-regions", help="import the Kemendagri region list (CSV: "
                         "kode,nama,level): reports from a region not in it are refused")
    imp.add_argument("csv", type=Path)
    keys_cmd = sub.add_parser("open311-keys", help="the API keys of Open311 client "
                              "applications (POST requests needs one)")
    keys_sub = keys_cmd.add_subparsers(dest="action", required=True)
    keys_sub.add_parser("add", help="a new client; prints its key once").add_argument("name")
    keys_sub.add_parser("list", help="the clients, with the start of each key")
    keys_sub.add_parser("revoke", help="the client's key stops working").add_argument("name")
    args = parser.parse_args(argv)
    env = Env()
    logs.setup("intake", env.str("LAPOR_LOG_LEVEL", "INFO"))
    if args.command == "import-regions":
        return import_regions(args.csv, env)
    if args.command == "open311-keys":
        return open311_keys(args, env)
    settings = ServerSettings.from_env(env)
    process = IntakeProcess(create_app(settings_from_env(env)), settings).start()
    freeze_start_up_heap()
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


def open311_keys(args: argparse.Namespace, env: Env) -> int:
    """add NAME (prints the key, once: only its hash is kept), list, revoke NAME."""
    engine = db.make_engine(env.database_url("INTAKE_DATABASE_URL", "intake"))
    try:
        db.migrate(engine, "intake", storage.MIGRATIONS)
        with engine.begin() as conn:
            if args.action == "add":
                try:
                    key = open311_keys_store.add(conn, args.name)
                except open311_keys_store.ClientKeyError as exc:
                    print(f"open311-keys add: {exc}", file=sys.stderr)
                    return 2
                print(f"Open311 client {args.name} added. Its api_key (shown only now):")
                print(key)
                return 0
            if args.action == "revoke":
                if not open311_keys_store.revoke(conn, args.name):
                    print(f"open311-keys revoke: no active client named {args.name}",
                          file=sys.stderr)
                    return 2
                print(f"Open311 client {args.name}: key revoked")
                return 0
            for client in open311_keys_store.clients(conn):
                state = (f"revoked {client.revoked_at:%Y-%m-%d}" if client.revoked_at
                         else "active")
                print(f"{client.name}\t{client.key_prefix}…\tadded "
                      f"{client.created_at:%Y-%m-%d}\t{state}")
            return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
