"""Rate limits on the API, counted with the `limits` library's sliding-window counters.

Submissions, suggestions, report lookups, the reporter's actions (replies, confirmation,
rating, appeal) and support (dukungan) each have an allowance per client; lookups and
reporter actions that fail (an unknown tracking id, a wrong access token) also count against
a much smaller one, so guessing ids or tokens slows to a crawl while a citizen who mistypes
once is not bothered (the check character already turns most typos into a 400 that does not
count). The staff API has one allowance per staff token (an office behind one address is
many officers), and answers 401 (no token, or one routing refuses) count per client against
their own small allowance, so random tokens cannot keep routing busy.
The client is its address, IPv6 clients by their /64 (one subscriber's prefix); behind
proxies, INTAKE_TRUSTED_PROXIES says how many X-Forwarded-For hops to believe.

With LAPOR_REDIS_URL the counts live in Redis and hold across replicas; without it, in this
process. Redis going away must not turn citizens away: the limiter falls back to counting
in memory, logs a warning, and goes back to Redis once it answers again.

Flask-Limiter did this until December 2026; it cost a quarter of a submission's time in
intake (a pass over the app's limits before every request, the decorator's own pass, and
its memory storage starting a timer thread every 10 ms under load) for what is here a
lookup by endpoint and one counter per limit (decision 57).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, g, make_response, request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from limits.util import WindowStats

from services.infra.config import ConfigError, Env
from services.intake.problems import Problem

log = logging.getLogger(__name__)

# setting (app.config key) -> (environment variable, default)
LIMIT_SETTINGS = {
    "RATE_LIMIT_SUBMIT": ("INTAKE_RATE_LIMIT_SUBMIT", "30 per minute; 300 per hour"),
    "RATE_LIMIT_SUGGEST": ("INTAKE_RATE_LIMIT_SUGGEST", "60 per minute; 600 per hour"),
    "RATE_LIMIT_READ": ("INTAKE_RATE_LIMIT_READ", "300 per minute; 5000 per hour"),
    "RATE_LIMIT_LOOKUP_FAILURES": ("INTAKE_RATE_LIMIT_LOOKUP_FAILURES",
                                   "10 per minute; 100 per hour"),
    "RATE_LIMIT_REPORTER": ("INTAKE_RATE_LIMIT_REPORTER", "30 per minute; 300 per hour"),
    "RATE_LIMIT_SUPPORT": ("INTAKE_RATE_LIMIT_SUPPORT", "30 per minute; 300 per hour"),
    "RATE_LIMIT_STAFF": ("INTAKE_RATE_LIMIT_STAFF", "600 per minute; 20000 per hour"),
    "RATE_LIMIT_STAFF_FAILURES": ("INTAKE_RATE_LIMIT_STAFF_FAILURES",
                                  "30 per minute; 300 per hour"),
    "RATE_LIMIT_OPEN311_SUBMIT": ("INTAKE_RATE_LIMIT_OPEN311_SUBMIT",
                                  "60 per minute; 1000 per hour"),
}
# Which endpoint each allowance guards.
ENDPOINTS = {"api.create_report": "RATE_LIMIT_SUBMIT", "api.suggest_route": "RATE_LIMIT_SUGGEST",
             "api.get_report": "RATE_LIMIT_READ", "api.support_report": "RATE_LIMIT_SUPPORT",
             "attachments.list_attachments": "RATE_LIMIT_READ",
             "attachments.get_attachment": "RATE_LIMIT_READ"}
TOO_MANY = {"api.create_report": "Too many reports from this network",
            "api.suggest_route": "Too many suggestion requests from this network",
            "api.get_report": "Too many report lookups from this network",
            "api.support_report": "Too many supports from this network",
            "attachments.list_attachments": "Too many attachment lookups from this network",
            "attachments.get_attachment": "Too many file downloads from this network"}
# The reporter's actions share one allowance per client.
REPORTER_ENDPOINTS = ("api.reply", "api.confirm", "api.rate", "api.appeal",
                      "attachments.upload_attachment")
# Endpoints whose 403/404 answers are failed lookups of a report or its token.
LOOKUP_ENDPOINTS = ("api.get_report", "api.support_report", *REPORTER_ENDPOINTS,
                    "attachments.list_attachments", "attachments.get_attachment")
LOOKUP_FAILURE_STATUSES = (403, 404)
REDIS_TIMEOUT = 0.5  # seconds: a slow Redis must not make every request slow
REDIS_RECHECK_SECONDS = 5.0  # with Redis away, how often a request asks whether it is back
PURGE_SECONDS = 30.0  # how often memory drops the counters of clients not seen again


def settings_from_env(env: Env) -> dict:
    settings = {key: env.str(var, default) for key, (var, default) in LIMIT_SETTINGS.items()}
    settings["REDIS_URL"] = env.str("LAPOR_REDIS_URL", "") or None
    settings["TRUSTED_PROXIES"] = env.int("INTAKE_TRUSTED_PROXIES", 0)
    return settings


def _limit(config: dict, key: str) -> tuple[RateLimitItem, ...]:
    value = config.get(key) or LIMIT_SETTINGS[key][1]
    try:
        return tuple(parse_many(value))
    except ValueError:
        raise ConfigError(f"{LIMIT_SETTINGS[key][0]} must be limits such as "
                          f"'30 per minute; 300 per hour', got {value!r}") from None


def client_key() -> str:
    """Who is asking: the address, or the /64 for IPv6 (one subscriber gets a whole /64)."""
    address = request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def staff_key() -> str:
    """The staff allowance's key: the token's hash (never the token), else the client."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "staff:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return client_key()


def open311_key() -> str:
    """An Open311 client's allowance: its API key's hash (never the key), else the client."""
    key = request.form.get("api_key", "")
    if key:
        return "open311:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return client_key()


@dataclass(frozen=True)
class Allowance:
    """One allowance: its limits, whose requests share it (`key`), and which count. With
    `counts` None every request counts, before the view runs; otherwise only the answers
    `counts` picks (a failed lookup, a 401), once answered, while a client over it is
    still refused before the view runs."""

    scope: str
    limits: tuple[RateLimitItem, ...]
    message: str
    key: Callable[[], str] = client_key
    counts: Callable[[Response], bool] | None = None


class RateLimited(Problem):
    """A client over an allowance: 429 with Retry-After, as problem+json (Open311 answers
    it in its own format)."""

    def __init__(self, allowance: Allowance, limit: RateLimitItem, wait: int):
        super().__init__(429, "rate_limited", "Too many requests",
                         f"{allowance.message} (at most {limit}); wait {wait} seconds "
                         "(Retry-After) and try again", headers={"Retry-After": str(wait)})
        self.allowance = allowance
        self.limit = limit
        self.wait = wait


class _MemoryCounts(MemoryStorage):
    """limits' memory storage without its timer: it starts a thread 10 ms after every hit
    that finds none running, to drop expired counters (under load, a thread start per
    request or so). Expired counters are already ignored when read; dropping them only
    frees the memory of clients not seen again, which this does on the hitting thread at
    most every PURGE_SECONDS."""

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()  # the one the constructor starts
        self._purged_at = time.monotonic()
        self._purge_lock = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - overrides the private hook
        if time.monotonic() - self._purged_at < PURGE_SECONDS:
            return
        if self._purge_lock.acquire(blocking=False):
            try:
                self._purged_at = time.monotonic()
                self._MemoryStorage__expire_events()
            finally:
                self._purge_lock.release()


class Counts:
    """Where the counts live: Redis when set (shared by replicas), else this process. With
    Redis away, this process, until Redis answers a check (one request in
    REDIS_RECHECK_SECONDS asks)."""

    def __init__(self, redis_url: str | None, prefix: str):
        self.prefix = prefix
        self.memory = SlidingWindowCounterRateLimiter(_MemoryCounts())
        self.shared = None
        if redis_url:
            self.shared = SlidingWindowCounterRateLimiter(storage_from_string(
                redis_url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
                wrap_exceptions=True))
        self._away_since: float | None = None
        self._lock = threading.Lock()

    def limiter(self) -> SlidingWindowCounterRateLimiter:
        if self.shared is None:
            return self.memory
        away = self._away_since
        if away is None:
            return self.shared
        if time.monotonic() - away >= REDIS_RECHECK_SECONDS:
            with self._lock:
                if self._away_since == away:
                    self._away_since = time.monotonic()  # one request checks, not all
                else:
                    return self.limiter()
            if _answers(self.shared):
                self._away_since = None
                log.info("rate limit storage answers again; counting there")
                return self.shared
        return self.memory

    def run(self, action: str, limit: RateLimitItem, scope: str, key: str):
        """(what the limiter's `action`, hit or test, answers, the limiter that answered)."""
        limiter = self.limiter()
        try:
            return getattr(limiter, action)(limit, self.prefix, scope, key), limiter
        except StorageError as exc:
            if limiter is self.memory:
                raise
            with self._lock:
                first = self._away_since is None
                if first:
                    self._away_since = time.monotonic()
            if first:
                log.warning("rate limit storage unreachable (%s); counting in memory, per "
                            "replica, until it answers again", type(exc.storage_error).__name__)
            return getattr(self.memory, action)(limit, self.prefix, scope, key), self.memory


def _answers(limiter: SlidingWindowCounterRateLimiter) -> bool:
    try:
        return bool(limiter.storage.check())
    except Exception:  # noqa: BLE001 - any failure to answer is "not yet"
        return False


@dataclass
class _Counted:
    """What this request was counted against, for the RateLimit fields."""

    allowance: Allowance
    limit: RateLimitItem
    key: str
    limiter: SlidingWindowCounterRateLimiter
    over: bool = False


def install(app: Flask) -> Counts | None:
    """Rate-limits the API's endpoints of `app` as its config says."""
    config = app.config
    if not config.get("RATE_LIMIT_ENABLED", True):
        return None
    counts = Counts(config.get("REDIS_URL"),
                    config.get("RATE_LIMIT_KEY_PREFIX", "lapor-intake"))

    failures = Allowance(
        "report-lookup-failures", _limit(config, "RATE_LIMIT_LOOKUP_FAILURES"),
        "Too many lookups of unknown reports or with wrong access tokens from this network",
        counts=lambda response: response.status_code in LOOKUP_FAILURE_STATUSES)
    reporter = Allowance("reporter-actions", _limit(config, "RATE_LIMIT_REPORTER"),
                         "Too many replies, ratings and appeals from this network")
    staff = Allowance("staff", _limit(config, "RATE_LIMIT_STAFF"),
                      "Too many requests with this staff token", key=staff_key)
    staff_failures = Allowance(
        "staff-auth-failures", _limit(config, "RATE_LIMIT_STAFF_FAILURES"),
        "Too many requests without a valid staff token from this network",
        counts=lambda response: response.status_code == 401)
    # Open311: submissions per API key, reads per client like the API's report lookups;
    # requests, requests.xml and requests.json are one allowance, not three.
    open311_reads = Allowance("open311-reads", _limit(config, "RATE_LIMIT_READ"),
                              "Too many Open311 requests from this network")
    open311_submit = Allowance("open311-submit", _limit(config, "RATE_LIMIT_OPEN311_SUBMIT"),
                               "Too many service requests with this api_key", key=open311_key)

    guarded: dict[str, list[Allowance]] = {}
    for endpoint, setting in ENDPOINTS.items():
        guarded.setdefault(endpoint, []).append(
            Allowance(endpoint, _limit(config, setting), TOO_MANY[endpoint]))
    for endpoint in REPORTER_ENDPOINTS:
        guarded.setdefault(endpoint, []).append(reporter)
    for endpoint in LOOKUP_ENDPOINTS:  # checked first: a guesser is refused before counting
        guarded.setdefault(endpoint, []).insert(0, failures)
    for endpoint in app.view_functions:
        if endpoint.startswith("staff."):
            guarded[endpoint] = [staff_failures, staff]
        elif endpoint.startswith("open311."):
            guarded[endpoint] = [open311_submit if endpoint.startswith("open311.create_request")
                                 else open311_reads]
    for endpoint, allowances in guarded.items():
        app.view_functions[endpoint] = _guard(app.view_functions[endpoint],
                                              tuple(allowances), counts)
    app.after_request(_after(counts))
    app.extensions["lapor_rate_limits"] = counts
    return counts


def _guard(view, allowances: tuple[Allowance, ...], counts: Counts):
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        counted = g.setdefault("rate_limits", [])
        for allowance in allowances:
            key = allowance.key()
            action = "hit" if allowance.counts is None else "test"
            for limit in allowance.limits:
                allowed, limiter = counts.run(action, limit, allowance.scope, key)
                counted.append(_Counted(allowance, limit, key, limiter, over=not allowed))
                if not allowed:
                    raise RateLimited(allowance, limit, _seconds_to_reset(counts, counted[-1])
                                      or 1)
        return make_response(view(*args, **kwargs))

    return guarded


def _after(counts: Counts):
    def count_answers_and_add_fields(response: Response) -> Response:
        counted = g.get("rate_limits")
        if not counted:
            return response
        try:
            # Answers that count only once answered (failed lookups, 401s).
            done = set()
            for entry in counted:
                allowance = entry.allowance
                if allowance.counts is None or entry.over or allowance.scope in done:
                    continue
                done.add(allowance.scope)
                if allowance.counts(response):
                    for limit in allowance.limits:
                        counts.run("hit", limit, allowance.scope, entry.key)
            # The fields speak of the limit refused, else of the shortest window counted.
            shown = next((entry for entry in counted if entry.over), None) or min(
                counted, key=lambda entry: entry.limit.get_expiry())
            stats = shown.limiter.get_window_stats(shown.limit, counts.prefix,
                                                   shown.allowance.scope, shown.key)
        except Exception as exc:  # noqa: BLE001 - storage trouble: answer without the fields
            log.warning("rate limit state unavailable (%s)", type(exc).__name__)
            return response
        response.headers["RateLimit-Limit"] = str(shown.limit.amount)
        response.headers["RateLimit-Remaining"] = str(max(0, stats.remaining))
        response.headers["RateLimit-Reset"] = str(_seconds_left(stats))
        return response

    return count_answers_and_add_fields


def _seconds_to_reset(counts: Counts, entry: _Counted) -> int:
    return _seconds_left(entry.limiter.get_window_stats(
        entry.limit, counts.prefix, entry.allowance.scope, entry.key))


def _seconds_left(stats: WindowStats) -> int:
    """Whole seconds until the window of `stats` resets (what Retry-After and
    RateLimit-Reset say)."""
    return max(0, math.ceil(stats.reset_time - time.time()))
