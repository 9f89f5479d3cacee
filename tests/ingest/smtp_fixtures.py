"""Shared pieces of the SMTP tests: a running intake stack, real servers started per test, waits.

Everything here talks real protocols on 127.0.0.1: the SMTP listener, PostgreSQL, Redis. Servers
a test starts (a private ``redis-server``, a ``ticketpost`` process) bind free ports and are
stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import InboundMessage, TicketMessage
from models.db import dispose_engines, make_engine
from tests.conftest import free_port, port_open, service_missing
from bench.tls import self_signed_cert  # noqa: F401  (re-exported for the SMTP tests)
from core.settings import Settings, get_settings, reset_settings

REPO = Path(__file__).resolve().parents[2]


def wait_until(condition, *, timeout: float = 30.0, interval: float = 0.05, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    pytest.fail(f"gave up waiting for {what or condition!r} after {timeout} s")


def message(n: int, *, sender: str = "alice@acme.example", subject: str | None = None) -> bytes:
    """A small, unique RFC 5322 message (its Message-ID carries ``n``)."""
    return (
        f"From: Alice Example <{sender}>\r\n"
        f"To: help@msp.example\r\n"
        f"Subject: {subject or f'printer number {n} is jammed'}\r\n"
        f"Message-ID: <msg-{n}-{os.getpid()}-{time.monotonic_ns()}@acme.example>\r\n"
        f"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        f"\r\n"
        f"Hello, message {n}.\r\n"
    ).encode()


# --- counting what the database holds ----------------------------------------------------------


def inbound_rows(engine) -> list[InboundMessage]:
    from models.db import session_scope

    with session_scope(engine) as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def count_inbound(engine, **where) -> int:
    from models.db import session_scope

    with session_scope(engine) as session:
        query = select(func.count()).select_from(InboundMessage)
        for key, value in where.items():
            query = query.where(getattr(InboundMessage, key) == value)
        return session.scalar(query)


def ticket_messages_per_inbound(engine) -> dict[int, int]:
    """inbound id → how many ticket messages were written for it."""
    from models.db import session_scope

    with session_scope(engine) as session:
        rows = session.execute(
            select(TicketMessage.inbound_id, func.count())
            .where(TicketMessage.inbound_id.is_not(None))
            .group_by(TicketMessage.inbound_id)
        ).all()
        return {inbound_id: n for inbound_id, n in rows}


def assert_each_routed_once(engine, expected: int) -> None:
    """Exactly ``expected`` inbound messages, every one routed, none written to a ticket twice."""
    rows = inbound_rows(engine)
    assert len(rows) == expected, f"{len(rows)} inbound messages stored, expected {expected}"
    unrouted = [(r.id, r.status, r.reason) for r in rows if r.status != "routed"]
    assert not unrouted, f"not routed: {unrouted[:5]}"
    written = ticket_messages_per_inbound(engine)
    twice = {i: n for i, n in written.items() if n != 1}
    assert not twice, f"inbound messages written to tickets more than once: {twice}"
    ticketed = [r.id for r in rows if r.outcome in ("ticket_created", "ticket_updated", "triaged")]
    assert set(ticketed) == set(written), "every ticketing outcome has exactly one ticket message"


# --- the in-process intake stack ----------------------------------------------------------------


@dataclass
class Stack:
    """SMTP listener + queue + in-process routing worker + sweeper, on one database."""

    settings: Settings
    engine: object
    smtp: object
    worker: object
    sweeper: object

    @property
    def port(self) -> int:
        return self.smtp.port

    def stop(self) -> None:
        from routing.broker import stop_worker

        self.smtp.stop(5)
        if self.sweeper is not None:
            self.sweeper.stop(5)
        if self.worker is not None:
            stop_worker(self.worker, 10)


def configure(monkeypatch, **env) -> Settings:
    """Set TICKETPOST_* variables (keyword names without the prefix) and re-read the settings."""
    for key, value in env.items():
        monkeypatch.setenv(f"TICKETPOST_{key.upper()}", str(value))
    reset_settings()
    return get_settings()


@pytest.fixture
def start_stack(monkeypatch):
    """Factory: start_stack(database_url, worker=True, sweeper=False, **env) → running Stack."""
    from ingest.smtp import SmtpServer
    from ingest.sweeper import Sweeper
    from routing.broker import setup_broker, start_worker

    stacks: list[Stack] = []

    def _start(database_url: str, *, worker: bool = True, sweeper: bool = False, **env) -> Stack:
        env.setdefault("smtp_port", free_port())
        env.setdefault("rate_limit_per_hour", 0)
        env.setdefault("route_min_backoff_ms", 50)
        env.setdefault("route_max_backoff_ms", 200)
        settings = configure(monkeypatch, database_url=database_url, **env)
        engine = make_engine(database_url)
        setup_broker(settings)
        w = start_worker(settings.worker_threads, settings) if worker else None
        s = Sweeper(engine=engine) if sweeper else None
        if s is not None:
            s.start()
        smtp = SmtpServer(settings=settings, engine=engine)
        smtp.start()
        stack = Stack(settings, engine, smtp, w, s)
        stacks.append(stack)
        return stack

    yield _start
    for stack in stacks:
        stack.stop()
        stack.engine.dispose()
    dispose_engines()


# --- a private redis-server ---------------------------------------------------------------------


class RedisServer:
    """A throwaway ``redis-server`` on a free port: no persistence, stopped by PID."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        service_missing("redis-server", "the redis-server binary is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


# --- a TCP link that can be cut (the database "goes away") --------------------------------------


class CuttableLink:
    """A TCP forwarder 127.0.0.1:port → target; ``cut()`` drops all links and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._up = threading.Event()
        self._up.set()
        self._closing = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closing = True
        self.cut()
        self._listener.close()


# --- ticketpost processes -----------------------------------------------------------------------


def ticketpost_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``ticketpost ARGS`` with ``env`` (its TICKETPOST_* only), output to ``log_path``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")}
    full_env.update(env)
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "ticketpost.cli", *args], env=full_env, cwd=str(log_path.parent),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal ``proc`` by its PID and wait; kill it if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"process {proc.pid} did not exit within {timeout} s of signal {sig}")
    return proc.returncode


