"""Bearer tokens and roles: who may do what (SPEC §7)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, text

from models import ApiToken
from tests.admin_api.conftest import ADMIN_TOKEN, make_client

ADMIN_ONLY = [
    ("POST", "/api/v1/clients", {"name": "X"}),
    ("PATCH", "/api/v1/clients/{client}", {"notes": "x"}),
    ("DELETE", "/api/v1/clients/{client}", None),
    ("POST", "/api/v1/clients/{client}/domains", {"domain": "x.example.com"}),
    ("DELETE", "/api/v1/clients/{client}/domains/acme.com", None),
    ("POST", "/api/v1/clients/{client}/contracts", {"name": "c", "type": "hourly"}),
    ("POST", "/api/v1/clients/{client}/contacts", {"first_name": "a", "last_name": "b", "email": "a@acme.com"}),
    ("POST", "/api/v1/slas", {"name": "s", "resolution_minutes": 60}),
    ("POST", "/api/v1/threshold-profiles", {"name": "p"}),
    ("POST", "/api/v1/onboarding", {"client": {"name": "Y"}}),
    ("POST", "/api/v1/mailboxes", {"name": "m", "host": "h", "username": "u", "password": "p"}),
    ("POST", "/api/v1/tokens", {"name": "t", "role": "admin"}),
    ("DELETE", "/api/v1/tokens/1", None),
    ("POST", "/api/v1/inbound/1/replay", None),
]

READABLE = [
    "/api/v1/clients", "/api/v1/clients/{client}", "/api/v1/clients/{client}/contacts",
    "/api/v1/clients/{client}/contracts", "/api/v1/contacts", "/api/v1/slas",
    "/api/v1/threshold-profiles", "/api/v1/tickets", "/api/v1/inbound", "/api/v1/mailboxes",
    "/api/v1/tokens", "/api/v1/domains/mail.acme.com",
]


def test_health_needs_no_token(anonymous):
    assert anonymous.get("/healthz").status_code == 200
    ready = anonymous.get("/readyz").json()
    assert ready["checks"]["database"] == "ok"


def test_a_request_without_a_token_is_401(anonymous):
    response = anonymous.get("/api/v1/clients")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_unknown_token_is_401(client):
    response = client.get("/api/v1/clients", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


def test_a_technician_may_not_change_configuration(admin, technician):
    client = make_client(admin)
    answers = {
        f"{method} {path}": technician.request(method, path.format(client=client["id"]), json=body).status_code
        for method, path, body in ADMIN_ONLY
    }
    assert answers == {key: 403 for key in answers}
    assert admin.ok("GET", f"/api/v1/clients/{client['id']}")["domains"] == ["acme.com"]


def test_a_technician_may_read_everything(admin, technician):
    client = make_client(admin)
    answers = {path: technician.get(path.format(client=client["id"])).status_code for path in READABLE}
    assert answers == {path: 200 for path in READABLE}


def test_a_technician_may_open_and_update_tickets(admin, technician):
    client = make_client(admin)
    contact = admin.ok("POST", f"/api/v1/clients/{client['id']}/contacts", 201,
                       json={"first_name": "A", "last_name": "B", "email": "a@acme.com"})
    ticket = technician.ok("POST", "/api/v1/tickets", 201,
                           json={"contact_id": contact["id"], "subject": "Printer", "body": "jammed"})
    updated = technician.ok("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"status": "pending"})
    assert updated["status"] == "pending"


def test_the_database_holds_only_the_hash_of_a_token(admin, api_engine):
    issued = admin.ok("POST", "/api/v1/tokens", 201, json={"name": "ci", "role": "admin"})
    secret = issued["token"]
    with api_engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM api_tokens")) for v in row)
        stored = conn.execute(select(ApiToken.token_hash).where(ApiToken.id == issued["id"])).scalar_one()
    assert secret not in dump
    assert stored == hashlib.sha256(secret.encode()).hexdigest()


def test_a_token_is_shown_once_and_listed_without_its_secret(admin):
    issued = admin.ok("POST", "/api/v1/tokens", 201, json={"name": "ci", "role": "technician"})
    listed = admin.ok("GET", "/api/v1/tokens")
    assert listed["total"] == 2  # the configured admin token and this one
    assert all("token" not in item and "token_hash" not in item for item in listed["items"])
    assert issued["token"] not in str(listed)


def test_a_revoked_token_stops_working(admin, client):
    issued = admin.ok("POST", "/api/v1/tokens", 201, json={"name": "old", "role": "admin"})
    headers = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/api/v1/clients", headers=headers).status_code == 200
    admin.ok("DELETE", f"/api/v1/tokens/{issued['id']}", 204)
    assert client.get("/api/v1/clients", headers=headers).status_code == 401
    listed = admin.ok("GET", "/api/v1/tokens")["items"]
    assert next(t for t in listed if t["id"] == issued["id"])["revoked_at"] is not None


def test_a_token_remembers_when_it_was_last_used(admin, client):
    issued = admin.ok("POST", "/api/v1/tokens", 201, json={"name": "ci", "role": "technician"})
    assert issued["last_used_at"] is None
    client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {issued['token']}"})
    listed = admin.ok("GET", "/api/v1/tokens")["items"]
    assert next(t for t in listed if t["id"] == issued["id"])["last_used_at"] is not None


def test_the_configured_admin_token_is_registered_on_first_use_without_start_up(app, api_engine):
    import asyncio

    import httpx
    from httpx import ASGITransport

    async def call() -> int:  # ASGITransport runs no lifespan: nothing registered the token at start
        async with httpx.AsyncClient(transport=ASGITransport(app=app), base_url="http://api") as http:
            return (await http.get("/api/v1/clients", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).status_code

    assert asyncio.run(call()) == 200
    with api_engine.connect() as conn:
        stored = conn.execute(
            select(ApiToken.last_used_at).where(ApiToken.token_hash == hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest())
        ).scalar_one()
    assert stored is not None


def test_revoking_an_unknown_token_is_404(admin):
    assert admin.delete("/api/v1/tokens/999").status_code == 404


def test_the_configured_admin_token_exists_as_an_admin_token(admin, api_engine):
    admin.ok("GET", "/api/v1/clients")
    with api_engine.connect() as conn:
        role = conn.execute(
            select(ApiToken.role).where(ApiToken.token_hash == hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest())
        ).scalar_one()
    assert role == "admin"


def test_token_create_command_prints_a_working_token_once(pg_url, monkeypatch, capsys, app):
    from fastapi.testclient import TestClient

    from models.db import dispose_engines
    from ticketpost.cli import main
    from core.settings import reset_settings

    monkeypatch.setenv("TICKETPOST_DATABASE_URL", pg_url)
    reset_settings()
    try:
        assert main(["token", "create", "--role", "technician", "--name", "nightly"]) == 0
    finally:
        dispose_engines()
    out = capsys.readouterr()
    secret = out.out.strip()
    assert secret and secret not in out.err
    with TestClient(app) as http:
        assert http.get("/api/v1/tickets", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        assert http.post("/api/v1/slas", headers={"Authorization": f"Bearer {secret}"},
                         json={"name": "x", "resolution_minutes": 5}).status_code == 403
