"""TICKETPOST_ADMIN_TOKEN: revoking it sticks, and a new value rotates it (issue 15 item 9: a
revoked configured token came back on its next use)."""

from __future__ import annotations

import warnings

from core.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

OLD, NEW = "automation-token-one", "automation-token-two"


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def started(engine, url: str, admin_token: str) -> TestClient:
    """The API as a process started with TICKETPOST_ADMIN_TOKEN=admin_token (lifespan runs)."""
    from admin_api.app import create_app

    return TestClient(create_app(engine=engine, settings=Settings(database_url=url, admin_token=admin_token)))


def env_tokens(http: TestClient, secret: str) -> list[dict]:
    items = http.get("/api/v1/tokens", headers=bearer(secret)).json()["items"]
    return [t for t in items if t["name"] == "TICKETPOST_ADMIN_TOKEN"]


def test_a_revoked_configured_token_stays_revoked_on_use_and_across_restarts(engine, database_url):
    with started(engine, database_url, OLD) as http:
        other = http.post("/api/v1/tokens", json={"name": "ops", "role": "admin"}, headers=bearer(OLD)).json()
        (configured,) = env_tokens(http, OLD)
        assert http.delete(f"/api/v1/tokens/{configured['id']}", headers=bearer(other["token"])).status_code == 204
        assert http.get("/api/v1/clients", headers=bearer(OLD)).status_code == 401
        assert http.get("/api/v1/clients", headers=bearer(OLD)).status_code == 401
    with started(engine, database_url, OLD) as http:  # a restart with the same value
        assert http.get("/api/v1/clients", headers=bearer(OLD)).status_code == 401
        (listed,) = env_tokens(http, other["token"])
        assert listed["revoked_at"] is not None


def test_a_revoked_configured_token_stays_revoked_when_first_checked_by_a_request(engine, database_url):
    import asyncio

    import httpx
    from httpx import ASGITransport

    from admin_api.app import create_app

    with started(engine, database_url, OLD) as http:
        (configured,) = env_tokens(http, OLD)
        assert http.delete(f"/api/v1/tokens/{configured['id']}", headers=bearer(OLD)).status_code == 204
    app = create_app(engine=engine, settings=Settings(database_url=database_url, admin_token=OLD))

    async def call() -> int:  # no lifespan: the auth dependency is the first to see the value
        async with httpx.AsyncClient(transport=ASGITransport(app=app), base_url="http://api") as client:
            return (await client.get("/api/v1/clients", headers=bearer(OLD))).status_code

    assert asyncio.run(call()) == 401


def test_a_new_value_rotates_the_configured_token(engine, database_url):
    with started(engine, database_url, OLD) as http:
        assert http.get("/api/v1/clients", headers=bearer(OLD)).status_code == 200
    with started(engine, database_url, NEW) as http:
        assert http.get("/api/v1/clients", headers=bearer(NEW)).status_code == 200
        assert http.get("/api/v1/clients", headers=bearer(OLD)).status_code == 401
        old, new = sorted(env_tokens(http, NEW), key=lambda t: t["id"])
        assert old["revoked_at"] is not None and new["revoked_at"] is None
    with started(engine, database_url, OLD) as http:  # going back to the old value does not revive it
        assert http.get("/api/v1/clients", headers=bearer(OLD)).status_code == 401
    with started(engine, database_url, NEW) as http:
        assert http.get("/api/v1/clients", headers=bearer(NEW)).status_code == 200


def test_tokens_issued_through_the_api_survive_a_rotation(engine, database_url):
    with started(engine, database_url, OLD) as http:
        issued = http.post("/api/v1/tokens", json={"name": "ci", "role": "technician"}, headers=bearer(OLD)).json()
    with started(engine, database_url, NEW) as http:
        assert http.get("/api/v1/clients", headers=bearer(issued["token"])).status_code == 200


def test_the_configured_token_name_is_reserved(engine, database_url):
    with started(engine, database_url, OLD) as http:
        response = http.post("/api/v1/tokens", json={"name": "TICKETPOST_ADMIN_TOKEN", "role": "admin"},
                             headers=bearer(OLD))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
