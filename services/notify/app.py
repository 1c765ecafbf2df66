"""The notify process: the event consumer, the delivery worker, the outbox relay for
notification outcomes and the metrics/health endpoint, started and drained together."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from services.infra import db, messaging
from services.infra.config import (
    DEFAULT_CONSUMER_BATCH,
    DEFAULT_CONSUMER_GATHER,
    ConfigError,
    Env,
)
from services.infra.lifecycle import Budget, loops_healthy
from services.infra.outbox import Outbox
from services.infra.retention import Retention, RetentionSettings
from services.infra.telemetry import OpsServer
from services.notify import payloads, retry, store
from services.notify.channels import (
    GatewaySettings,
    SmtpSettings,
    parse_address_list,
    parse_gateway,
    parse_smtp_url,
    sms,
)
from services.notify.handler import EventHandler
from services.notify.worker import DeliveryWorker, WorkerSettings

log = logging.getLogger(__name__)

DEFAULT_SMTP_URL = "smtp://127.0.0.1:1025"
DEFAULT_MAIL_FROM = "LAPOR! <no-reply@lapor.localhost>"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Settings:
    database_url: str
    amqp_url: str
    smtp: SmtpSettings = field(default_factory=lambda: parse_smtp_url(DEFAULT_SMTP_URL))
    mail_from: str = DEFAULT_MAIL_FROM
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9102
    retry_delays: tuple[float, ...] = retry.DEFAULT_DELAYS
    webhook_timeout: float = 10.0
    smtp_timeout: float = 10.0
    poll_interval: float = 1.0
    public_url: str = DEFAULT_PUBLIC_URL
    log_level: str = "INFO"
    workers: int = 8
    # The whole ordered stop fits in this (LAPOR_SHUTDOWN_SECONDS); a send cut short by it
    # is sent again after its lease (agencies dedupe on X-Lapor-Delivery).
    shutdown_seconds: float = 20.0
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    # Escalations to national level are emailed here (none: only the ADMIN-NASIONAL webhook).
    national_admin_emails: tuple[str, ...] = ()
    # SMS and WhatsApp gateways (None: not configured, reporters are reached on the next
    # channel they gave); an SMS is cut to fit sms_max_parts parts.
    sms_gateway: GatewaySettings | None = None
    whatsapp_gateway: GatewaySettings | None = None
    gateway_timeout: float = 10.0
    sms_max_parts: int = 3
    consumer_batch: int = DEFAULT_CONSUMER_BATCH
    consumer_gather: float = DEFAULT_CONSUMER_GATHER
    # A relay round's events of one type as one message (LAPOR_EVENT_BATCHES).
    event_batches: bool = True
    # How long the outbox relay waits, once woken, for more outcome events before it sends
    # (NOTIFY_OUTBOX_GATHER): deliveries are recorded one by one, and their outcomes feed
    # timelines and ticket histories, which a tenth of a second does not hurt.
    outbox_gather: float = 0.1

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = env or Env()
        smtp_url = env.str("NOTIFY_SMTP_URL", DEFAULT_SMTP_URL)
        try:
            smtp = parse_smtp_url(smtp_url)
        except ValueError as exc:
            # The URL may carry a password: name the variable, not the value.
            raise ConfigError(f"NOTIFY_SMTP_URL: {exc}") from None
        raw_delays = env.str("NOTIFY_RETRY_DELAYS", ",".join(
            f"{d:g}" for d in retry.DEFAULT_DELAYS))
        try:
            delays = retry.parse_delays(raw_delays)
        except ValueError as exc:
            raise ConfigError(f"NOTIFY_RETRY_DELAYS must be seconds separated by commas "
                              f"({exc}), got {raw_delays!r}") from None
        try:
            admin_emails = parse_address_list(env.str("NOTIFY_NATIONAL_ADMIN_EMAILS", ""))
        except ValueError as exc:
            raise ConfigError(f"NOTIFY_NATIONAL_ADMIN_EMAILS must be email addresses separated "
                              f"by commas: {exc}") from None
        try:
            max_parts = sms.max_parts_from(env.str("NOTIFY_SMS_MAX_PARTS", str(cls.sms_max_parts)))
        except ValueError as exc:
            raise ConfigError(f"NOTIFY_SMS_MAX_PARTS: {exc}") from None
        public_url = env.str("LAPOR_PUBLIC_URL", DEFAULT_PUBLIC_URL)
        if not public_url.startswith(("http://", "https://")):
            raise ConfigError(f"LAPOR_PUBLIC_URL must be an http(s) URL, got {public_url!r}")
        settings = cls(
            database_url=env.database_url("NOTIFY_DATABASE_URL", "notify"),
            amqp_url=env.amqp_url(),
            consumer_batch=env.consumer_batch(),
            consumer_gather=env.consumer_gather(),
            event_batches=env.event_batches(),
            smtp=smtp,
            mail_from=env.str("NOTIFY_MAIL_FROM", cls.mail_from),
            metrics_host=env.str("NOTIFY_METRICS_HOST", cls.metrics_host),
            metrics_port=env.int("NOTIFY_METRICS_PORT", cls.metrics_port),
            retry_delays=delays,
            webhook_timeout=env.float("NOTIFY_WEBHOOK_TIMEOUT", cls.webhook_timeout),
            smtp_timeout=env.float("NOTIFY_SMTP_TIMEOUT", cls.smtp_timeout),
            poll_interval=env.float("NOTIFY_POLL_INTERVAL", cls.poll_interval),
            public_url=public_url,
            log_level=env.str("LAPOR_LOG_LEVEL", cls.log_level),
            workers=env.int("NOTIFY_WORKERS", cls.workers),
            shutdown_seconds=env.shutdown_seconds(),
            retention=RetentionSettings.from_env(env),
            national_admin_emails=admin_emails,
            sms_gateway=_gateway(env, "SMS"),
            whatsapp_gateway=_gateway(env, "WHATSAPP"),
            gateway_timeout=env.float("NOTIFY_GATEWAY_TIMEOUT", cls.gateway_timeout),
            sms_max_parts=max_parts,
            outbox_gather=env.outbox_gather("NOTIFY_OUTBOX_GATHER", cls.outbox_gather),
        )
        for name, value in (("NOTIFY_WEBHOOK_TIMEOUT", settings.webhook_timeout),
                            ("NOTIFY_GATEWAY_TIMEOUT", settings.gateway_timeout),
                            ("NOTIFY_SMTP_TIMEOUT", settings.smtp_timeout),
                            ("NOTIFY_POLL_INTERVAL", settings.poll_interval),
                            ("NOTIFY_WORKERS", settings.workers)):
            if not value > 0:
                raise ConfigError(f"{name} must be greater than 0, got {value!r}")
        # Read here, not on the first webhook, so a bad link setting stops notify at start.
        payloads.attachment_links_from_env(env)
        return settings

    def __repr__(self) -> str:  # the URLs may carry passwords
        return (f"Settings(metrics={self.metrics_host}:{self.metrics_port}, smtp={self.smtp!r}, "
                f"sms={self.sms_gateway!r}, whatsapp={self.whatsapp_gateway!r})")


def _read_file(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the file ({exc.strerror})") from None


def _gateway(env: Env, channel: str) -> GatewaySettings | None:
    """NOTIFY_<CHANNEL>_GATEWAY_URL, _AUTH (or _AUTH_FILE: the whole Authorization value) and
    _TEMPLATE (the JSON body); None when no URL is set."""
    prefix = f"NOTIFY_{channel}_GATEWAY"
    url = env.str(f"{prefix}_URL", "")
    if not url:
        for extra in ("AUTH", "AUTH_FILE", "TEMPLATE"):
            if env.str(f"{prefix}_{extra}", ""):
                raise ConfigError(f"{prefix}_{extra} is set but {prefix}_URL is not: set the "
                                  f"gateway's URL too, or unset both")
        return None
    auth = env.str(f"{prefix}_AUTH", "")
    auth_file = env.str(f"{prefix}_AUTH_FILE", "")
    if auth and auth_file:
        raise ConfigError(f"set {prefix}_AUTH or {prefix}_AUTH_FILE, not both")
    if auth_file:
        auth = _read_file(f"{prefix}_AUTH_FILE", auth_file)
    try:
        return parse_gateway(url, auth, env.str(f"{prefix}_TEMPLATE", ""))
    except ValueError as exc:
        # Name the variable; never quote the URL (it may carry a key) or the header.
        raise ConfigError(f"{prefix}_URL/_AUTH/_TEMPLATE: {exc}") from None


class NotifyService:
    """Everything `python -m services.notify` runs, as one object tests can start in-process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = db.make_engine(settings.database_url)
        db.migrate(self.engine, "notify", store.MIGRATIONS)
        self.outbox = Outbox(self.engine, store.outbox, "notify",
                             lambda: messaging.Publisher(settings.amqp_url, "notify-outbox",
                                                         pack=settings.event_batches),
                             poll_interval=settings.poll_interval,
                             gather=settings.outbox_gather)
        self.worker = DeliveryWorker(self.engine, self.outbox, WorkerSettings(
            smtp=settings.smtp, mail_from=settings.mail_from, public_url=settings.public_url,
            retry_delays=settings.retry_delays, webhook_timeout=settings.webhook_timeout,
            smtp_timeout=settings.smtp_timeout, poll_interval=settings.poll_interval,
            threads=settings.workers, national_admin_emails=settings.national_admin_emails,
            gateways={"sms": settings.sms_gateway, "whatsapp": settings.whatsapp_gateway},
            gateway_timeout=settings.gateway_timeout, sms_max_parts=settings.sms_max_parts))
        self.handler = EventHandler(self.engine, on_new_deliveries=self.worker.wake)
        self.consumer = messaging.Consumer(settings.amqp_url, messaging.QUEUES["notify"],
                                           self.handler, consumer=store.CONSUMER,
                                           batch=lambda: db.batch(self.engine),
                                           batch_max=settings.consumer_batch,
                                           gather=settings.consumer_gather,
                                           prepare=self.handler.prepare)
        self.retention = Retention.standard("notify", self.engine, self.outbox,
                                            store.processed_events, settings.retention)
        loops = [self.consumer.loop, self.outbox.loop, self.retention.loop, *self.worker.loops]
        self.ops = OpsServer(settings.metrics_host, settings.metrics_port, {
            "database": lambda: db.check(self.engine),
            "broker": lambda: self.consumer.consuming.is_set(),
            "loops": loops_healthy(loops),
        }, live={"loops": loops_healthy(loops)})

    @property
    def metrics_port(self) -> int:
        return self.ops.port

    def start(self) -> NotifyService:
        self.outbox.start()
        self.worker.start()
        self.consumer.start()
        self.retention.start()
        self.ops.start()
        # Which reporter channels can send, so an operator sees a missing gateway at start.
        phone = [name for name, gateway in (("sms", self.settings.sms_gateway),
                                            ("whatsapp", self.settings.whatsapp_gateway))
                 if gateway is not None]
        log.info("notify started", extra={"workers": self.settings.workers,
                                          "channels": ["email", "webhook", *phone]})
        return self

    def stop(self) -> None:
        """Drains within one budget: the message in hand is handled and acked, the attempts
        in hand are recorded, the outcome events are flushed to the broker."""
        budget = Budget(self.settings.shutdown_seconds)
        self.consumer.stop(timeout=budget.share(0.3))
        self.worker.stop(timeout=budget.share(0.6))
        self.retention.stop(1.0)
        left = self.outbox.stop(flush_timeout=budget.left() - 2.5)
        self.ops.stop()
        self.engine.dispose()
        log.info("notify stopped", extra={"outbox_left": left,
                                          "seconds": round(budget.seconds - budget.left(), 1)})
