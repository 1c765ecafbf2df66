"""`python -m services.routing [serve|migrate|seed-demo|import-regions CSV|directory ...|
accounts ...|model build|show|retrain]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from services.infra import db, logs
from services.infra.config import Env
from services.infra.lifecycle import freeze_start_up_heap, wait_for_shutdown_signal
from services.routing import auth, storage
from services.routing.classify import cli as classify_cli
from services.routing.directory import cli as directory_cli

log = logging.getLogger("services.routing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.routing",
                                     description="LAPOR routing: directory, tickets, SLA clocks")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gRPC server and the report consumer (default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser("seed-demo", help="load the demo directory (Sumatera Barat, ministries)")
    imp = sub.add_parser("import-regions", help="import the Kemendagri region list (CSV: "
                         "kode,nama,level); provinces get their ISO 3166-2 code and time zone")
    imp.add_argument("csv", type=Path)
    directory_cli.add_command(sub)
    auth.add_command(sub)
    classify_cli.add_commands(sub)
    args = parser.parse_args(argv)
    env = Env()
    logs.setup("routing", env.str("LAPOR_LOG_LEVEL", "INFO"))
    command = args.command or "serve"

    if command == "serve":
        from services.routing.app import RoutingService, Settings

        service = RoutingService(Settings.from_env(env)).start()
        freeze_start_up_heap()
        wait_for_shutdown_signal()
        service.stop()
        return 0

    if command == "accounts":
        return auth.main(args, env)
    if command in ("model", "retrain"):
        return classify_cli.main(args, env)
    if command == "directory":
        return directory_cli.main(args, env)

    engine = db.make_engine(env.database_url("ROUTING_DATABASE_URL", "routing"))
    # The taxonomy (and the demo) load under the migration lock, so replicas starting
    # together load them once.
    db.migrate(engine, "routing", storage.MIGRATIONS,
               after=storage.after_migrate(seed_demo=command == "seed-demo"))
    if command == "seed-demo":
        log.info("demo directory loaded")
    elif command == "import-regions":
        try:
            rows = storage.read_regions_csv(args.csv)
        except (OSError, ValueError) as exc:
            print(f"import-regions: {exc}", file=sys.stderr)
            return 2
        with engine.begin() as conn:
            written = storage.upsert_regions(conn, rows)
        log.info("imported regions", extra={"rows": len(rows), "written": written})
        print(f"import-regions {args.csv}: {len(rows):,} regions, {written:,} rows written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
