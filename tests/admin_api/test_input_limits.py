"""Abusive request bodies over real HTTP: capped sizes (413), short 422s that echo no input, and
JSON numbers that JSON answers cannot carry (NaN, Infinity, 1e400) refused as 422s."""

from __future__ import annotations

import httpx
import pytest

from core.settings import Settings
from models.db import make_engine
from tests.admin_api.served import admin_http, serve

ADMIN = "limits-admin-token"
JSON = {"content-type": "application/json"}
MIB = 1024 * 1024


@pytest.fixture
def api(database_url):
    """An httpx client on the admin API served by uvicorn, on SQLite and on PostgreSQL."""
    with admin_http(database_url, token=ADMIN, timeout=120) as client:
        yield client


def test_an_unknown_field_is_named_but_its_value_is_not_echoed(api):
    response = api.post("/api/v1/clients", json={"name": "Acme", "client_secret": "hunter2-very-secret"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "client_secret"]
    assert "hunter2" not in response.text
    assert "input" not in response.json()["detail"][0]


def test_a_huge_invalid_field_gives_a_short_answer(api):
    response = api.post("/api/v1/clients", json={"name": "Acme", "notes": "x" * 900_000})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "notes"]
    assert len(response.content) < 1000


def test_many_errors_give_a_short_answer(api):
    body = {"name": "Acme", **{f"unknown_{i}": "x" * 1000 for i in range(500)}}
    response = api.post("/api/v1/clients", json=body)
    assert response.status_code == 422
    assert len(response.content) < 10_000
    assert response.json()["detail"][-1]["type"] == "too_many_errors"


def test_a_huge_unknown_key_is_not_echoed_whole(api):
    response = api.post("/api/v1/clients", json={"name": "Acme", "k" * 500_000: 1})
    assert response.status_code == 422
    assert len(response.content) < 1000


def test_a_json_body_over_the_limit_is_413(api):
    response = api.post("/api/v1/clients", json={"name": "Acme", "notes": "x" * (2 * MIB)})
    assert response.status_code == 413
    assert api.get("/api/v1/clients").json()["total"] == 0


def test_a_chunked_json_body_over_the_limit_is_413(api):
    def chunks():
        yield b'{"name": "Acme", "notes": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = api.post("/api/v1/clients", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert api.get("/api/v1/clients").json()["total"] == 0


def test_a_csv_import_may_be_far_larger_than_a_json_body(api):
    rows = "".join(f"Client {i:06d},note {'y' * 40}\r\n" for i in range(60_000))  # about 3.5 MB
    response = api.post("/api/v1/imports/clients?dry_run=true", content=("name,notes\r\n" + rows).encode(),
                        headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text[:500]
    assert response.json()["created"] == 60_000


def test_a_csv_import_over_its_limit_is_413(database_url):
    from admin_api.app import create_app

    engine = make_engine(database_url)
    settings = Settings(database_url=database_url, admin_token=ADMIN, api_max_import_bytes=100_000)
    with serve(create_app(engine=engine, settings=settings)) as base:
        body = b"name\r\n" + b"".join(b"Client %06d\r\n" % i for i in range(20_000))
        response = httpx.post(f"{base}/api/v1/imports/clients", content=body, timeout=60,
                              headers={"Authorization": f"Bearer {ADMIN}", "content-type": "text/csv"})
    engine.dispose()
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/clients", '{"name": "Acme", "rank": NaN}', ["body", "rank"]),
        ("/api/v1/clients", '{"name": Infinity}', ["body", "name"]),
        ("/api/v1/threshold-profiles", '{"name": "p", "thresholds": {"cpu_percent": NaN}}',
         ["body", "thresholds", "cpu_percent"]),
        ("/api/v1/threshold-profiles", '{"name": "p", "thresholds": {"cpu_percent": 1e400}}',
         ["body", "thresholds", "cpu_percent"]),
        ("/api/v1/slas", '{"name": "s", "first_response_minutes": -Infinity}', ["body", "first_response_minutes"]),
        ("/api/v1/clients/1/contracts", '{"name": "c", "type": "hourly", "rate": Infinity}', ["body", "rate"]),
        ("/api/v1/clients/1/contracts", '{"name": "c", "type": "hourly", "hours": 1e400}', ["body", "hours"]),
        ("/api/v1/clients/1/contracts", '{"name": "c", "type": "hourly", "amount": NaN}', ["body", "amount"]),
    ],
)
def test_numbers_json_cannot_carry_are_a_422_naming_the_field(api, path, body, field):
    api.post("/api/v1/clients", json={"name": "Owner"})  # client 1 for the contract
    response = api.post(path, content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == field


def test_an_import_of_many_bad_rows_lists_the_first_ten_thousand_and_counts_the_rest(api):
    body = "name\r\n" + "Same\r\n" * 30_001  # every row after the first repeats a name
    response = api.post("/api/v1/imports/clients?dry_run=true", content=body.encode(),
                        headers={"content-type": "text/csv"})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert len(errors) == 10_001
    assert errors[0]["row"] == 3 and errors[-2]["row"] == 10_002
    assert errors[-1] == {"row": 10_003, "column": None, "message":
                          "20000 more bad rows from here on are not listed (an answer lists the first 10000)"}
    assert len(response.content) < 1_500_000
