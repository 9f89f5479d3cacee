"""Contracts, SLAs and threshold profiles over HTTP."""

from __future__ import annotations

import pytest

from models import CONTRACT_TYPES
from tests.admin_api.conftest import make_client

SPEC_TYPES = ("retainer", "hourly", "block_hours", "block_money", "remote_monitoring",
              "online_backup", "project_one_time", "project_hourly")


def test_the_contract_types_are_exactly_those_of_the_spec():
    assert CONTRACT_TYPES == SPEC_TYPES


@pytest.mark.parametrize("kind", SPEC_TYPES)
def test_every_contract_type_takes_the_same_optional_fields(admin, kind):
    client = make_client(admin)
    body = {"name": kind, "type": kind, "start_date": "2026-01-01", "end_date": "2026-12-31",
            "rate": 95.5, "amount": 1000, "hours": 10.25, "billing_period": "monthly", "description": "d"}
    contract = admin.ok("POST", f"/api/v1/clients/{client['id']}/contracts", 201, json=body)
    assert {k: contract[k] for k in body} == body


def test_an_unknown_contract_type_is_422(admin):
    client = make_client(admin)
    response = admin.post(f"/api/v1/clients/{client['id']}/contracts", json={"name": "x", "type": "monthly"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "type"]


def test_a_contract_is_read_changed_listed_and_deleted(admin):
    client = make_client(admin)
    contract = admin.ok("POST", f"/api/v1/clients/{client['id']}/contracts", 201,
                        json={"name": "Block", "type": "block_hours", "hours": 20})
    changed = admin.ok("PATCH", f"/api/v1/contracts/{contract['id']}", json={"hours": 40, "end_date": "2027-01-31"})
    assert changed["hours"] == 40 and changed["end_date"] == "2027-01-31"
    bad = admin.patch(f"/api/v1/contracts/{contract['id']}", json={"start_date": "2027-02-01"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "end_date"]
    assert admin.ok("GET", f"/api/v1/clients/{client['id']}/contracts")["total"] == 1
    admin.ok("DELETE", f"/api/v1/contracts/{contract['id']}", 204)
    assert admin.get(f"/api/v1/contracts/{contract['id']}").status_code == 404


def test_an_sla_needs_at_least_one_target(admin):
    response = admin.post("/api/v1/slas", json={"name": "Empty"})
    assert response.status_code == 422
    sla = admin.ok("POST", "/api/v1/slas", 201, json={"name": "R", "resolution_minutes": 60})
    response = admin.patch(f"/api/v1/slas/{sla['id']}", json={"resolution_minutes": None})
    assert response.status_code == 422
    both = admin.ok("PATCH", f"/api/v1/slas/{sla['id']}", json={"first_response_minutes": 15})
    assert (both["first_response_minutes"], both["resolution_minutes"]) == (15, 60)


@pytest.mark.parametrize(
    "hours,field",
    [
        ({"timezone": "Mars/Olympus", "windows": [{"day": 0, "start": "09:00", "end": "17:00"}]}, "timezone"),
        ({"timezone": "Europe/Berlin", "windows": []}, "windows"),
        ({"timezone": "Europe/Berlin", "windows": [{"day": 7, "start": "09:00", "end": "17:00"}]}, "day"),
        ({"timezone": "Europe/Berlin", "windows": [{"day": 0, "start": "9am", "end": "17:00"}]}, "start"),
        ({"timezone": "Europe/Berlin", "windows": [{"day": 0, "start": "09:00", "end": "09:00"}]}, "windows"),
        ({"timezone": "Europe/Berlin", "windows": [{"day": 0, "start": "09:00", "end": "17:00"}],
          "holidays": ["2026-02-30"]}, "holidays"),
    ],
)
def test_business_hours_are_validated(admin, hours, field):
    response = admin.post("/api/v1/slas", json={"name": "BH", "resolution_minutes": 60, "business_hours": hours})
    assert response.status_code == 422, response.text
    assert field in [str(p) for p in response.json()["detail"][0]["loc"]]


def test_an_sla_with_business_hours_is_kept_as_given(admin):
    hours = {"timezone": "America/New_York",
             "windows": [{"day": 0, "start": "09:00", "end": "17:00"}, {"day": 4, "start": "22:00", "end": "06:00"}],
             "holidays": ["2026-07-04"]}
    sla = admin.ok("POST", "/api/v1/slas", 201, json={"name": "US", "first_response_minutes": 30, "business_hours": hours})
    assert sla["business_hours"] == hours
    assert admin.ok("PATCH", f"/api/v1/slas/{sla['id']}", json={"business_hours": None})["business_hours"] is None


def test_sla_names_are_unique_and_an_sla_in_use_is_not_deleted(admin):
    sla = admin.ok("POST", "/api/v1/slas", 201, json={"name": "Gold", "resolution_minutes": 60})
    assert admin.post("/api/v1/slas", json={"name": "gold", "resolution_minutes": 5}).status_code == 409
    make_client(admin, sla_id=sla["id"])
    refused = admin.delete(f"/api/v1/slas/{sla['id']}")
    assert refused.status_code == 409 and "Acme" in refused.json()["detail"]


def test_threshold_profiles_hold_numeric_limits(admin):
    profile = admin.ok("POST", "/api/v1/threshold-profiles", 201,
                       json={"name": "Servers", "description": "prod", "thresholds": {"cpu_percent": 95, "offline_minutes": 5}})
    assert profile["thresholds"] == {"cpu_percent": 95.0, "offline_minutes": 5.0}
    bad = admin.post("/api/v1/threshold-profiles", json={"name": "Bad", "thresholds": {"cpu_percent": "high"}})
    assert bad.status_code == 422 and "thresholds" in bad.json()["detail"][0]["loc"]
    changed = admin.ok("PATCH", f"/api/v1/threshold-profiles/{profile['id']}", json={"thresholds": {"memory_percent": 80}})
    assert changed["thresholds"] == {"memory_percent": 80.0}
    assert admin.post("/api/v1/threshold-profiles", json={"name": "SERVERS"}).status_code == 409
    admin.ok("DELETE", f"/api/v1/threshold-profiles/{profile['id']}", 204)
    assert admin.ok("GET", "/api/v1/threshold-profiles")["total"] == 0


def test_a_client_refers_only_to_existing_slas_and_profiles(admin):
    response = admin.post("/api/v1/clients", json={"name": "X", "sla_id": 5})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "sla_id"]
    response = admin.post("/api/v1/clients", json={"name": "X", "threshold_profile_id": 5})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "threshold_profile_id"]
