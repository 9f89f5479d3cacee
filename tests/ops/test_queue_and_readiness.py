"""Queue depth by state comes from the broker at scrape time; /readyz and /metrics tell the truth
about an unreachable broker; the metrics token guards /metrics only when set."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from admin_api.app import create_app
from routing.broker import enqueue, setup_broker
from tests.conftest import free_port
from tests.ops.helpers import Scrape
from admin_api.metrics import render_metrics
from core.settings import Settings


@pytest.fixture
def restore_broker():
    """Tests here replace the process's broker; leave an in-process one behind."""
    yield
    setup_broker(Settings())


def depth(scrape: Scrape, state: str) -> float | None:
    return scrape.value("ticketpost_queue_messages", queue="inbound", state=state)


def test_queue_depth_by_state_is_read_from_redis(
    sqlite_url, sqlite_engine, redis_url, redis_ns, restore_broker
):
    from routing.actors import route_inbound

    settings = Settings(database_url=sqlite_url, redis_url=redis_url, redis_namespace=redis_ns)
    broker = setup_broker(settings)

    def scrape() -> Scrape:
        return Scrape(render_metrics(engine=sqlite_engine, settings=settings).decode())

    empty = scrape()
    assert [depth(empty, s) for s in ("ready", "in_flight", "delayed", "dead_letter")] == [0] * 4

    for inbound_id in (1, 2, 3):  # enqueued, and no worker takes them
        assert enqueue(inbound_id)
    assert depth(scrape(), "ready") == 3

    consumer = broker.consume("inbound", prefetch=1, timeout=1000)
    try:
        taken = next(m for m in consumer if m is not None)  # a worker holds it, no ack yet
        held = scrape()
        assert (depth(held, "ready"), depth(held, "in_flight")) == (2, 1)

        consumer.nack(taken)  # retries exhausted: it becomes a dead letter
        dead = scrape()
        assert (depth(dead, "ready"), depth(dead, "in_flight"), depth(dead, "dead_letter")) == (
            2,
            0,
            1,
        )
    finally:
        consumer.close()

    route_inbound.send_with_options(args=(4,), delay=60_000)  # a retry waiting for its backoff
    assert depth(scrape(), "delayed") == 1
    assert scrape().value("ticketpost_up", component="broker") == 1


def test_queue_depth_of_the_in_process_queue(sqlite_engine, restore_broker):
    setup_broker(Settings())
    for inbound_id in (1, 2):
        assert enqueue(inbound_id)
    scrape = Scrape(render_metrics(engine=sqlite_engine).decode())
    assert depth(scrape, "ready") == 2
    assert depth(scrape, "in_flight") == 0


def unreachable_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def test_readyz_is_503_naming_the_broker_when_redis_is_unreachable(sqlite_url, sqlite_engine):
    settings = Settings(database_url=sqlite_url, redis_url=unreachable_redis())
    client = TestClient(create_app(engine=sqlite_engine, settings=settings))
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"] != "ok"


def test_readyz_is_200_when_database_and_redis_answer(sqlite_url, sqlite_engine, redis_url):
    settings = Settings(database_url=sqlite_url, redis_url=redis_url)
    response = TestClient(create_app(engine=sqlite_engine, settings=settings)).get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_200_in_the_embedded_mode(sqlite_url, sqlite_engine):
    settings = Settings(database_url=sqlite_url)
    response = TestClient(create_app(engine=sqlite_engine, settings=settings)).get("/readyz")
    assert response.status_code == 200


def test_metrics_still_answer_and_say_the_broker_is_down(sqlite_url, sqlite_engine):
    settings = Settings(database_url=sqlite_url, redis_url=unreachable_redis())
    response = TestClient(create_app(engine=sqlite_engine, settings=settings)).get("/metrics")
    assert response.status_code == 200
    scrape = Scrape(response.text)
    assert scrape.value("ticketpost_up", component="broker") == 0
    assert scrape.value("ticketpost_up", component="database") == 1
    assert scrape.value("ticketpost_unrouted_messages") == 0  # the database part still works


def test_metrics_need_no_token_unless_one_is_configured(sqlite_url, sqlite_engine):
    open_app = TestClient(
        create_app(engine=sqlite_engine, settings=Settings(database_url=sqlite_url))
    )
    assert open_app.get("/metrics").status_code == 200

    guarded = TestClient(
        create_app(
            engine=sqlite_engine,
            settings=Settings(database_url=sqlite_url, metrics_token="scrape-secret"),
        )
    )
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = guarded.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert ok.status_code == 200
    assert "ticketpost_inbound_messages" in ok.text


def test_readyz_names_what_is_down_and_leaks_no_hosts_ports_or_errors(sqlite_url):
    """/readyz needs no token, so it says which dependency is down and nothing about where."""
    from models.db import make_engine

    db_port, redis_port = free_port(), free_port()
    engine = make_engine(f"postgresql+psycopg://ticketpost@127.0.0.1:{db_port}/ticketpost",
                         connect_args={"connect_timeout": 2})
    settings = Settings(database_url=sqlite_url, redis_url=f"redis://127.0.0.1:{redis_port}/0")
    response = TestClient(create_app(engine=engine, settings=settings)).get("/readyz")
    engine.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "not ready",
                               "checks": {"database": "unavailable", "broker": "unavailable"}}
    for leak in ("127.0.0.1", str(db_port), str(redis_port), "Error", "connection"):
        assert leak not in response.text


def test_the_api_process_enforces_the_metrics_token_from_its_environment(sqlite_url, tmp_path):
    """`ticketpost api` as docker-compose runs it: TICKETPOST_METRICS_TOKEN guards /metrics."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKETPOST_")},
           "TICKETPOST_DATABASE_URL": sqlite_url, "TICKETPOST_METRICS_TOKEN": "scrape-secret",
           "TICKETPOST_ADMIN_TOKEN": "an-admin-token", "TICKETPOST_LOG_LEVEL": "WARNING"}
    with open(tmp_path / "api.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ticketpost.cli", "api", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
                assert proc.poll() is None, (tmp_path / "api.log").read_text()
            assert httpx.get(f"{base}/metrics").status_code == 401
            admin = {"Authorization": "Bearer an-admin-token"}
            assert httpx.get(f"{base}/metrics", headers=admin).status_code == 401  # API tokens do not open it
            scrape = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer scrape-secret"})
            assert scrape.status_code == 200 and "ticketpost_up" in scrape.text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def test_readyz_and_metrics_answer_while_a_writer_holds_the_sqlite_write_lock(sqlite_url, sqlite_engine):
    """Health and scrapes only read: they never queue behind SMTP commits or an import."""
    import sqlite3

    from sqlalchemy.engine import make_url

    client = TestClient(create_app(engine=sqlite_engine, settings=Settings(database_url=sqlite_url)))
    writer = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE clients SET notes = 'busy'")
    try:
        ready = client.get("/readyz")
        scrape = client.get("/metrics")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    assert scrape.status_code == 200 and "ticketpost_up{component=\"database\"} 1.0" in scrape.text
