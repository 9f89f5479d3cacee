"""Process wiring: ``ticketpost up`` (everything in one process) and the scaled-out roles.

``run_up`` is the embedded default: migrate, then start the routing worker, the sweeper, the SMTP
listener, the admin API (uvicorn, in-process) and the IMAP pollers, print where it listens, and
wait for SIGTERM/SIGINT. ``run_smtp`` and ``run_worker`` are the roles of the production shape
(PostgreSQL + Redis): any number of each can run, on any hosts.

Shutdown, for every shape, in :data:`STOP_ORDER`: first stop accepting (SMTP stops listening and
answers ``421`` to new DATA, IMAP pollers stop fetching, the API stops), let what is in flight
finish (stores already started answer ``250``; routings already started commit), then stop the
workers and the sweeper and exit 0. Messages stored but not yet routed stay ``received`` in the
database and are handed over by the sweeper of the next (or another) process: nothing is lost.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from core.settings import Settings, get_settings

log = logging.getLogger("ticketpost.up")


class StartupError(RuntimeError):
    """Raised when a component cannot start (bad configuration, port in use); says which and why."""


# --- signals -------------------------------------------------------------------------------------


def install_stop_signals() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT; a second one exits at once (code 1)."""
    stop = threading.Event()

    def _handler(signum, _frame):
        if stop.is_set():
            log.warning("second signal: exiting without waiting")
            sys.exit(1)
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop


# --- the admin API served in-process ------------------------------------------------------------


def api_available() -> bool:
    """True when the admin API package can be served (``admin_api.app.create_app`` exists)."""
    return importlib.util.find_spec("admin_api.app") is not None


class ApiServer:
    """uvicorn serving ``admin_api.app.create_app`` in a background thread."""

    def __init__(self, *, settings: Settings, engine) -> None:
        import uvicorn

        from admin_api.app import create_app

        self.settings = settings
        app = create_app(engine=engine, settings=settings)
        config = uvicorn.Config(
            app, host=settings.api_host, port=settings.api_port, log_config=None,
            access_log=False, lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a thread; return once listening. Raised when it cannot bind: StartupError."""
        self._thread = threading.Thread(target=self._serve, name="ticketpost-api", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise StartupError(
                    f"the admin API could not listen on "
                    f"{self.settings.api_host}:{self.settings.api_port}"
                )
            time.sleep(0.02)

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit:  # uvicorn exits on bind errors; start() reports it
            pass

    def stop(self, timeout: float) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)


# --- the running set of components --------------------------------------------------------------


@dataclass
class Running:
    """What one process started, so it can be stopped in the right order."""

    smtp: Any = None
    imap: Any = None
    graph: Any = None  # the Microsoft Graph pollers (ingest.graph.GraphService)
    api: Any = None
    worker: Any = None
    sweeper: Any = None
    outbox: Any = None  # the outbox poller (routing.outbox.dispatcher.OutboxPoller)
    webhooks: Any = None  # the webhook runner (routing.webhooks.delivery.WebhookRunner)
    notes: list[str] = field(default_factory=list)


#: Stop accepting first, then let in-flight work finish, then stop the machinery.
STOP_ORDER: tuple[str, ...] = ("smtp", "imap", "graph", "api", "sweeper", "outbox", "webhooks", "worker")


def _stop(name: str, component: Any, timeout: float) -> None:
    """Stop one started component; the routing worker is a dramatiq Worker with its own stop."""
    if name == "worker":
        from routing.broker import stop_worker

        stop_worker(component, timeout)
    else:
        component.stop(timeout)


def stop_all(running: Running, timeout: float) -> None:
    """Stop every started component in :data:`STOP_ORDER`; a failing stop blocks nothing."""
    for name in STOP_ORDER:
        component = getattr(running, name)
        if component is None:
            continue
        try:
            _stop(name, component, timeout)
        except Exception:  # noqa: BLE001 - keep stopping the rest
            log.exception("stopping failed", extra={"step": name})
    from routing.outbox.transport import close_transports

    close_transports()
    from models.db import dispose_engines

    dispose_engines()


def _outbound(settings: Settings) -> str:
    """Where acknowledgements and notices go, for the start-up banner (password hidden)."""
    if not settings.outbound_url:
        return "off (TICKETPOST_OUTBOUND_URL unset: nothing is sent)"
    from routing.outbox.transport import OutboundConfigError, parse_outbound_url

    try:
        return f"{parse_outbound_url(settings.outbound_url)} from {settings.reply_address}"
    except OutboundConfigError as exc:
        return f"NOT working: {exc}"


def _check_outbound(settings: Settings) -> None:
    """Raised ValueError (OutboundConfigError) when TICKETPOST_OUTBOUND_URL is set but unusable."""
    if settings.outbound_url:
        from routing.outbox.transport import parse_outbound_url

        parse_outbound_url(settings.outbound_url)


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _start_worker_and_sweeper(running: Running, settings: Settings, engine, threads: int) -> None:
    from ingest.sweeper import Sweeper
    from routing.broker import start_worker
    from routing.outbox.dispatcher import OutboxPoller

    running.worker = start_worker(threads, settings)
    running.sweeper = Sweeper(engine=engine)
    running.sweeper.start()
    running.outbox = OutboxPoller(engine=engine, settings=settings)
    running.outbox.start()
    from routing.webhooks.delivery import WebhookRunner

    running.webhooks = WebhookRunner(engine=engine, settings=settings).start()


def _start_imap(running: Running, settings: Settings, engine) -> None:
    if importlib.util.find_spec("ingest.imap") is None:
        running.notes.append("IMAP pollers: not available in this build")
        return
    from ingest.imap import ImapService

    try:
        running.imap = ImapService(engine=engine, settings=settings)
        running.imap.start()
    except Exception as exc:  # noqa: BLE001 - SMTP and the API keep working without IMAP
        log.exception("the IMAP pollers could not start")
        running.imap = None
        running.notes.append(f"IMAP pollers: NOT running ({type(exc).__name__}: {exc})")
        return
    running.notes.append("IMAP pollers: running for enabled mailboxes")
    _start_graph(running, settings, engine)


def _start_graph(running: Running, settings: Settings, engine) -> None:
    """The Graph pollers run wherever the IMAP pollers do (``up`` and the ``imap`` role)."""
    from ingest.graph import GraphService

    try:
        running.graph = GraphService(engine=engine, settings=settings).start()
    except Exception as exc:  # noqa: BLE001 - the rest keeps working without Graph
        log.exception("the Graph pollers could not start")
        running.graph = None
        running.notes.append(f"Graph pollers: NOT running ({type(exc).__name__}: {exc})")
        return
    running.notes.append("Graph pollers: running for enabled graph mailboxes")


def _wait(stop: threading.Event) -> None:
    while not stop.wait(1.0):
        pass


def run_up(settings: Settings | None = None, *, out=None) -> int:
    """``ticketpost up``: everything in one process until SIGTERM/SIGINT; returns the exit code."""
    from ingest.smtp import SmtpConfigError, SmtpServer, check_bind, tls_context
    from models.db import get_engine, migrate
    from routing.broker import setup_broker

    out = out or sys.stdout
    settings = settings or get_settings()
    try:
        check_bind(settings)
        tls_context(settings)
        _check_outbound(settings)
    except (SmtpConfigError, ValueError) as exc:
        print(f"ticketpost up: {exc}", file=sys.stderr)
        return 2
    stop = install_stop_signals()
    try:
        migrate(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - say what failed instead of a traceback
        first_line = (str(exc).splitlines() or [""])[0][:300]
        print(
            f"ticketpost up: cannot migrate the database at {_redacted(settings.database_url)}: "
            f"{type(exc).__name__}: {first_line}",
            file=sys.stderr,
        )
        return 2
    engine = get_engine(settings.database_url)
    broker = setup_broker(settings)
    running = Running()
    try:
        _start_worker_and_sweeper(running, settings, engine, settings.worker_threads)
        running.smtp = SmtpServer(settings=settings, engine=engine)
        running.smtp.start()
        if api_available():
            running.api = ApiServer(settings=settings, engine=engine)
            running.api.start()
        else:
            running.notes.append("admin API: not available in this build")
        _start_imap(running, settings, engine)
    except (OSError, StartupError, SmtpConfigError) as exc:
        print(f"ticketpost up: {exc}", file=sys.stderr)
        stop_all(running, 5)
        return 2
    queue = "Redis " + _redacted(settings.redis_url) if settings.redis_url else "in-process"
    lines = [
        "ticketpost is up",
        f"  SMTP       {settings.smtp_host}:{running.smtp.port}"
        + ("  (STARTTLS)" if running.smtp.tls_context else "")
        + ("" if settings.support_addresses else "  (any recipient: loopback only)"),
    ]
    if running.api is not None:
        lines.append(f"  admin API  http://{settings.api_host}:{settings.api_port}/api/v1")
    lines += [
        f"  database   {_redacted(settings.database_url)}",
        f"  answering  {_outbound(settings)}",
        f"  queue      {queue} ({type(broker).__name__}), "
        f"{settings.worker_threads} worker threads",
        *[f"  {note}" for note in running.notes],
        "Stop with Ctrl-C or SIGTERM.",
    ]
    print("\n".join(lines), file=out, flush=True)
    _wait(stop)
    print("ticketpost: stopping (finishing what is in flight)", file=out, flush=True)
    stop_all(running, settings.shutdown_timeout_s)
    print("ticketpost: stopped", file=out, flush=True)
    return 0


def _require_redis(settings: Settings, role: str) -> str | None:
    if not settings.redis_url:
        return (
            f"`ticketpost {role}` is a role of the scaled-out shape and needs "
            "TICKETPOST_REDIS_URL (the queue between processes); for everything in one process "
            "use `ticketpost up`"
        )
    return None


def run_smtp(settings: Settings | None = None, *, out=None) -> int:
    """``ticketpost smtp``: only the SMTP listener; stored ids go to the Redis queue."""
    from ingest.smtp import SmtpConfigError, SmtpServer
    from models.db import get_engine
    from routing.broker import setup_broker

    out = out or sys.stdout
    settings = settings or get_settings()
    problem = _require_redis(settings, "smtp")
    if problem:
        print(f"ticketpost smtp: {problem}", file=sys.stderr)
        return 2
    stop = install_stop_signals()
    setup_broker(settings)
    running = Running()
    try:
        running.smtp = SmtpServer(settings=settings, engine=get_engine(settings.database_url))
        running.smtp.start()
    except (OSError, SmtpConfigError) as exc:
        print(f"ticketpost smtp: {exc}", file=sys.stderr)
        return 2
    print(
        f"ticketpost smtp: listening on {settings.smtp_host}:{running.smtp.port}, "
        f"queue Redis {_redacted(settings.redis_url)} namespace {settings.redis_namespace}",
        file=out, flush=True,
    )
    _wait(stop)
    stop_all(running, settings.shutdown_timeout_s)
    print("ticketpost smtp: stopped", file=out, flush=True)
    return 0


def run_worker(
    settings: Settings | None = None, *, threads: int | None = None, sweeper: bool = True,
    out=None,
) -> int:
    """``ticketpost worker``: routing threads consuming the Redis queue (plus a sweeper)."""
    from models.db import get_engine
    from routing.broker import setup_broker, start_worker

    out = out or sys.stdout
    settings = settings or get_settings()
    problem = _require_redis(settings, "worker")
    if problem:
        print(f"ticketpost worker: {problem}", file=sys.stderr)
        return 2
    try:
        _check_outbound(settings)
    except ValueError as exc:
        print(f"ticketpost worker: {exc}", file=sys.stderr)
        return 2
    stop = install_stop_signals()
    setup_broker(settings)
    running = Running()
    threads = threads or settings.worker_threads
    if sweeper:
        _start_worker_and_sweeper(running, settings, get_engine(settings.database_url), threads)
    else:
        running.worker = start_worker(threads, settings)
    print(
        f"ticketpost worker: {threads} routing threads on Redis "
        f"{_redacted(settings.redis_url)} namespace {settings.redis_namespace}"
        + (", sweeper on" if sweeper else ""),
        file=out, flush=True,
    )
    _wait(stop)
    stop_all(running, settings.shutdown_timeout_s)
    print("ticketpost worker: stopped", file=out, flush=True)
    return 0
