"""`python -m services.routing directory generate|load|export`: the directory file operators
edit (docs/directory.md). Results go to stdout, log lines to stderr, problems to stderr with
exit status 2."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from services.infra import db
from services.infra.config import Env
from services.infra.regions import read_regions_csv
from services.routing import storage
from services.routing.directory import document, generator


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "directory", help="the directory file: generate, load, export (docs/directory.md)",
        description="The directory file: categories beyond the national taxonomy, the offices "
                    "of every province and regency/city, national agencies and rules.")
    sub = parser.add_subparsers(dest="directory_command", required=True)
    gen = sub.add_parser("generate", help="write the national directory file for a region "
                                          "list (the standard offices of every province and "
                                          "regency/city, national agencies, rules)")
    gen.add_argument("--regions", type=Path, required=True, metavar="CSV",
                     help="the Kemendagri region list (kode,nama,level)")
    gen.add_argument("--out", type=Path, required=True, metavar="FILE")
    load = sub.add_parser("load", help="make the database hold what FILE says (idempotent); "
                                       "prints what changed")
    load.add_argument("file", type=Path, metavar="FILE")
    load.add_argument("--dry-run", action="store_true",
                      help="print what would change and change nothing")
    export = sub.add_parser("export", help="write what the database holds as a directory "
                                           "file, to edit and load back")
    export.add_argument("file", type=Path, metavar="FILE", help="the file to write; - for "
                                                               "stdout")


def main(args: argparse.Namespace, env: Env) -> int:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    command = args.directory_command
    try:
        if command == "generate":
            return _generate(args)
        if command == "load":
            return _load(args, env)
        return _export(args, env)
    except document.DirectoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"directory {command}: nothing was changed; fix the {len(exc.problems)} "
              f"problem(s) above", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"directory {command}: {exc}", file=sys.stderr)
        return 2


def _generate(args: argparse.Namespace) -> int:
    regions = read_regions_csv(args.regions)
    data = generator.generate(regions)
    text = document.dump(data)
    expanded = document.expand(document.load_text(text, str(args.out)), source=str(args.out))
    args.out.write_text(text, encoding="utf-8")
    counts = {level: sum(1 for r in regions if r.level == level)
              for level in ("provinsi", "kabupaten_kota")}
    print(f"wrote {args.out}: {counts['provinsi']} provinces and {counts['kabupaten_kota']} "
          f"regencies/cities, {len(data['offices'])} kinds of office; "
          f"{len(expanded.agencies):,} agencies and {len(expanded.rules):,} rules once loaded")
    return 0


def _load(args: argparse.Namespace, env: Env) -> int:
    # Read and checked before the database is touched: a wrong file changes nothing.
    source = str(args.file)
    expanded = document.expand(document.load_text(args.file.read_text(encoding="utf-8"),
                                                  source), source=source)
    engine = db.make_engine(env.database_url("ROUTING_DATABASE_URL", "routing"))
    results: list = []

    def load(conn) -> None:
        results.append(storage.load_directory(conn, expanded))
        results.append(storage.regions_missing(conn, expanded))

    try:
        if args.dry_run:
            db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.after_migrate())
            with engine.connect() as conn, conn.begin() as transaction:
                load(conn)
                transaction.rollback()
        else:
            # Under the migration lock: replicas starting meanwhile wait for the directory.
            db.migrate(engine, "routing", storage.MIGRATIONS,
                       after=lambda conn: (storage.after_migrate()(conn), load(conn)))
    finally:
        engine.dispose()
    summary, missing = results
    verb = "would change" if args.dry_run else "loaded"
    state = "nothing to change" if summary.unchanged else verb
    print(f"directory {args.file}: {state}")
    for line in summary.lines():
        print(f"  {line}")
    if missing:
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        print(f"  note: {len(missing)} region(s) of its agencies are not in the region list "
              f"({shown}); import it with `import-regions`")
    return 0


def _export(args: argparse.Namespace, env: Env) -> int:
    engine = db.make_engine(env.database_url("ROUTING_DATABASE_URL", "routing"))
    try:
        db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.after_migrate())
        with db.reading(engine) as conn:
            text = storage.export_directory(conn)
    finally:
        engine.dispose()
    if str(args.file) == "-":
        sys.stdout.write(text)
    else:
        args.file.write_text(text, encoding="utf-8")
        print(f"wrote {args.file}")
    return 0
