"""Intake's HTTP server and process: waitress with the limits a public endpoint needs, and
one ordered stop within one time budget. `python -m services.intake` and the tests build the
process here, so the tests run exactly what production runs.

Limits, because waitress alone lets a few hundred idle sockets or one huge body take the
server: many connections are allowed (poll(), not select(), so past 1024 descriptors), but
a request must arrive whole — headers and body — within INTAKE_REQUEST_TIMEOUT seconds of
its first byte, or of the connection being opened, else it is answered 408 (or, when not
one byte came, closed); a Content-Length over the body limit is answered 413 straight after
the headers without reading the body, and a chunked body is cut off at the limit.

Stopping (SIGTERM): readiness turns 503 ("draining"), the listening socket closes so new
connections are refused at once instead of being accepted and reset, requests in flight
finish and their answers are written (each with Connection: close), idle connections are
closed, then the outbox relay and the read-model consumer get what is left of
LAPOR_SHUTDOWN_SECONDS."""

from __future__ import annotations

import copy
import functools
import http
import logging
import re
import resource
import threading
import time
from dataclasses import dataclass, field

from flask import Flask
from prometheus_client import Histogram
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask

from services.infra import db
from services.infra.config import DEFAULT_SHUTDOWN_SECONDS, Env
from services.infra.lifecycle import Budget, loops_healthy
from services.infra.retention import Retention, RetentionSettings, delete_older
from services.infra.telemetry import OpsServer
from services.intake import storage
from services.intake.app import MAX_BODY_BYTES, IntakeContext
from services.intake.attachments.api import MULTIPART_SLACK
from services.intake.problems import MEDIA_TYPE, Problem
from services.intake.reports import IDEMPOTENCY_WINDOW

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 32 * 1024
DRAIN_IDLE_GRACE = 0.5  # seconds a connection may stay silent once the drain has begun

# The time a whole request waited for one of the server's threads: not part of
# lapor_http_request_duration_seconds, which runs from when Flask starts on it.
QUEUE_WAIT = Histogram("lapor_http_queue_wait_seconds",
                       "Time a received request waited for a free server thread",
                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
# waitress warns "Task queue depth is N" for every request that finds no idle thread: under
# load that is hundreds of lines a second saying what QUEUE_WAIT measures. A logger of its
# own, disabled, takes those calls.
_UNLOGGED = logging.Logger("waitress.queue.measured")
_UNLOGGED.disabled = True


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    connection_limit: int = 1000
    request_timeout: float = 10.0  # seconds for a whole request to arrive
    idle_timeout: int = 15  # seconds a kept-alive connection may wait for its next request
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9100
    shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @classmethod
    def from_env(cls, env: Env) -> ServerSettings:
        return cls(host=env.str("INTAKE_HOST", cls.host), port=env.int("INTAKE_PORT", cls.port),
                   threads=env.int("INTAKE_THREADS", cls.threads),
                   connection_limit=env.int("INTAKE_CONNECTION_LIMIT", cls.connection_limit),
                   request_timeout=env.float("INTAKE_REQUEST_TIMEOUT", cls.request_timeout),
                   idle_timeout=env.int("INTAKE_IDLE_TIMEOUT", cls.idle_timeout),
                   metrics_host=env.str("INTAKE_METRICS_HOST", cls.metrics_host),
                   metrics_port=env.int("INTAKE_METRICS_PORT", cls.metrics_port),
                   shutdown_seconds=env.shutdown_seconds(),
                   retention=RetentionSettings.from_env(env))


# -- waitress, with a deadline per request and problem+json errors -------------------------

# What waitress answers by itself (the app never sees these requests): status, code, title,
# detail. A transfer coding it cannot read is the client's to fix, so 400 rather than 501.
_SERVER_ERRORS = {
    400: (400, "bad_request", "Bad request",
          "The request is not HTTP this server can read; check the request line and headers"),
    413: (413, "payload_too_large", "Request too large",
          f"Send at most {MAX_BODY_BYTES // 1024} KiB; attachments go separately"),
    431: (431, "headers_too_large", "Request headers too large",
          f"Send at most {MAX_HEADER_BYTES // 1024} KiB of headers"),
    501: (400, "bad_request", "Unsupported transfer coding",
          "Send the body with Content-Length or Transfer-Encoding: chunked"),
}
_UNAVAILABLE = (503, "temporarily_unavailable", "Temporarily unavailable",
                "The service could not complete the request; nothing was saved. Please try "
                "again shortly")
_NO_SNIFF = [("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]


def _status_line(status: int) -> str:
    return f"{status} {http.HTTPStatus(status).phrase}"


# Attachment uploads (services/intake/attachments) get their own, larger body limit and
# request deadline; every other request keeps the small ones.
UPLOAD_PATH = re.compile(r"/api/v1/reports/[^/]+/attachments/?")


class _Parser(HTTPRequestParser):
    upload_limit = 0
    upload_timeout: float | None = None

    def __init__(self, adj, upload_adj=None, upload_timeout=None):
        super().__init__(adj)
        self._upload = (upload_adj, upload_timeout)

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        upload_adj, timeout = self._upload
        if upload_adj is not None and self.command == "POST" and UPLOAD_PATH.fullmatch(
                self.path or ""):
            self.adj = upload_adj  # read for this request's body limit from here on
            self.upload_limit = upload_adj.max_request_body_size - 1 - MULTIPART_SLACK
            self.upload_timeout = timeout


class _ProblemErrorTask(ErrorTask):
    """Waitress's own error answers (bad HTTP, too large) as problem+json like the app's."""

    def execute(self):
        status, code, title, detail = _SERVER_ERRORS.get(self.request.error.code, _UNAVAILABLE)
        limit = getattr(self.request, "upload_limit", 0)
        if status == 413 and limit:
            code, title = "attachment_too_large", "File too large"
            detail = f"Send a file of at most {limit / 2 ** 20:g} MiB"
        body = Problem(status, code, title, detail).body()
        self.status = _status_line(status)
        self.response_headers.extend([("Content-Type", MEDIA_TYPE), *_NO_SNIFF])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Dispatcher(ThreadedTaskDispatcher):
    """waitress's dispatcher, stamping each connection it queues (a connection with a whole
    request to answer) with the moment it was queued."""

    queue_logger = _UNLOGGED

    def add_task(self, task):
        task.queued_at = time.monotonic()
        super().add_task(task)


class _Task(WSGITask):
    def build_response_header(self):
        if self.channel.server.draining:
            self.set_close_on_finish()  # Connection: close, so the client goes elsewhere next
        return super().build_response_header()


class _Channel(HTTPChannel):
    """A connection that knows since when its current request has been arriving."""

    error_task_class = _ProblemErrorTask
    task_class = _Task

    def __init__(self, server, *args, **kwargs):
        super().__init__(server, *args, **kwargs)
        self.parser_class = functools.partial(_Parser, upload_adj=server.upload_adj,
                                              upload_timeout=server.upload_timeout)
        # The first request's clock runs from the moment the connection is accepted.
        self.receiving_since: float | None = time.monotonic()
        self.queued_at: float | None = None  # set by _Dispatcher

    def service(self):
        if self.queued_at is not None:
            QUEUE_WAIT.observe(time.monotonic() - self.queued_at)
            self.queued_at = None
        return super().service()

    def received(self, data):
        if self.request is None and self.receiving_since is None:
            self.receiving_since = time.monotonic()  # these bytes begin a new request
        done = super().received(data)
        if self.request is None:
            self.receiving_since = None  # nothing half-received left
        return done

    def writable(self):
        """waitress's answer, except while a request's task is writing its answer: the task
        holds the buffer's lock, flushes what it writes itself and pulls the loop's trigger
        when the socket did not take it all. Polling for "writable" meanwhile returned at
        once, every time, until the task let go of the lock: measured under load, the loop
        went round eight times a request, taking the interpreter lock from the very thread
        it waited for."""
        if not super().writable():
            return False
        if not self.requests or self.will_close or self.close_when_flushed:
            return True
        if self.outbuf_lock.acquire(False):
            self.outbuf_lock.release()
            return True
        return False

    def send_continue(self):
        if self.request is not None and self.request.error is not None:
            # An error answer (413) comes next: do not invite the client to send the body.
            self.request.expect_continue = False
            return
        super().send_continue()

    def overdue(self, now: float, timeout: float) -> bool:
        timeout = getattr(self.request, "upload_timeout", None) or timeout
        return (self.receiving_since is not None and now - self.receiving_since > timeout
                and not self.requests and not (self.will_close or self.close_when_flushed))

    def time_out(self) -> None:
        """Ends a request that did not arrive in time (on the server's loop thread)."""
        self.receiving_since = None
        with self.requests_lock:
            partial, self.request = self.request, None
            if partial is None:
                self.will_close = True  # not one byte of a request: nothing to answer
                return
            partial.close()
            status, code, title, detail = (
                408, "request_timeout", "Request not received in time",
                "The whole request (headers and body) must arrive within "
                f"{self.server.request_timeout:g} seconds; send it again")
            body = Problem(status, code, title, detail).body()
            head = "".join(f"{name}: {value}\r\n" for name, value in [
                ("Content-Type", MEDIA_TYPE), ("Content-Length", str(len(body))),
                ("Connection", "close"), *_NO_SNIFF])
            answer = f"HTTP/1.1 {_status_line(status)}\r\n{head}\r\n".encode() + body
            with self.outbuf_lock:
                self.outbufs[-1].append(answer)
                self.current_outbuf_count += len(answer)
                self.total_outbufs_len += len(answer)
            self.close_when_flushed = True

    def idle(self) -> bool:
        """Nothing being received, served or written, and silent for a moment."""
        return (self.request is None and not self.requests and not self.total_outbufs_len
                and time.time() - self.last_activity > DRAIN_IDLE_GRACE)


class _Listener(TcpWSGIServer):
    channel_class = _Channel
    draining = False
    request_timeout = 10.0
    upload_adj: Adjustments | None = None
    upload_timeout: float | None = None

    def maintenance(self, now):
        super().maintenance(now)  # kept-alive connections idle past channel_timeout
        mono = time.monotonic()
        for channel in list(self.active_channels.values()):
            if channel.overdue(mono, self.request_timeout):
                channel.time_out()


class HttpServer:
    """waitress serving `app` with intake's limits, on its own loop thread."""

    def __init__(self, app, settings: ServerSettings):
        adj = Adjustments(
            host=settings.host, port=settings.port, threads=settings.threads,
            connection_limit=settings.connection_limit, channel_timeout=settings.idle_timeout,
            cleanup_interval=1, max_request_body_size=MAX_BODY_BYTES + 1,
            max_request_header_size=MAX_HEADER_BYTES, asyncore_use_poll=True,
            ident="lapor-intake")
        _allow_descriptors(settings.connection_limit)
        # An app without intake's context (the benches' bare endpoint) takes no uploads.
        uploads = getattr(app.extensions.get("lapor"), "attachments", None)
        upload_adj = copy.copy(adj)
        if uploads is not None:
            upload_adj.max_request_body_size = uploads.max_bytes + MULTIPART_SLACK + 1
        self.adj = adj
        self._map: dict = {}
        self.dispatcher = _Dispatcher()
        self.dispatcher.set_thread_count(adj.threads)
        self.listeners = []
        for sockinfo in adj.listen:
            listener = _Listener(app, self._map, dispatcher=self.dispatcher, adj=adj,
                                 sockinfo=sockinfo)
            listener.request_timeout = settings.request_timeout
            listener.upload_adj = upload_adj
            listener.upload_timeout = max(settings.request_timeout,
                                          uploads.upload_seconds if uploads else 0)
            self.listeners.append(listener)
        self.port = int(self.listeners[0].effective_port)
        self._thread: threading.Thread | None = None

    def start(self) -> HttpServer:
        self._thread = threading.Thread(
            target=wasyncore.loop, name="http",
            kwargs={"timeout": self.adj.asyncore_loop_timeout, "map": self._map,
                    "use_poll": True}, daemon=True)
        self._thread.start()
        return self

    def connections(self) -> list[_Channel]:
        return [c for listener in self.listeners for c in list(listener.active_channels.values())]

    def drain(self, timeout: float) -> bool:
        """Stops listening, lets the requests in flight finish and their answers be written,
        closes idle connections, then stops; True when everything was answered in time."""
        deadline = time.monotonic() + timeout
        self._in_loop(self._stop_listening)
        while True:
            self._in_loop(self._close_idle)
            busy = self.connections()
            if not busy or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if busy:
            log.warning("%d connection(s) still busy at the end of the drain; closing them",
                        len(busy))
        self._in_loop(self._close_all)
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
        self.dispatcher.shutdown(cancel_pending=True,
                                 timeout=max(0.1, deadline - time.monotonic()))
        return not busy

    # -- on the loop thread ------------------------------------------------------------------
    def _in_loop(self, fn) -> None:
        """Runs fn on the server's loop thread (which owns the sockets) and waits for it."""
        if self._thread is None or not self._thread.is_alive():
            fn()
            return
        done = threading.Event()

        def thunk():
            try:
                fn()
            finally:
                done.set()

        self.listeners[0].trigger.pull_trigger(thunk)
        if not done.wait(5.0):
            log.warning("the HTTP loop did not run %s within 5s", fn.__name__)

    def _stop_listening(self) -> None:
        for listener in self.listeners:
            listener.draining = True
            if listener.socket is None:
                continue
            # Connections the kernel has completed but waitress has not yet taken would be
            # reset by the close: take them first, and serve them like the others.
            while (accepted := listener.accept()) is not None:
                conn, addr = accepted
                listener.set_socket_options(conn)
                listener.channel_class(listener, conn, listener.fix_addr(addr), listener.adj,
                                       map=self._map)
            wasyncore.dispatcher.close(listener)  # not its trigger: the loop still needs it

    def _close_idle(self) -> None:
        now = time.time()
        for listener in self.listeners:
            listener.maintenance(now)  # request deadlines still apply while draining
        for channel in self.connections():
            if channel.idle():
                channel.will_close = True

    def _close_all(self) -> None:
        for channel in self.connections():
            channel.handle_close()
        wasyncore.close_all(self._map)  # the triggers: the loop ends with an empty map


def _allow_descriptors(connections: int) -> None:
    """Raises this process's open-file limit to fit `connections` plus its other files."""
    wanted = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            log.warning("open files limited to %d: fewer than %d connections will fit; raise "
                        "the hard limit (ulimit -Hn) or lower INTAKE_CONNECTION_LIMIT",
                        new, connections)


# -- the process -----------------------------------------------------------------------------

class IntakeProcess:
    """Everything `python -m services.intake` runs: the HTTP server, metrics and health on
    their own port, the workers the app brought, the retention job."""

    def __init__(self, app: Flask, settings: ServerSettings):
        self.app = app
        self.settings = settings
        self.ctx: IntakeContext = app.extensions["lapor"]
        self.http = HttpServer(app, settings)
        # Confirmed events and the dedupe memory after their windows, and idempotent answers
        # (sealed access tokens) once no retry can need them.
        answers = storage.idempotency_keys
        self.retention = Retention.standard(
            "intake", self.ctx.engine, self.ctx.outbox, storage.processed_events,
            settings.retention, extra={"idempotency_keys": delete_older(
                self.ctx.engine, answers, answers.c.created_at, IDEMPOTENCY_WINDOW,
                answers.c.key_hash)})
        loops = [self.retention.loop]
        if app.config.get("START_WORKERS"):
            loops += [self.ctx.outbox.loop, self.ctx.consumer.loop, self.ctx.regions.loop]
            if self.ctx.attachments is not None and self.ctx.attachments.fetcher is not None:
                loops.append(self.ctx.attachments.fetcher.loop)
        # Liveness: a dead or wedged background loop gets the process restarted.
        # Readiness: the database, and not shutting down (the broker may be away: the
        # outbox keeps what it cannot send).
        self.ops = OpsServer(settings.metrics_host, settings.metrics_port, checks={
            "serving": lambda: not self.ctx.draining.is_set(),
            "database": lambda: db.check(self.ctx.engine)},
            live={"loops": loops_healthy(loops)})

    @property
    def port(self) -> int:
        return self.http.port

    def start(self) -> IntakeProcess:
        self.ops.start()
        self.http.start()
        self.retention.start()
        log.info("intake listening on http://%s:%s", self.settings.host, self.http.port)
        return self

    def stop(self) -> int:
        """The ordered stop, within settings.shutdown_seconds; returns the events left in
        the outbox for the next start."""
        budget = Budget(self.settings.shutdown_seconds)
        self.ctx.draining.set()
        # The requests in flight may use most of the budget, but the workers keep a quarter
        # (at most 5 s) to hand their last events to the broker.
        reserve = min(5.0, budget.seconds / 4)
        answered = self.http.drain(budget.left() - reserve)
        self.retention.stop(min(1.0, budget.left()))
        left = self.ctx.stop_workers(budget.left())
        self.ops.stop()
        self.ctx.engine.dispose()
        log.info("intake stopped", extra={"outbox_left": left, "all_answered": answered,
                                          "seconds": round(budget.seconds - budget.left(), 2)})
        return left
