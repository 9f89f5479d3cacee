"""Engines, sessions and migrations for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import select
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")

_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def _lower(value):
    """Unicode lower-case for SQLite's ``lower()``; NULL and non-text pass through."""
    return value.lower() if isinstance(value, str) else value


# Execution option of a connection that only reads (see ``read_snapshot``).
READ_ONLY_OPTION = "ticketpost_read_only"


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine; SQLite gets WAL, full sync, foreign keys, a busy timeout and
    ``BEGIN IMMEDIATE``.

    ``BEGIN IMMEDIATE`` makes every SQLite transaction take the write lock up front, so concurrent
    writers queue behind the busy timeout instead of failing with "database is locked" mid-way.
    ``synchronous=FULL``: under WAL, ``NORMAL`` syncs the log only at checkpoints, so a power loss
    (not a process crash) can undo transactions that had committed, after the SMTP ``250`` or the
    IMAP ``\\Seen`` that acknowledged them. ``FULL`` syncs the log at every COMMIT; the SMTP
    listener's group commit and the IMAP batches share one COMMIT among many messages, which keeps
    intake's rate; routing pays one sync per message (BENCHMARKS.md, "Ingest layout, one write
    path and durable SQLite").
    A connection in ``AUTOCOMMIT`` isolation reads without it (each statement on its own).
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None
            # SQLite's own lower() folds only ASCII; client names are unique by lower(name), so
            # make it fold like PostgreSQL's (and Python's): "ÄRZTE GmbH" clashes with "Ärzte GmbH".
            dbapi_connection.create_function("lower", 1, _lower, deterministic=True)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            options = conn.get_execution_options()
            if options.get("isolation_level") == "AUTOCOMMIT":
                return  # each statement on its own (routing reads a message so): no write lock
            if options.get(READ_ONLY_OPTION):
                conn.exec_driver_sql("BEGIN")  # deferred: a WAL read snapshot, no write lock
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    if engine.dialect.driver == "psycopg":
        event.listen(engine, "checkout", _drop_if_server_hung_up)
    return engine


def _drop_if_server_hung_up(dbapi_connection, _record, _proxy) -> None:
    """A free liveness check of a pooled PostgreSQL connection, instead of ``pool_pre_ping``.

    ``pool_pre_ping`` costs a ``SELECT 1`` round trip on every checkout (one per routed message).
    An idle pooled connection has nothing to read (nothing here LISTENs), so instead we only ask
    the kernel, without waiting, whether its socket is readable: when PostgreSQL restarts or a
    backend is terminated, the server sends its FATAL notice and closes the socket, so it is.
    Raising DisconnectionError makes the pool discard the connection and check out another (or a
    new) one, as pre-ping would; a healthy connection with some stray asynchronous message costs
    at worst a reconnect. Not detected (nor cheaply detectable): a peer that vanished without
    closing the socket; the first statement then fails, SQLAlchemy invalidates the whole pool,
    and the caller retries (the queue retries a failed routing attempt).
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise exc.DisconnectionError("the connection is closed")
    poller = select.poll()  # not select.select: that fails for descriptors above 1023
    try:
        poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
        readable = poller.poll(0)
    except (OSError, ValueError) as error:
        raise exc.DisconnectionError(f"the connection is unusable: {error}") from error
    if readable:
        raise exc.DisconnectionError("the server sent something to an idle connection (restart or termination)")


def reading(engine: Engine) -> Engine:
    """``engine`` for reads only: on SQLite its transactions begin deferred (a WAL read
    snapshot) instead of taking the write lock up front, so they never wait for a writer."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection in one read-only transaction that sees one consistent state of the data.

    For long reads (exports) that must never hold up writers: on SQLite a deferred ``BEGIN``
    (a WAL read snapshot, never the write lock that every other transaction here takes up front
    with ``BEGIN IMMEDIATE``), on PostgreSQL ``REPEATABLE READ READ ONLY`` (one snapshot for all
    statements). Only read through it.
    """
    if engine.dialect.name == "sqlite":
        options = {READ_ONLY_OPTION: True}
    else:
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect() as conn:
        conn = conn.execution_options(**options)
        with conn.begin():
            yield conn


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: the configured DATABASE_URL)."""
    if url is None:
        from core.settings import get_settings  # wiring default only

        url = get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests and forked workers)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    """A sessionmaker bound to ``engine`` that keeps loaded objects usable after commit."""
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str):
    """An Alembic Config pointing at our migrations and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str | None = None) -> None:
    """Bring the database at ``url`` to the newest schema (idempotent)."""
    from alembic import command

    if url is None:
        from core.settings import get_settings

        url = get_settings().database_url
    command.upgrade(alembic_config(url), "head")
