"""Tickets through the API and portal, the portal view, and the inbound log with replay."""

from __future__ import annotations

from email.message import EmailMessage

from ingest.store import store_inbound
from routing.pipeline import record_failure, route_inbound
from tests.admin_api.conftest import make_client, make_contact


def test_an_api_ticket_is_never_refused_by_the_primary_contact_rule(admin):
    client = make_client(admin, tickets_only_by_primary_contact=True)
    make_contact(admin, client["id"], "boss@acme.com", is_primary=True)
    worker = make_contact(admin, client["id"], "worker@acme.com")
    ticket = admin.ok("POST", "/api/v1/tickets", 201,
                      json={"contact_id": worker["id"], "subject": "VPN down", "body": "since 9am", "channel": "portal"})
    assert (ticket["client_id"], ticket["contact_id"], ticket["channel"], ticket["status"]) == (
        client["id"], worker["id"], "portal", "open")
    assert ticket["number"] is not None
    assert [m["body_text"] for m in ticket["messages"]] == ["since 9am"]
    assert ticket["messages"][0]["sender_email"] == "worker@acme.com"


def test_an_api_ticket_gets_the_active_contract_and_the_sla(admin):
    sla = admin.ok("POST", "/api/v1/slas", 201, json={"name": "Fast", "first_response_minutes": 30, "resolution_minutes": 240})
    client = make_client(admin, sla_id=sla["id"])
    contract = admin.ok("POST", f"/api/v1/clients/{client['id']}/contracts", 201,
                        json={"name": "Hourly", "type": "hourly", "start_date": "2020-01-01"})
    contact = make_contact(admin, client["id"], "ann@acme.com")
    ticket = admin.ok("POST", "/api/v1/tickets", 201, json={"contact_id": contact["id"], "subject": "Help"})
    assert ticket["contract_id"] == contract["id"]
    assert ticket["sla"]["first_response_minutes"] == 30
    assert ticket["first_response_due_at"] < ticket["resolution_due_at"]


def test_a_ticket_for_an_unknown_contact_is_422(admin):
    response = admin.post("/api/v1/tickets", json={"contact_id": 42, "subject": "x"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "contact_id"]


def test_tickets_are_listed_with_filters_and_updated(admin):
    client = make_client(admin)
    ann = make_contact(admin, client["id"], "ann@acme.com")
    bob = make_contact(admin, client["id"], "bob@acme.com")
    first = admin.ok("POST", "/api/v1/tickets", 201, json={"contact_id": ann["id"], "subject": "One"})
    admin.ok("POST", "/api/v1/tickets", 201, json={"contact_id": bob["id"], "subject": "Two", "channel": "portal"})
    admin.ok("PATCH", f"/api/v1/tickets/{first['id']}", json={"status": "resolved"})
    assert admin.ok("GET", "/api/v1/tickets", params={"status": "resolved"})["items"][0]["id"] == first["id"]
    assert admin.ok("GET", "/api/v1/tickets", params={"contact_id": bob["id"]})["total"] == 1
    assert admin.ok("GET", "/api/v1/tickets", params={"channel": "portal"})["total"] == 1
    assert admin.ok("GET", "/api/v1/tickets", params={"client_id": client["id"]})["total"] == 2
    assert admin.get("/api/v1/tickets", params={"status": "lost"}).status_code == 422
    assert admin.patch(f"/api/v1/tickets/{first['id']}", json={"status": "done"}).status_code == 422


def test_the_portal_shows_the_primary_contact_all_tickets_and_others_their_own(admin):
    client = make_client(admin)
    boss = make_contact(admin, client["id"], "boss@acme.com", is_primary=True)
    ann = make_contact(admin, client["id"], "ann@acme.com")
    bob = make_contact(admin, client["id"], "bob@acme.com")
    other_client = make_client(admin, "Other", domains=["other.com"])
    stranger = make_contact(admin, other_client["id"], "x@other.com")
    for contact in (boss, ann, bob, stranger):
        admin.ok("POST", "/api/v1/tickets", 201, json={"contact_id": contact["id"], "subject": contact["email"]})

    def subjects(contact):
        return sorted(t["subject"] for t in admin.ok("GET", f"/api/v1/contacts/{contact['id']}/tickets")["items"])

    assert subjects(boss) == ["ann@acme.com", "bob@acme.com", "boss@acme.com"]
    assert subjects(ann) == ["ann@acme.com"]
    admin.ok("PATCH", f"/api/v1/contacts/{ann['id']}", json={"is_primary": True})
    assert subjects(ann) == ["ann@acme.com", "bob@acme.com", "boss@acme.com"]
    assert subjects(boss) == ["boss@acme.com"]


def _mail(sender: str, subject: str = "Printer broken", message_id: str = "<m1@acme.com>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@msp.example"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content("It prints only blank pages.\n")
    return msg.as_bytes()


def test_the_inbound_log_shows_outcome_reason_and_explanation(admin, api_engine, settings):
    client = make_client(admin)
    raw = _mail("Ann <ann@acme.com>")
    inbound_id = store_inbound(raw=raw, source="smtp", envelope_from="ann@acme.com",
                               envelope_to=["support@msp.example"], engine=api_engine)
    route_inbound(inbound_id, engine=api_engine, settings=settings)

    listed = admin.ok("GET", "/api/v1/inbound", params={"client_id": client["id"]})
    assert listed["total"] == 1 and listed["items"][0]["outcome"] == "ticket_created"
    detail = admin.ok("GET", f"/api/v1/inbound/{inbound_id}")
    assert detail["status"] == "routed" and detail["reason"] and detail["explanation"]
    assert detail["ticket_id"] is not None
    for params in ({"status": "routed"}, {"outcome": "ticket_created"}, {"source": "smtp"},
                   {"message_id": "<m1@acme.com>"}, {"message_id": "m1@acme.com"}):
        assert admin.ok("GET", "/api/v1/inbound", params=params)["total"] == 1, params
    assert admin.ok("GET", "/api/v1/inbound", params={"outcome": "triaged"})["total"] == 0

    response = admin.get(f"/api/v1/inbound/{inbound_id}/raw")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("message/rfc822")
    assert response.content == raw


def test_a_failed_message_is_replayed_and_a_routed_one_is_not(admin, api_engine, settings):
    make_client(admin)
    inbound_id = store_inbound(raw=_mail("ann@acme.com"), source="cli", engine=api_engine)
    record_failure(inbound_id, error="database went away", engine=api_engine)
    assert admin.ok("GET", f"/api/v1/inbound/{inbound_id}")["status"] == "failed"

    replayed = admin.ok("POST", f"/api/v1/inbound/{inbound_id}/replay", 202)
    assert replayed["inbound"]["status"] == "received" and replayed["inbound"]["outcome"] is None

    route_inbound(inbound_id, engine=api_engine, settings=settings)
    assert admin.ok("GET", f"/api/v1/inbound/{inbound_id}")["outcome"] == "ticket_created"
    again = admin.post(f"/api/v1/inbound/{inbound_id}/replay")
    assert again.status_code == 409 and "ticket_created" in again.json()["detail"]
    assert admin.post("/api/v1/inbound/999/replay").status_code == 404
