"""Rate limits on the API (Flask-Limiter).

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
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time

from flask import Flask, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

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


def settings_from_env(env: Env) -> dict:
    settings = {key: env.str(var, default) for key, (var, default) in LIMIT_SETTINGS.items()}
    settings["REDIS_URL"] = env.str("LAPOR_REDIS_URL", "") or None
    settings["TRUSTED_PROXIES"] = env.int("INTAKE_TRUSTED_PROXIES", 0)
    return settings


def _limit(config: dict, key: str) -> str:
    value = config.get(key) or LIMIT_SETTINGS[key][1]
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{LIMIT_SETTINGS[key][0]} must be limits such as "
                          f"'30 per minute; 300 per hour', got {value!r}") from None
    return value


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


def install(app: Flask) -> Limiter:
    """Rate-limits the API's endpoints of `app` as its config says."""
    config = app.config
    storage = config.get("REDIS_URL") or "memory://"
    options = ({"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT}
               if storage.startswith(("redis://", "rediss://")) else {})
    limiter = Limiter(
        client_key, storage_uri=storage, storage_options=options,
        strategy="sliding-window-counter", key_prefix=config.get("RATE_LIMIT_KEY_PREFIX",
                                                                 "lapor-intake"),
        headers_enabled=False,  # set below, as the IETF fields with seconds to reset
        in_memory_fallback_enabled=True, swallow_errors=True,
        enabled=config.get("RATE_LIMIT_ENABLED", True))

    # Each refusal is counted in lapor_http_requests_total{status="429"}; flask-limiter's own
    # line per refusal would put client addresses in the log.
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)
    # Registered before the limiter's own hook so it runs after it (Flask runs these in
    # reverse), once a failed lookup has been counted.
    app.after_request(_headers(limiter))
    limiter.init_app(app)

    failures = limiter.shared_limit(
        _limit(config, "RATE_LIMIT_LOOKUP_FAILURES"), scope="report-lookup-failures",
        deduct_when=lambda response: response.status_code in LOOKUP_FAILURE_STATUSES,
        error_message="Too many lookups of unknown reports or with wrong access tokens from "
                      "this network")
    reporter = limiter.shared_limit(
        _limit(config, "RATE_LIMIT_REPORTER"), scope="reporter-actions",
        error_message="Too many replies, ratings and appeals from this network")
    staff = limiter.shared_limit(
        _limit(config, "RATE_LIMIT_STAFF"), scope="staff", key_func=staff_key,
        error_message="Too many requests with this staff token")
    staff_failures = limiter.shared_limit(
        _limit(config, "RATE_LIMIT_STAFF_FAILURES"), scope="staff-auth-failures",
        deduct_when=lambda response: response.status_code == 401,
        error_message="Too many requests without a valid staff token from this network")
    for endpoint, setting in ENDPOINTS.items():
        app.view_functions[endpoint] = limiter.limit(
            _limit(config, setting), error_message=TOO_MANY[endpoint])(
            app.view_functions[endpoint])
    for endpoint in REPORTER_ENDPOINTS:
        app.view_functions[endpoint] = reporter(app.view_functions[endpoint])
    for endpoint in LOOKUP_ENDPOINTS:
        app.view_functions[endpoint] = failures(app.view_functions[endpoint])
    for endpoint in [e for e in app.view_functions if e.startswith("staff.")]:
        app.view_functions[endpoint] = staff_failures(staff(app.view_functions[endpoint]))
    # Open311: submissions per API key, reads per client like the API's report lookups.
    open311_reads = limiter.shared_limit(
        _limit(config, "RATE_LIMIT_READ"), scope="open311-reads",
        error_message="Too many Open311 requests from this network")
    # Shared: requests, requests.xml and requests.json are one allowance, not three.
    open311_submit = limiter.shared_limit(
        _limit(config, "RATE_LIMIT_OPEN311_SUBMIT"), scope="open311-submit",
        key_func=open311_key, error_message="Too many service requests with this api_key")
    for endpoint in [e for e in app.view_functions if e.startswith("open311.")]:
        app.view_functions[endpoint] = (
            open311_submit if endpoint.startswith("open311.create_request")
            else open311_reads)(app.view_functions[endpoint])

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded):
        wait = _seconds_to_reset(limiter) or 1
        return Problem(429, "rate_limited", "Too many requests",
                       f"{exc.description} (at most {exc.limit.limit}); wait {wait} seconds "
                       "(Retry-After) and try again",
                       headers={"Retry-After": str(wait)}).response(request.path)

    return limiter


def _seconds_to_reset(limiter: Limiter) -> int | None:
    current = limiter.current_limit
    if current is None:
        return None
    return max(0, math.ceil(current.reset_at - time.time()))


def _headers(limiter: Limiter):
    def add_rate_limit_headers(response):
        current = limiter.current_limit
        if current is None:
            return response
        try:
            remaining, reset = current.remaining, _seconds_to_reset(limiter)
        except Exception as exc:  # noqa: BLE001 - storage trouble: answer without the fields
            log.warning("rate limit state unavailable (%s)", type(exc).__name__)
            return response
        response.headers["RateLimit-Limit"] = str(current.limit.amount)
        response.headers["RateLimit-Remaining"] = str(max(0, remaining))
        response.headers["RateLimit-Reset"] = str(reset)
        return response

    return add_rate_limit_headers
