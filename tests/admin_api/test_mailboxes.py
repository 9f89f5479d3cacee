"""Mailboxes over HTTP: the password is write-only and encrypted at rest."""

from __future__ import annotations

from sqlalchemy import select

from models import Mailbox
from models.secrets import decrypt_secret
from tests.admin_api.conftest import SECRET_KEY

BODY = {"name": "support", "host": "imap.example.com", "username": "support@msp.example",
        "password": "hunter2-very-secret"}


def test_a_mailbox_never_returns_its_password(admin, api_engine):
    created = admin.ok("POST", "/api/v1/mailboxes", 201, json=BODY)
    everything = str(created) + str(admin.ok("GET", "/api/v1/mailboxes")) + str(
        admin.ok("GET", f"/api/v1/mailboxes/{created['id']}"))
    assert "hunter2" not in everything and "password" not in created
    assert created["has_password"] is True and created["health"] == "never_polled"
    assert created["since"] is not None and created["uidvalidity"] is None and created["last_uid"] is None
    with api_engine.connect() as conn:
        stored = conn.execute(select(Mailbox.password_encrypted)).scalar_one()
    assert b"hunter2" not in stored
    assert decrypt_secret(stored, key=SECRET_KEY) == BODY["password"]


def test_a_mailbox_is_changed_and_removed(admin, api_engine):
    created = admin.ok("POST", "/api/v1/mailboxes", 201, json=BODY)
    changed = admin.ok("PATCH", f"/api/v1/mailboxes/{created['id']}",
                       json={"password": "new-secret", "enabled": False, "security": "starttls", "port": 143})
    assert changed["health"] == "disabled" and changed["port"] == 143
    with api_engine.connect() as conn:
        stored = conn.execute(select(Mailbox.password_encrypted)).scalar_one()
    assert decrypt_secret(stored, key=SECRET_KEY) == "new-secret"
    assert admin.patch(f"/api/v1/mailboxes/{created['id']}", json={"security": "tls"}).status_code == 422
    assert admin.post("/api/v1/mailboxes", json=BODY).status_code == 409
    admin.ok("DELETE", f"/api/v1/mailboxes/{created['id']}", 204)
    assert admin.get(f"/api/v1/mailboxes/{created['id']}").status_code == 404


def test_a_mailbox_without_a_secret_key_is_refused_clearly(pg_url, api_engine):
    import warnings

    from admin_api.app import create_app
    from tests.admin_api.conftest import ADMIN_TOKEN
    from core.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    app = create_app(engine=api_engine, settings=Settings(database_url=pg_url, admin_token=ADMIN_TOKEN))
    with TestClient(app) as http:
        response = http.post("/api/v1/mailboxes", json=BODY, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "password"] and "TICKETPOST_SECRET_KEY" in error["msg"]
