"""Database trouble over HTTP: a deadlock the API loses is a 409 (retry), a database that does not
answer is a 503 with Retry-After; never a 500, never the driver's text."""

from __future__ import annotations

import threading
import time

import httpx
import psycopg
from sqlalchemy.engine import make_url

from core.settings import Settings
from models.db import make_engine
from tests.admin_api.served import serve
from tests.conftest import free_port

ADMIN = "db-errors-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_a_deadlock_the_api_loses_is_a_409_and_changes_nothing(pg_url):
    from admin_api.app import create_app

    engine = make_engine(pg_url)
    with serve(create_app(engine=engine, settings=Settings(database_url=pg_url, admin_token=ADMIN))) as base:
        http = httpx.Client(base_url=base, headers=AUTH, timeout=60)
        client_id = http.post("/api/v1/clients", json={"name": "Acme"}).json()["id"]
        first, second = (
            http.post(f"/api/v1/clients/{client_id}/contacts", json={
                "first_name": name, "last_name": "X", "email": f"{name}@acme.example",
                "is_primary": name == "first"}).json()["id"]
            for name in ("first", "second")
        )
        with psycopg.connect(_libpq(pg_url)) as other:
            # Another transaction holds the current primary's row, then wants the client's row,
            # which the API's switch holds while it waits for that contact: a deadlock. The other
            # side waits 10 s before checking, so PostgreSQL aborts the API's transaction.
            other.execute("SET deadlock_timeout = '10s'")
            other.execute("SELECT id FROM contacts WHERE id = %s FOR UPDATE", (first,))
            answer: dict[str, httpx.Response] = {}
            patch = threading.Thread(target=lambda: answer.setdefault(
                "r", http.patch(f"/api/v1/contacts/{second}", json={"is_primary": True})))
            patch.start()
            with psycopg.connect(_libpq(pg_url), autocommit=True) as watcher:
                for _ in range(200):
                    waiting = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()").fetchone()[0]
                    if waiting:
                        break
                    time.sleep(0.05)
            other.execute("SELECT id FROM clients WHERE id = %s FOR UPDATE", (client_id,))
            other.rollback()
            patch.join(timeout=60)
        response = answer["r"]
        assert response.status_code == 409, response.text
        assert "retry" in response.json()["detail"]
        assert "deadlock" not in response.text.lower()
        assert http.get(f"/api/v1/clients/{client_id}").json()["primary_contact_id"] == first
        http.close()
    engine.dispose()


def test_a_database_that_does_not_answer_is_a_503_without_details():
    from admin_api.app import create_app

    port = free_port()
    url = f"postgresql+psycopg://ticketpost@127.0.0.1:{port}/ticketpost"
    engine = make_engine(url, connect_args={"connect_timeout": 2})
    with serve(create_app(engine=engine, settings=Settings(database_url=url, admin_token=ADMIN))) as base:
        response = httpx.get(f"{base}/api/v1/clients", headers=AUTH, timeout=30)
    engine.dispose()
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert str(port) not in response.text and "127.0.0.1" not in response.text
