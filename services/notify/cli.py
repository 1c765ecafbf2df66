"""Operator commands: `webhooks set|list` for agency endpoints, `deliveries list` for the
delivery log. Secrets come from a file or an environment variable, never the command line
(where `ps` and shell history would show them), and are never printed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from services.infra import db
from services.infra.config import Env
from services.notify import store

MIN_SECRET_LENGTH = 16


def add_commands(sub: argparse._SubParsersAction) -> None:
    hooks = sub.add_parser("webhooks", help="agency webhook endpoints")
    hooks_sub = hooks.add_subparsers(dest="action", required=True)
    set_ = hooks_sub.add_parser(
        "set", help="create or replace an agency's endpoint ('*' = default for agencies "
                    "without one)")
    set_.add_argument("agency_code", help="directory code, e.g. PUPR-13.03, or '*'")
    set_.add_argument("url", help="https://... endpoint that receives signed POSTs")
    set_.add_argument("--allow-http", action="store_true",
                      help="accept an http:// URL: only for a local test receiver, since "
                           "plain http shows reports to anyone on the way")
    secret = set_.add_mutually_exclusive_group(required=True)
    secret.add_argument("--secret-file", metavar="PATH",
                        help="file holding the signing secret (trailing newline ignored)")
    secret.add_argument("--secret-env", metavar="VAR",
                        help="environment variable holding the signing secret")
    set_.add_argument("--inactive", action="store_true",
                      help="store the endpoint but send nothing to it")
    hooks_sub.add_parser("list", help="list endpoints (secrets are never shown)")

    deliveries = sub.add_parser("deliveries", help="the delivery log")
    deliveries_sub = deliveries.add_subparsers(dest="action", required=True)
    list_ = deliveries_sub.add_parser("list", help="recent deliveries, newest first")
    list_.add_argument("--status", choices=store.STATUSES)
    list_.add_argument("--tracking-id")
    list_.add_argument("--channel", choices=("email", "webhook", "sms", "whatsapp"))
    list_.add_argument("--limit", type=int, default=50)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _read_secret(args: argparse.Namespace) -> str:
    if args.secret_file:
        try:
            with open(args.secret_file, encoding="utf-8") as handle:
                value = handle.read()
        except OSError as exc:
            raise ValueError(f"cannot read --secret-file: {exc.strerror}") from None
        value = value.rstrip("\r\n")
    else:
        value = os.environ.get(args.secret_env, "")
        if not value:
            raise ValueError(f"environment variable {args.secret_env} is not set")
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"the secret must be at least {MIN_SECRET_LENGTH} characters")
    return value


def _display_url(url: str) -> str:
    """The URL without a password or query string, which may carry credentials."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _engine():
    engine = db.make_engine(Env().database_url("NOTIFY_DATABASE_URL", "notify"))
    db.migrate(engine, "notify", store.MIGRATIONS)
    return engine


def run(args: argparse.Namespace) -> int:
    commands = {("webhooks", "set"): lambda: _webhooks_set(args),
                ("webhooks", "list"): _webhooks_list,
                ("deliveries", "list"): lambda: _deliveries_list(args)}
    command = commands.get((args.command, args.action))
    if command is None:
        return _fail(f"unknown command {args.command} {args.action}")
    try:
        return command()
    except sa.exc.SQLAlchemyError as exc:
        # Not the exception's text: it lists the statement's parameters, a secret among them.
        return _fail(f"database error ({type(getattr(exc, 'orig', None) or exc).__name__}); "
                     "check NOTIFY_DATABASE_URL")


def _webhooks_set(args: argparse.Namespace) -> int:
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _fail("the URL must be https:// with a host")
    if parts.scheme == "http" and not args.allow_http:
        return _fail("the URL must be https://: over plain http anyone on the way reads the "
                     "reports. For a local test receiver only, add --allow-http")
    code = args.agency_code.strip()
    if not code or len(code) > 64:
        return _fail("the agency code must be 1 to 64 characters")
    try:
        secret = _read_secret(args)
    except ValueError as exc:
        return _fail(str(exc))
    engine = _engine()
    try:
        with engine.begin() as conn:
            store.set_subscription(conn, code, args.url, secret, active=not args.inactive)
    finally:
        engine.dispose()
    state = "inactive" if args.inactive else "active"
    print(f"webhook for {code}: {_display_url(args.url)} ({state})")
    return 0


def _webhooks_list() -> int:
    engine = _engine()
    try:
        with db.reading(engine) as conn:
            rows = store.list_subscriptions(conn)
    finally:
        engine.dispose()
    if not rows:
        print("no webhook endpoints; add one with: webhooks set <AGENCY_CODE|*> <URL> "
              "--secret-file PATH")
        return 0
    print(f"{'AGENCY':<24} {'ACTIVE':<7} {'UPDATED':<20} URL")
    for row in rows:
        updated = db.as_utc(row["updated_at"]).strftime("%Y-%m-%d %H:%M:%SZ")
        print(f"{row['agency_code']:<24} {'yes' if row['active'] else 'no':<7} {updated:<20} "
              f"{_display_url(row['url'])}")
    return 0


def _deliveries_list(args: argparse.Namespace) -> int:
    d = store.deliveries
    query = sa.select(d.c.delivery_id, d.c.tracking_id, d.c.channel, d.c.audience, d.c.target,
                      d.c.trigger_type, d.c.status, d.c.attempts, d.c.last_error,
                      d.c.replaces, d.c.updated_at
                      ).order_by(d.c.id.desc()).limit(max(1, args.limit))
    if args.status:
        query = query.where(d.c.status == args.status)
    if args.tracking_id:
        query = query.where(d.c.tracking_id == args.tracking_id)
    if args.channel:
        query = query.where(d.c.channel == args.channel)
    engine = _engine()
    try:
        with db.reading(engine) as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    for row in rows:
        record = dict(row._mapping)
        record["updated_at"] = db.as_utc(record["updated_at"]).isoformat(timespec="seconds")
        print(json.dumps(record, ensure_ascii=False))
    return 0
