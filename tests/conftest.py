"""Fixtures shared by the whole suite: real SQLite and PostgreSQL databases, Redis, settings.

With ``TICKETPOST_REQUIRE_SERVICES=1`` (CI), a missing PostgreSQL, Redis or Dovecot fails the
test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from models.base import Base
from models.db import make_engine, migrate
from core.settings import reset_settings

REQUIRE_SERVICES = os.environ.get("TICKETPOST_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get(
    "TICKETPOST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_TEST_URL = os.environ.get("TICKETPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def service_missing(service: str, why: str) -> None:
    """Skip the test for a missing service, or fail it when services are required (CI)."""
    message = f"{service} is not available: {why}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (TICKETPOST_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch):
    """Every test starts from default settings, untouched by the developer's environment."""
    for key in list(os.environ):
        if key.startswith("TICKETPOST_") and key not in (
            "TICKETPOST_REQUIRE_SERVICES",
            "TICKETPOST_TEST_PG_URL",
            "TICKETPOST_TEST_REDIS_URL",
            "TICKETPOST_CORPORA",  # where the real-world mail corpora are (tests.corpora)
        ):
            monkeypatch.delenv(key)
    reset_settings()
    yield
    reset_settings()


# --- SQLite -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path, _sqlite_template) -> str:
    """A fresh, migrated SQLite database file for this test."""
    path = tmp_path / "ticketpost.db"
    shutil.copy(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_engine(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _pg_database():
    """A private PostgreSQL database for this test run, migrated once, dropped at the end."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "not available"
        admin.dispose()
        yield None, f"{type(exc).__name__}: {exc}"
        return
    name = f"tp_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(url)
        yield url, None
    finally:
        from models.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(engine) -> None:
    """Empty every table (PostgreSQL), restarting ids, so each test starts clean."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def pg_url(_pg_database) -> str:
    """The URL of the run's PostgreSQL database, emptied for this test."""
    url, why = _pg_database
    if url is None:
        service_missing("PostgreSQL", why)
    engine = make_engine(url)
    truncate_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def pg_engine(pg_url):
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


# --- either database ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(database_url):
    """An engine on a fresh database, SQLite and PostgreSQL in turn."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def use_database(database_url, monkeypatch):
    """Point TICKETPOST_DATABASE_URL (and so the default engine) at the test database."""
    from models.db import dispose_engines

    monkeypatch.setenv("TICKETPOST_DATABASE_URL", database_url)
    reset_settings()
    yield database_url
    dispose_engines()


# --- Redis --------------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis (a unique key namespace per test is the caller's job)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        service_missing("Redis", f"{type(exc).__name__}: {exc}")
    return REDIS_TEST_URL


@pytest.fixture
def redis_namespace() -> str:
    """A dramatiq/Redis key namespace no other test or process uses."""
    return f"tp-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _fresh_queue_broker():
    """Every test starts without a queue broker: the first use builds one from its settings."""
    yield
    from routing.broker import reset_broker

    reset_broker()


# Fixtures of the SMTP intake tests (start_stack, private_redis), usable by any test module.
pytest_plugins = ["tests.ingest.smtp_fixtures"]

# The private Dovecot of the IMAP tests (fixture ``dovecot``), registered like the SMTP fixtures.
pytest_plugins += ["tests.ingest.dovecot"]
# The OAuth2 token server on loopback (fixture ``token_server``) of the cloud mailbox tests.
pytest_plugins += ["tests.oauth2_server", "tests.graph_server"]


# --- webhooks ----------------------------------------------------------------------------------


@pytest.fixture
def receiver():
    """A real HTTP receiver on 127.0.0.1 (tests.webhooks.receiver), stopped with the webhook
    senders' threads after the test."""
    from routing.webhooks.delivery import stop_senders
    from tests.webhooks.receiver import Receiver

    server = Receiver().start()
    yield server
    stop_senders(5)
    server.stop()
