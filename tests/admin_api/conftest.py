"""Fixtures of the admin API tests: the app on this run's PostgreSQL database, tokens, helpers."""

from __future__ import annotations

import warnings

import pytest

from models.db import make_engine
from core.settings import Settings

ADMIN_TOKEN = "admin-token-for-tests"
SECRET_KEY = "secret-key-for-tests"

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def api_engine(pg_url):
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(pg_url) -> Settings:
    return Settings(database_url=pg_url, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY)


@pytest.fixture
def app(api_engine, settings):
    from admin_api.app import create_app

    return create_app(engine=api_engine, settings=settings)


class Api:
    """A TestClient that sends a bearer token on every request (``token=None`` sends none)."""

    def __init__(self, client: TestClient, token: str | None) -> None:
        self.client, self.token = client, token

    def _headers(self, headers: dict | None) -> dict:
        out = dict(headers or {})
        if self.token is not None:
            out.setdefault("Authorization", f"Bearer {self.token}")
        return out

    def request(self, method: str, url: str, **kwargs):
        kwargs["headers"] = self._headers(kwargs.get("headers"))
        return self.client.request(method, url, **kwargs)

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def post(self, url, **kw):
        return self.request("POST", url, **kw)

    def patch(self, url, **kw):
        return self.request("PATCH", url, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)

    def ok(self, method: str, url: str, status: int = 200, **kw) -> dict:
        """Send the request and insist on ``status``; return the JSON body (or {})."""
        response = self.request(method, url, **kw)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else {}


@pytest.fixture
def client(app):
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def admin(client) -> Api:
    """The API as an admin (TICKETPOST_ADMIN_TOKEN)."""
    return Api(client, ADMIN_TOKEN)


@pytest.fixture
def technician(client, admin) -> Api:
    """The API as a technician, with a token the admin issued."""
    token = admin.ok("POST", "/api/v1/tokens", 201, json={"name": "tech", "role": "technician"})["token"]
    return Api(client, token)


@pytest.fixture
def anonymous(client) -> Api:
    return Api(client, None)


def make_client(api: Api, name: str = "Acme", domains=("acme.com",), **fields) -> dict:
    """Create a client through the API and return its JSON."""
    return api.ok("POST", "/api/v1/clients", 201, json={"name": name, "domains": list(domains), **fields})


def make_contact(api: Api, client_id: int, email: str, **fields) -> dict:
    body = {"first_name": "Ann", "last_name": "Example", "email": email, **fields}
    return api.ok("POST", f"/api/v1/clients/{client_id}/contacts", 201, json=body)
