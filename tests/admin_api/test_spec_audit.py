"""Findings of the SPEC audit, each checked over real HTTP against the served app, on both databases."""

from __future__ import annotations

import pytest

from tests.admin_api.served import admin_http

ADMIN = "spec-audit-admin-token"


@pytest.fixture
def http(database_url):
    with admin_http(database_url, token=ADMIN, timeout=30) as client:
        yield client


def test_sla_business_hours_take_weekday_names_and_store_their_numbers(http):
    hours = {"timezone": "Europe/Berlin",
             "windows": [{"day": "mon", "start": "08:00", "end": "17:00"},
                         {"day": "Friday", "start": "08:00", "end": "12:00"},
                         {"day": 2, "start": "09:00", "end": "17:00"}]}
    created = http.post("/api/v1/slas", json={"name": "Office", "first_response_minutes": 60,
                                              "business_hours": hours})
    assert created.status_code == 201, created.text
    assert [w["day"] for w in created.json()["business_hours"]["windows"]] == [0, 4, 2]
    assert http.get(f"/api/v1/slas/{created.json()['id']}").json()["business_hours"]["windows"][1]["day"] == 4


def test_an_unknown_weekday_name_is_a_422_naming_the_day(http):
    refused = http.post("/api/v1/slas", json={"name": "Office", "first_response_minutes": 60, "business_hours": {
        "timezone": "UTC", "windows": [{"day": "funday", "start": "08:00", "end": "17:00"}]}})
    assert refused.status_code == 422
    error = refused.json()["detail"][0]
    assert error["loc"][-1] == "day" and "funday" in error["msg"]


def test_an_imported_public_domain_names_the_switch_that_allows_it(http):
    csv = b"name,domains\nSigma,yahoo.com\n"
    refused = http.post("/api/v1/imports/clients", content=csv, headers={"Content-Type": "text/csv"})
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert (error["row"], error["column"]) == (2, "domains")
    assert "?allow_public_domain=true" in error["message"]  # the query parameter the route takes
    allowed = http.post("/api/v1/imports/clients", params={"allow_public_domain": "true"}, content=csv,
                        headers={"Content-Type": "text/csv"})
    assert allowed.status_code == 200 and allowed.json()["created"] == 1
    assert http.get("/api/v1/clients", params={"q": "Sigma"}).json()["items"][0]["domains"] == ["yahoo.com"]


def test_a_body_that_is_not_json_is_a_422_naming_the_body(http):
    answer = http.post("/api/v1/clients", content=b'{"name": "Acme",', headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"][0] == "body" and error["type"] == "json_invalid"
