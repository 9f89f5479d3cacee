"""Contacts (unique e-mail, one primary) and the one-call onboarding wizard."""

from __future__ import annotations

from sqlalchemy import text

from tests.admin_api.conftest import make_client, make_contact


def test_an_email_is_stored_lower_case_and_unique_in_any_case(admin):
    acme = make_client(admin)
    other = make_client(admin, "Other", domains=["other.com"])
    contact = make_contact(admin, acme["id"], "Ann.Smith@ACME.com")
    assert contact["email"] == "ann.smith@acme.com"
    response = admin.post(f"/api/v1/clients/{other['id']}/contacts",
                          json={"first_name": "A", "last_name": "S", "email": "ANN.SMITH@acme.COM"})
    assert response.status_code == 409
    assert "Acme" in response.json()["detail"]
    found = admin.ok("GET", "/api/v1/contacts", params={"email": "ann.smith@Acme.Com"})
    assert [c["id"] for c in found["items"]] == [contact["id"]]


def test_an_unusable_email_is_422_naming_the_field(admin):
    acme = make_client(admin)
    response = admin.post(f"/api/v1/clients/{acme['id']}/contacts",
                          json={"first_name": "A", "last_name": "S", "email": "not-an-address"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "email"


def test_making_a_contact_primary_demotes_the_previous_one(admin, api_engine):
    acme = make_client(admin)
    first = make_contact(admin, acme["id"], "first@acme.com", is_primary=True)
    second = make_contact(admin, acme["id"], "second@acme.com")
    assert admin.ok("GET", f"/api/v1/clients/{acme['id']}")["primary_contact_id"] == first["id"]

    promoted = admin.ok("PATCH", f"/api/v1/contacts/{second['id']}", json={"is_primary": True})
    assert promoted["is_primary"] is True
    assert admin.ok("GET", f"/api/v1/contacts/{first['id']}")["is_primary"] is False
    assert admin.ok("GET", f"/api/v1/clients/{acme['id']}")["primary_contact_id"] == second["id"]
    with api_engine.connect() as conn:
        primaries = conn.execute(text("SELECT count(*) FROM contacts WHERE is_primary")).scalar_one()
    assert primaries == 1


def test_a_new_primary_contact_demotes_the_previous_one(admin):
    acme = make_client(admin)
    first = make_contact(admin, acme["id"], "first@acme.com", is_primary=True)
    second = make_contact(admin, acme["id"], "second@acme.com", is_primary=True)
    assert admin.ok("GET", f"/api/v1/contacts/{first['id']}")["is_primary"] is False
    assert admin.ok("GET", f"/api/v1/clients/{acme['id']}")["primary_contact_id"] == second["id"]


def test_primary_contacts_of_different_clients_are_independent(admin):
    acme = make_client(admin)
    globex = make_client(admin, "Globex", domains=["globex.com"])
    a = make_contact(admin, acme["id"], "a@acme.com", is_primary=True)
    g = make_contact(admin, globex["id"], "g@globex.com", is_primary=True)
    assert admin.ok("GET", f"/api/v1/contacts/{a['id']}")["is_primary"] is True
    assert admin.ok("GET", f"/api/v1/contacts/{g['id']}")["is_primary"] is True


def test_contacts_are_listed_per_client_and_deleted(admin):
    acme = make_client(admin)
    ann = make_contact(admin, acme["id"], "ann@acme.com")
    make_contact(admin, acme["id"], "bob@acme.com", first_name="Bob")
    assert admin.ok("GET", f"/api/v1/clients/{acme['id']}/contacts")["total"] == 2
    admin.ok("DELETE", f"/api/v1/contacts/{ann['id']}", 204)
    assert admin.ok("GET", f"/api/v1/clients/{acme['id']}/contacts")["total"] == 1


ONBOARDING = {
    "client": {"name": "Initech", "domains": ["initech.com"], "tickets_only_by_primary_contact": True},
    "contract": {"name": "Support 2027", "type": "retainer", "start_date": "2027-01-01", "amount": 1500},
    "sla": {"name": "Gold", "first_response_minutes": 60, "resolution_minutes": 480,
            "business_hours": {"timezone": "Europe/Berlin",
                               "windows": [{"day": d, "start": "08:00", "end": "18:00"} for d in range(5)],
                               "holidays": ["2027-12-25"]}},
    "contact": {"first_name": "Peter", "last_name": "Gibbons", "email": "Peter@Initech.com"},
}


def test_onboarding_creates_everything_and_the_contact_is_primary(admin):
    profile = admin.ok("POST", "/api/v1/threshold-profiles", 201,
                       json={"name": "Servers", "thresholds": {"cpu_percent": 90, "disk_free_percent": 10}})
    result = admin.ok("POST", "/api/v1/onboarding", 201, json={**ONBOARDING, "threshold_profile_id": profile["id"]})
    client = result["client"]
    assert client["domains"] == ["initech.com"]
    assert client["primary_contact_id"] == result["contact"]["id"]
    assert result["contact"]["email"] == "peter@initech.com" and result["contact"]["is_primary"] is True
    assert client["sla_id"] == result["sla"]["id"] and client["threshold_profile_id"] == profile["id"]
    assert result["contract"]["client_id"] == client["id"] and result["contract"]["amount"] == 1500
    assert admin.ok("GET", "/api/v1/domains/mail.initech.com")["client_id"] == client["id"]


def test_onboarding_with_an_existing_sla(admin):
    sla = admin.ok("POST", "/api/v1/slas", 201, json={"name": "Basic", "resolution_minutes": 2880})
    result = admin.ok("POST", "/api/v1/onboarding", 201, json={"client": {"name": "Hooli"}, "sla_id": sla["id"]})
    assert result["client"]["sla_id"] == sla["id"] and result["contact"] is None


def test_a_failing_contact_rolls_back_the_whole_onboarding(admin):
    acme = make_client(admin)
    make_contact(admin, acme["id"], "peter@initech.com")
    response = admin.post("/api/v1/onboarding", json=ONBOARDING)
    assert response.status_code == 409
    assert admin.ok("GET", "/api/v1/clients", params={"q": "Initech"})["total"] == 0
    assert admin.ok("GET", "/api/v1/slas")["total"] == 0
    assert admin.get("/api/v1/domains/initech.com").status_code == 404


def test_an_invalid_part_of_the_onboarding_is_named_and_nothing_is_kept(admin):
    body = {**ONBOARDING, "contact": {**ONBOARDING["contact"], "email": "peter@"}}
    response = admin.post("/api/v1/onboarding", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "contact", "email"]
    body = {**ONBOARDING, "client": {**ONBOARDING["client"], "domains": ["gmail.com"]}}
    response = admin.post("/api/v1/onboarding", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "client", "domains", 0]
    assert admin.ok("GET", "/api/v1/clients")["total"] == 0


def test_onboarding_takes_the_sla_id_inside_the_client_too(admin):
    sla = admin.ok("POST", "/api/v1/slas", 201, json={"name": "Basic", "resolution_minutes": 2880})
    result = admin.ok("POST", "/api/v1/onboarding", 201, json={"client": {"name": "Hooli", "sla_id": sla["id"]}})
    assert result["client"]["sla_id"] == sla["id"] and result["sla"]["id"] == sla["id"]


def test_onboarding_refuses_both_an_sla_id_and_a_new_sla(admin):
    sla = admin.ok("POST", "/api/v1/slas", 201, json={"name": "Basic", "resolution_minutes": 2880})
    response = admin.post("/api/v1/onboarding", json={**ONBOARDING, "sla_id": sla["id"]})
    assert response.status_code == 422
    assert admin.ok("GET", "/api/v1/clients")["total"] == 0


def test_onboarding_with_an_unknown_sla_id_is_422(admin):
    response = admin.post("/api/v1/onboarding", json={"client": {"name": "X"}, "sla_id": 77})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "sla_id"]
