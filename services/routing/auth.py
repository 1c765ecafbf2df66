"""Staff and service accounts and their bearer tokens (DESIGN §2, roles): creating, listing,
disabling accounts; issuing, revoking and checking tokens; the caller of the RPC being served
(current_principal(), set by authz.AuthInterceptor); and the `accounts` command line
(`python -m services.routing accounts ...`).

A token is shown once, when it is issued; routing keeps only its SHA-256, so a copy of the
database does not let anyone call the API. A token stops working when it expires, is
revoked, or its account is disabled, on the next call."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.infra import db
from services.infra.config import Env
from services.infra.db import as_utc, reading, utcnow
from services.routing import storage
from services.routing.principal import ACCOUNT_ROLES, AGENCY_ROLES, Principal
from services.routing.rules import TRIAGE_AGENCY
from services.routing.tickets.statemachine import Role

log = logging.getLogger(__name__)

TOKEN_PREFIX = "lpr_"
# secrets.token_urlsafe(32): 32 random bytes, 43 characters.
TOKEN_PATTERN = re.compile(r"lpr_[A-Za-z0-9_-]{43}")
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 365
# A token's last use is written at most this often, so a busy service does not write on
# every call.
LAST_USED_EVERY = timedelta(minutes=1)
# ensure-service replaces a token this close to its expiry.
RENEW_BEFORE = timedelta(days=7)
# How much of a token's hash the listing shows; enough to name it in `accounts revoke`.
KEY_CHARS = 12

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}", re.ASCII)
# The audit trail names these actors; no account may look like them.
RESERVED_USERNAMES = frozenset({"system", "citizen"})
MAX_DISPLAY_NAME = 200
MAX_TLS_SUBJECT = 200
MAX_LABEL = 100


class AccountError(ValueError):
    """A request the accounts cannot carry out; the message says what to fix."""


# -- tokens: the pure part -------------------------------------------------------------------
def new_token() -> str:
    """A fresh bearer token: "lpr_" and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What routing stores and looks up: the token's SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    """Whether `token` has the shape of one routing issues (nothing else is looked up)."""
    return TOKEN_PATTERN.fullmatch(token) is not None


def token_key(hashed: str) -> str:
    """How listings name a token without showing it: the start of its hash."""
    return "sha256:" + hashed[:KEY_CHARS]


def _printable(value: str, name: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise AccountError(f"{name} is too long: at most {limit} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise AccountError(f"{name} must be one line of printable text")
    return value


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise AccountError(f"username {username[:80]!r} is not valid: use 3 to 64 characters, "
                           "lowercase letters, digits, '.', '_' or '-', starting with a letter "
                           "or digit")
    if username in RESERVED_USERNAMES:
        raise AccountError(f"username {username!r} is reserved (the audit trail uses it for "
                           "routing itself and for reporters); choose another")
    return username


def check_role(role: str) -> Role:
    if role not in {r.value for r in ACCOUNT_ROLES}:
        raise AccountError(f"role {role[:40]!r} is not one of "
                           + ", ".join(r.value for r in ACCOUNT_ROLES))
    return Role(role)


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise AccountError(f"a token lasts 1 to {MAX_TOKEN_DAYS} days, not {days}")
    return days


# -- accounts --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenInfo:
    id: int
    key: str                 # token_key(): names the token, reveals nothing
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    display_name: str
    role: Role
    agency_code: str
    tls_subject: str
    active: bool
    tokens: tuple[TokenInfo, ...] = field(default=())

    @property
    def principal(self) -> Principal:
        return Principal(self.username, self.role, self.agency_code, self.display_name)


def _account(row, tokens: tuple[TokenInfo, ...] = ()) -> Account:
    return Account(row.id, row.username, row.display_name, Role(row.role),
                   row.agency_code or "", row.tls_subject or "", bool(row.active), tokens)


def _token_info(row) -> TokenInfo:
    return TokenInfo(row.id, token_key(row.token_hash), row.label, as_utc(row.created_at),
                     as_utc(row.expires_at), as_utc(row.revoked_at), as_utc(row.last_used_at))


def get_account(conn: Connection, username: str) -> Account | None:
    row = conn.execute(sa.select(storage.accounts)
                       .where(storage.accounts.c.username == username)).first()
    return _account(row) if row else None


def _require(conn: Connection, username: str) -> Account:
    account = get_account(conn, username)
    if account is None:
        raise AccountError(f"no account {username[:80]!r}; see `accounts list`")
    return account


def create_account(conn: Connection, username: str, role: str, agency_code: str = "",
                   display_name: str = "", tls_subject: str = "",
                   now: datetime | None = None) -> Account:
    """Creates an account; staff (agency_admin, agency_officer) belong to one agency, an
    agency's system (service) may, national admins, oversight never do. Only a service
    authenticates by its client certificate (tls_subject: the certificate's common name)."""
    username = check_username(username)
    role_ = check_role(role)
    agency_code = agency_code.strip()
    display_name = _printable(display_name, "the display name", MAX_DISPLAY_NAME)
    tls_subject = _printable(tls_subject, "the TLS subject", MAX_TLS_SUBJECT)
    if role_ in AGENCY_ROLES and not agency_code:
        raise AccountError(f"{role_.value} accounts belong to one agency: give --agency CODE")
    if role_ in (Role.NATIONAL_ADMIN, Role.OVERSIGHT) and agency_code:
        raise AccountError(f"{role_.value} accounts see every agency and belong to none: "
                           "leave out --agency")
    if agency_code:
        if agency_code == TRIAGE_AGENCY:
            raise AccountError(f"{TRIAGE_AGENCY} is the national triage queue, not an agency: "
                               "its staff are national_admin accounts without --agency")
        exists = conn.execute(sa.select(storage.agencies.c.code)
                              .where(storage.agencies.c.code == agency_code)).first()
        if not exists:
            raise AccountError(f"no agency with code {agency_code[:40]!r}: use a code from "
                               "the directory, such as PUPR-13.03")
    if tls_subject and role_ != Role.SERVICE:
        raise AccountError("only service accounts authenticate by client certificate: "
                           "leave out --tls-subject, or use --role service")
    if get_account(conn, username) is not None:
        raise AccountError(f"account {username!r} already exists")
    if tls_subject and conn.execute(sa.select(storage.accounts.c.id).where(
            storage.accounts.c.tls_subject == tls_subject)).first():
        raise AccountError(f"another account already has TLS subject {tls_subject!r}")
    now = now or utcnow()
    try:
        with conn.begin_nested():
            account_id = conn.execute(storage.accounts.insert().values(
                username=username, display_name=display_name, role=role_.value,
                agency_code=agency_code or None, tls_subject=tls_subject or None, active=True,
                created_at=now, updated_at=now)).inserted_primary_key[0]
    except sa.exc.IntegrityError:  # created at the same moment elsewhere
        raise AccountError(f"account {username!r} (or its TLS subject) already exists") \
            from None
    log.info("account created", extra={"username": username, "role": role_.value,
                                       "agency": agency_code})
    return Account(account_id, username, display_name, role_, agency_code, tls_subject, True)


def list_accounts(conn: Connection, agency_code: str = "") -> list[Account]:
    """Every account (one agency's when given) with its tokens, newest token first."""
    a, t = storage.accounts, storage.account_tokens
    query = sa.select(a).order_by(a.c.agency_code, a.c.username)
    if agency_code:
        query = query.where(a.c.agency_code == agency_code)
    rows = conn.execute(query).all()
    tokens: dict[int, list[TokenInfo]] = {}
    if rows:
        for row in conn.execute(sa.select(t).where(t.c.account_id.in_([r.id for r in rows]))
                                .order_by(t.c.id.desc())):
            tokens.setdefault(row.account_id, []).append(_token_info(row))
    return [_account(r, tuple(tokens.get(r.id, ()))) for r in rows]


def set_active(conn: Connection, username: str, active: bool,
               now: datetime | None = None) -> int:
    """Disables (or enables again) an account. Disabling also revokes its live tokens, so an
    account enabled again needs new ones. Returns how many tokens were revoked."""
    account = _require(conn, username)
    now = now or utcnow()
    conn.execute(storage.accounts.update().where(storage.accounts.c.id == account.id)
                 .values(active=active, updated_at=now))
    revoked = 0
    if not active:
        t = storage.account_tokens
        revoked = conn.execute(t.update().where(t.c.account_id == account.id,
                                                t.c.revoked_at.is_(None))
                               .values(revoked_at=now)).rowcount
    log.info("account %s", "enabled" if active else "disabled",
             extra={"username": username, "tokens_revoked": revoked})
    return revoked


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)   # shown once; never logged
    id: int = 0
    key: str = ""
    expires_at: datetime | None = None


def issue_token(conn: Connection, username: str, days: int = DEFAULT_TOKEN_DAYS,
                label: str = "", now: datetime | None = None) -> IssuedToken:
    """A new token for an active account; the caller shows it once."""
    account = _require(conn, username)
    if not account.active:
        raise AccountError(f"account {username!r} is disabled: enable it first "
                           f"(accounts enable {username})")
    days = check_days(days)
    label = _printable(label, "the label", MAX_LABEL)
    now = now or utcnow()
    token = new_token()
    hashed = token_hash(token)
    expires_at = now + timedelta(days=days)
    token_id = conn.execute(storage.account_tokens.insert().values(
        account_id=account.id, token_hash=hashed, label=label, created_at=now,
        expires_at=expires_at)).inserted_primary_key[0]
    log.info("token issued", extra={"username": username, "token_id": token_id,
                                    "expires_at": expires_at.isoformat()})
    return IssuedToken(token, token_id, token_key(hashed), expires_at)


_TOKEN_ID = re.compile(r"#?([0-9]{1,18})")
_TOKEN_KEY = re.compile(r"(?:sha256:)?([0-9a-f]{8,64})")


def revoke_token(conn: Connection, ref: str, now: datetime | None = None) -> TokenInfo:
    """Revokes one token named by its id ("12" or "#12") or by the start of its hash as
    listed ("sha256:3f9a2c1b7d4e", at least 8 hex digits). Revoking twice is harmless."""
    t = storage.account_tokens
    ref = ref.strip()
    if by_id := _TOKEN_ID.fullmatch(ref):
        rows = conn.execute(sa.select(t).where(t.c.id == int(by_id.group(1)))).all()
    elif by_key := _TOKEN_KEY.fullmatch(ref.lower()):
        rows = conn.execute(sa.select(t).where(
            t.c.token_hash.startswith(by_key.group(1), autoescape=True))).all()
    else:
        raise AccountError("name the token by its id (#12) or by the key `accounts list` "
                           "shows (sha256:3f9a2c1b7d4e)")
    if not rows:
        raise AccountError(f"no token {ref[:80]!r}; see `accounts list`")
    if len(rows) > 1:
        raise AccountError(f"{ref!r} matches {len(rows)} tokens: give more of the key, or "
                           "the id")
    row = rows[0]
    if row.revoked_at is None:
        conn.execute(t.update().where(t.c.id == row.id).values(revoked_at=now or utcnow()))
        log.info("token revoked", extra={"token_id": row.id})
    return _token_info(conn.execute(sa.select(t).where(t.c.id == row.id)).one())


# -- checking tokens and certificates ------------------------------------------------------
_caller: ContextVar[Principal | None] = ContextVar("routing_caller", default=None)


def current_principal() -> Principal | None:
    """The authenticated caller of the RoutingService call being served (set by
    authz.AuthInterceptor); None outside one."""
    return _caller.get()


@contextlib.contextmanager
def serving_as(principal: Principal) -> Iterator[None]:
    """Makes `principal` the current_principal() inside the block."""
    token = _caller.set(principal)
    try:
        yield
    finally:
        _caller.reset(token)


class Outcome(StrEnum):
    """Why a credential was or was not accepted (logged; the caller learns only that it was
    not)."""

    OK = "ok"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Check:
    outcome: Outcome
    principal: Principal | None = None
    token_id: int | None = None
    # The token's last use is older than LAST_USED_EVERY: record this one.
    touch_due: bool = False


# Built once and run on the driver's cursor: every RPC runs it, and through SQLAlchemy's
# execute its Python cost several times the query's own.
_TOKEN_QUERY = db.Statement(
    sa.select(storage.account_tokens.c.id, storage.account_tokens.c.token_hash,
              storage.account_tokens.c.expires_at, storage.account_tokens.c.revoked_at,
              storage.account_tokens.c.last_used_at, storage.accounts.c.username,
              storage.accounts.c.role, storage.accounts.c.agency_code,
              storage.accounts.c.display_name, storage.accounts.c.active)
    .join(storage.accounts, storage.accounts.c.id == storage.account_tokens.c.account_id)
    .where(storage.account_tokens.c.token_hash == sa.bindparam("hash")))


def lookup_token(conn: Connection, token: str, now: datetime | None = None) -> Check:
    """What a presented token stands for, read-only (see touch() for recording its use)."""
    if not looks_like_token(token):
        return Check(Outcome.MALFORMED)
    hashed = token_hash(token)
    row = _TOKEN_QUERY.first(conn, {"hash": hashed})
    # The index found the row by its hash; the comparison that decides is constant-time.
    if row is None or not hmac.compare_digest(row.token_hash, hashed):
        return Check(Outcome.UNKNOWN)
    now = now or utcnow()
    if row.revoked_at is not None:
        return Check(Outcome.REVOKED, token_id=row.id)
    if as_utc(row.expires_at) <= now:
        return Check(Outcome.EXPIRED, token_id=row.id)
    if not row.active:
        return Check(Outcome.DISABLED, token_id=row.id)
    last_used = as_utc(row.last_used_at)
    return Check(Outcome.OK, Principal(row.username, Role(row.role), row.agency_code or "",
                                       row.display_name),
                 token_id=row.id,
                 touch_due=last_used is None or now - last_used >= LAST_USED_EVERY)


def touch(conn: Connection, token_id: int, now: datetime | None = None) -> bool:
    """Records a token's use unless one was recorded in the last minute (by this process or
    another replica); True when it wrote."""
    now = now or utcnow()
    t = storage.account_tokens
    return conn.execute(t.update().where(
        t.c.id == token_id,
        sa.or_(t.c.last_used_at.is_(None), t.c.last_used_at <= now - LAST_USED_EVERY))
        .values(last_used_at=now)).rowcount == 1


def lookup_tls_subject(conn: Connection, subject: str) -> Check:
    """The service account whose client certificate carries this common name."""
    a = storage.accounts
    row = conn.execute(sa.select(a).where(a.c.tls_subject == subject)).first()
    if row is None:
        return Check(Outcome.UNKNOWN)
    if not row.active:
        return Check(Outcome.DISABLED)
    return Check(Outcome.OK, _account(row).principal)


class Authenticator:
    """Turns the credentials of a call into a Principal, against the accounts in the database."""

    def __init__(self, engine: Engine, clock=utcnow):
        self.engine = engine
        self.clock = clock

    def by_token(self, token: str) -> Check:
        now = self.clock()
        # One statement, outside a transaction: on PostgreSQL one round trip, not three.
        with db.unwrapped(self.engine) as conn:
            check = lookup_token(conn, token, now)
        if check.touch_due:
            # Not part of the answer: a database too busy for this write fails no call.
            try:
                with self.engine.begin() as conn:
                    touch(conn, check.token_id, now)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("could not record the use of token %s (%s)", check.token_id,
                            type(exc).__name__)
        return check

    def by_tls_subject(self, subject: str) -> Check:
        with reading(self.engine) as conn:
            return lookup_tls_subject(conn, subject)


def resolve_token(engine: Engine, token: str, now: datetime | None = None) -> Principal | None:
    """The Principal a token stands for; None when it is unknown, expired, revoked or its
    account disabled."""
    return Authenticator(engine, clock=lambda: now or utcnow()).by_token(token).principal


def resolve_tls_subject(engine: Engine, subject: str) -> Principal | None:
    """The Principal of the active service account with this certificate common name."""
    return Authenticator(engine).by_tls_subject(subject).principal


def write_secret(path: Path, text: str) -> None:
    """Writes `text` to `path`, readable by its owner only (0600), replacing the file in one
    step so a reader never sees half of it."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def ensure_service(conn: Connection, username: str, token_file: Path,
                   days: int = DEFAULT_TOKEN_DAYS, now: datetime | None = None) -> str:
    """The platform service account (no agency) exists and `token_file` holds a token of it
    that works for at least RENEW_BEFORE; creates and writes what is missing. Returns what
    it did: "kept", "issued" or "created"."""
    now = now or utcnow()
    account = get_account(conn, username)
    created = account is None
    if created:
        account = create_account(conn, username, Role.SERVICE.value,
                                 display_name="platform service", now=now)
    elif account.role != Role.SERVICE or account.agency_code:
        raise AccountError(f"account {username!r} exists with role {account.role.value}"
                           + (f" of {account.agency_code}" if account.agency_code else "")
                           + ", not a platform service: choose another name")
    elif not account.active:
        raise AccountError(f"account {username!r} is disabled: enable it "
                           f"(accounts enable {username}) or choose another name")
    token_file = Path(token_file)
    try:
        held = token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        held = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise AccountError(f"cannot read {token_file}: {getattr(exc, 'strerror', None) or exc}"
                           ) from None
    if held and not created:
        check = lookup_token(conn, held, now)
        if check.principal is not None and check.principal.username == username:
            expires = conn.execute(sa.select(storage.account_tokens.c.expires_at).where(
                storage.account_tokens.c.id == check.token_id)).scalar_one()
            if as_utc(expires) - now > RENEW_BEFORE:
                if token_file.stat().st_mode & 0o077:
                    token_file.chmod(0o600)
                return "kept"
    issued = issue_token(conn, username, days, label=f"{token_file.name} (ensure-service)",
                         now=now)
    write_secret(token_file, issued.token)
    return "created" if created else "issued"


# -- the command line ------------------------------------------------------------------------
def add_command(subparsers) -> None:
    """`accounts ...` on the routing command line."""
    accounts = subparsers.add_parser(
        "accounts", help="staff and service accounts and their tokens",
        description="Staff and service accounts and their bearer tokens. A token is printed "
                    "once, when it is issued; routing keeps only its hash.")
    sub = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create an account")
    create.add_argument("username")
    create.add_argument("--role", required=True, metavar="ROLE",
                        help="one of " + ", ".join(r.value for r in ACCOUNT_ROLES))
    create.add_argument("--agency", default="", metavar="CODE",
                        help="the agency (required for agency_admin and agency_officer; an "
                             "agency's own system is a service with its agency)")
    create.add_argument("--name", default="", help="display name")
    create.add_argument("--tls-subject", default="", metavar="CN",
                        help="service accounts: the common name of the client certificate "
                             "that authenticates it (mutual TLS)")
    listing = sub.add_parser("list", help="list accounts and their tokens (never the tokens "
                                          "themselves)")
    listing.add_argument("--agency", default="", metavar="CODE", help="only this agency's")
    for name, text in (("disable", "disable an account and revoke its tokens"),
                       ("enable", "enable a disabled account again (it needs new tokens)")):
        sub.add_parser(name, help=text).add_argument("username")
    token = sub.add_parser("token", help="issue a token (printed once)")
    token.add_argument("username")
    token.add_argument("--days", type=int, default=DEFAULT_TOKEN_DAYS,
                       help=f"valid for this many days (default {DEFAULT_TOKEN_DAYS}, at most "
                            f"{MAX_TOKEN_DAYS})")
    token.add_argument("--label", default="", help="what the token is for, e.g. the device")
    token.add_argument("--output", type=Path, metavar="FILE",
                       help="write the token to FILE (mode 0600) instead of printing it")
    revoke = sub.add_parser("revoke", help="revoke a token")
    revoke.add_argument("token_id", metavar="TOKEN_ID",
                        help="the token's id (#12) or key (sha256:3f9a2c1b7d4e) from `list`")
    ensure = sub.add_parser("ensure-service",
                            help="make sure a platform service account exists and FILE holds a "
                                 "working token of it (idempotent)")
    ensure.add_argument("username")
    ensure.add_argument("--token-file", type=Path, required=True, metavar="FILE")
    ensure.add_argument("--days", type=int, default=DEFAULT_TOKEN_DAYS)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _listing(accounts: list[Account], now: datetime) -> Iterator[str]:
    yield f"{'USERNAME':<24} {'ROLE':<15} {'AGENCY':<16} {'STATUS':<9} TLS SUBJECT / NAME"
    for account in accounts:
        yield (f"{account.username:<24} {account.role.value:<15} "
               f"{account.agency_code or '-':<16} "
               f"{'active' if account.active else 'disabled':<9} "
               f"{account.tls_subject or account.display_name}")
        for token in account.tokens:
            yield (f"    token #{token.id:<5} {token.key}  {token.state(now):<8} "
                   f"expires {_when(token.expires_at)}  last used {_when(token.last_used_at)}"
                   + (f"  {token.label}" if token.label else ""))


def run_command(args: argparse.Namespace, engine: Engine) -> int:
    """Carries out an `accounts` action; 2 with a message on stderr when it cannot."""
    action = args.accounts_command
    try:
        with engine.begin() as conn:
            if action == "create":
                account = create_account(conn, args.username, args.role, args.agency,
                                         args.name, args.tls_subject)
                print(f"created {account.role.value} {account.username}"
                      + (f" of {account.agency_code}" if account.agency_code else "")
                      + f"; issue a token with: accounts token {account.username}")
            elif action == "list":
                for line in _listing(list_accounts(conn, args.agency), utcnow()):
                    print(line)
            elif action in ("disable", "enable"):
                revoked = set_active(conn, args.username, action == "enable")
                print(f"{args.username} {action}d"
                      + (f"; {revoked} token(s) revoked" if revoked else ""))
            elif action == "token":
                issued = issue_token(conn, args.username, args.days, args.label)
                where = f"written to {args.output}" if args.output else "printed below"
                notice = (f"token #{issued.id} ({issued.key}) for {args.username}, expires "
                          f"{_when(issued.expires_at)} UTC; {where}, shown only this once")
                if args.output:
                    write_secret(args.output, issued.token)
                    print(notice)
                else:
                    # The token alone on stdout, so `TOKEN=$(... accounts token x)` works.
                    print(notice, file=sys.stderr)
                    print(issued.token)
            elif action == "revoke":
                token = revoke_token(conn, args.token_id)
                print(f"token #{token.id} ({token.key}) revoked")
            elif action == "ensure-service":
                did = ensure_service(conn, args.username, args.token_file, args.days)
                print({"kept": f"{args.token_file} holds a working token of {args.username}",
                       "issued": f"new token of {args.username} written to {args.token_file}",
                       "created": f"platform service account {args.username} created, its "
                                  f"token written to {args.token_file}"}[did])
    except (AccountError, OSError) as exc:
        message = str(exc) if isinstance(exc, AccountError) else \
            f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}"
        print(f"accounts {action}: {message}", file=sys.stderr)
        return 2
    return 0


def main(args: argparse.Namespace, env: Env) -> int:
    """`python -m services.routing accounts ...`: migrates the database first, like every
    routing command. Log lines go to stderr, so stdout carries only what was asked for."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = db.make_engine(env.database_url("ROUTING_DATABASE_URL", "routing"))
    try:
        db.migrate(engine, "routing", storage.MIGRATIONS)
        return run_command(args, engine)
    finally:
        engine.dispose()
