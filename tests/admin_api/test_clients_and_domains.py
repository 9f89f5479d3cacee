"""Clients and their domains over HTTP: normalisation, public providers, ownership (SPEC §2, §7)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from tests.admin_api.conftest import make_client, make_contact


def test_a_client_is_created_with_normalised_domains(admin):
    client = make_client(admin, "Acme", domains=["@Acme.COM", "EU.acme.com."])
    assert client["domains"] == ["acme.com", "eu.acme.com"]
    assert client["primary_contact_id"] is None
    assert admin.ok("GET", f"/api/v1/clients/{client['id']}")["domains"] == ["acme.com", "eu.acme.com"]


def test_an_internationalised_domain_is_stored_as_its_a_label(admin):
    client = make_client(admin, "Müller", domains=["Bücher.Example"])
    assert client["domains"] == ["xn--bcher-kva.example"]
    found = admin.ok("GET", "/api/v1/clients", params={"domain": "bücher.example"})
    assert [c["id"] for c in found["items"]] == [client["id"]]


@pytest.mark.parametrize("bad", ["bob@acme.com", "http://acme.com", "acme", "a" * 64 + ".com", "acme..com", "ac me.com"])
def test_a_domain_that_is_not_a_hostname_is_422_naming_the_field(admin, bad):
    client = make_client(admin)
    response = admin.post(f"/api/v1/clients/{client['id']}/domains", json={"domain": bad})
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"][-1] == "domain"
    assert error["msg"]


def test_a_bad_domain_in_a_new_client_names_its_position(admin):
    response = admin.post("/api/v1/clients", json={"name": "X", "domains": ["ok.com", "bob@x.com"]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "domains", 1]
    assert admin.ok("GET", "/api/v1/clients")["total"] == 0


def test_a_public_mail_provider_is_refused_unless_allowed(admin):
    client = make_client(admin)
    refused = admin.post(f"/api/v1/clients/{client['id']}/domains", json={"domain": "GMail.com"})
    assert refused.status_code == 422
    assert "public" in refused.json()["detail"][0]["msg"]
    assert admin.post(f"/api/v1/clients/{client['id']}/domains", json={"domain": "gmx.de"}).status_code == 422
    allowed = admin.ok("POST", f"/api/v1/clients/{client['id']}/domains", 201,
                       json={"domain": "gmail.com", "allow_public_domain": True})
    assert allowed["domain"] == "gmail.com"


def test_a_domain_owned_by_another_client_is_409_naming_that_client(admin):
    acme = make_client(admin, "Acme", domains=["acme.com"])
    other = make_client(admin, "Other", domains=[])
    response = admin.post(f"/api/v1/clients/{other['id']}/domains", json={"domain": "ACME.com"})
    assert response.status_code == 409
    assert "Acme" in response.json()["detail"] and str(acme["id"]) in response.json()["detail"]
    response = admin.post("/api/v1/clients", json={"name": "Third", "domains": ["acme.com"]})
    assert response.status_code == 409 and "Acme" in response.json()["detail"]


def test_adding_a_domain_the_client_has_is_harmless(admin):
    client = make_client(admin)
    again = admin.post(f"/api/v1/clients/{client['id']}/domains", json={"domain": "acme.com"})
    assert again.status_code == 200
    assert admin.ok("GET", f"/api/v1/clients/{client['id']}")["domains"] == ["acme.com"]


def test_removing_a_domain(admin):
    client = make_client(admin, domains=["acme.com", "acme.de"])
    admin.ok("DELETE", f"/api/v1/clients/{client['id']}/domains/ACME.de", 204)
    assert admin.ok("GET", f"/api/v1/clients/{client['id']}")["domains"] == ["acme.com"]
    assert admin.delete(f"/api/v1/clients/{client['id']}/domains/acme.de").status_code == 404


def test_a_sender_domain_routes_to_the_longest_registered_match(admin):
    acme = make_client(admin, "Acme", domains=["acme.com"])
    eu = make_client(admin, "Acme EU", domains=["eu.acme.com"])
    route = admin.ok("GET", "/api/v1/domains/mail.EU.acme.com")
    assert route == {"domain": "mail.eu.acme.com", "client_id": eu["id"], "client_name": "Acme EU",
                     "matched_domain": "eu.acme.com", "exact": False}
    assert admin.ok("GET", "/api/v1/domains/acme.com")["client_id"] == acme["id"]
    assert admin.get("/api/v1/domains/notacme.com").status_code == 404
    assert admin.get("/api/v1/domains/not a domain").status_code == 422


def test_client_names_are_unique_in_any_case(admin):
    acme = make_client(admin, "Acme")
    response = admin.post("/api/v1/clients", json={"name": "ACME"})
    assert response.status_code == 409 and str(acme["id"]) in response.json()["detail"]


def test_listing_filters_by_name_part_and_by_domain(admin):
    make_client(admin, "Acme", domains=["acme.com"])
    globex = make_client(admin, "Globex Corp", domains=["globex.com"])
    assert [c["name"] for c in admin.ok("GET", "/api/v1/clients", params={"q": "glob"})["items"]] == ["Globex Corp"]
    by_domain = admin.ok("GET", "/api/v1/clients", params={"domain": "@GLOBEX.com"})
    assert by_domain["total"] == 1 and by_domain["items"][0]["id"] == globex["id"]
    assert admin.ok("GET", "/api/v1/clients", params={"q": "%"})["total"] == 0


def test_lists_are_paged(admin):
    for i in range(7):
        make_client(admin, f"Client {i}", domains=[f"c{i}.example.com"])
    page = admin.ok("GET", "/api/v1/clients", params={"limit": 3, "offset": 5})
    assert page["total"] == 7 and [c["name"] for c in page["items"]] == ["Client 5", "Client 6"]
    assert len(admin.ok("GET", "/api/v1/clients")["items"]) == 7
    assert admin.get("/api/v1/clients", params={"limit": 501}).json()["detail"][0]["loc"] == ["query", "limit"]
    assert admin.get("/api/v1/clients", params={"limit": 0}).status_code == 422
    assert admin.get("/api/v1/clients", params={"offset": -1}).status_code == 422
    assert admin.get("/api/v1/clients", params={"limit": 500}).status_code == 200


def test_a_client_is_patched_and_its_domains_replaced(admin):
    client = make_client(admin, domains=["acme.com", "acme.de"])
    patched = admin.ok("PATCH", f"/api/v1/clients/{client['id']}",
                       json={"phone": "+49 30 1234", "domains": ["acme.de", "acme.fr"],
                             "tickets_only_by_primary_contact": True})
    assert patched["phone"] == "+49 30 1234" and patched["tickets_only_by_primary_contact"] is True
    assert patched["domains"] == ["acme.de", "acme.fr"]
    assert admin.patch(f"/api/v1/clients/{client['id']}", json={"name": None}).status_code == 422
    assert admin.patch(f"/api/v1/clients/{client['id']}", json={"colour": "red"}).json()["detail"][0]["loc"] == ["body", "colour"]


def test_unknown_ids_are_404(admin):
    for path in ("/api/v1/clients/999", "/api/v1/contacts/999", "/api/v1/contracts/999", "/api/v1/slas/999",
                 "/api/v1/threshold-profiles/999", "/api/v1/tickets/999", "/api/v1/inbound/999",
                 "/api/v1/mailboxes/999", "/api/v1/clients/999/contacts", "/api/v1/contacts/999/tickets"):
        assert admin.get(path).status_code == 404, path
    assert admin.patch("/api/v1/clients/999", json={}).status_code == 404
    assert admin.delete("/api/v1/clients/999").status_code == 404


def test_deleting_a_client_removes_its_domains_and_contacts(admin):
    client = make_client(admin)
    make_contact(admin, client["id"], "ann@acme.com")
    admin.ok("DELETE", f"/api/v1/clients/{client['id']}", 204)
    assert admin.get("/api/v1/domains/acme.com").status_code == 404
    assert admin.ok("GET", "/api/v1/contacts", params={"email": "ann@acme.com"})["total"] == 0
    assert make_client(admin)["domains"] == ["acme.com"]


def test_a_client_with_tickets_is_deleted_only_when_forced(admin):
    client = make_client(admin)
    contact = make_contact(admin, client["id"], "ann@acme.com")
    ticket = admin.ok("POST", "/api/v1/tickets", 201, json={"contact_id": contact["id"], "subject": "Hi"})
    refused = admin.delete(f"/api/v1/clients/{client['id']}")
    assert refused.status_code == 409 and "ticket" in refused.json()["detail"]
    admin.ok("DELETE", f"/api/v1/clients/{client['id']}", 204, params={"force": True})
    assert admin.ok("GET", f"/api/v1/tickets/{ticket['id']}")["client_id"] is None


def test_listing_clients_with_domains_takes_a_constant_number_of_queries(admin, api_engine):
    def count_list_queries() -> int:
        statements: list[str] = []

        def record(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(api_engine, "before_cursor_execute", record)
        try:
            admin.ok("GET", "/api/v1/clients", params={"limit": 100})
        finally:
            event.remove(api_engine, "before_cursor_execute", record)
        return len(statements)

    for i in range(3):
        client = make_client(admin, f"C{i}", domains=[f"c{i}.com", f"c{i}.de"])
        make_contact(admin, client["id"], f"p{i}@c{i}.com", is_primary=True)
    few = count_list_queries()
    for i in range(3, 40):
        client = make_client(admin, f"C{i}", domains=[f"c{i}.com", f"c{i}.de", f"c{i}.fr"])
        make_contact(admin, client["id"], f"p{i}@c{i}.com", is_primary=True)
    many = count_list_queries()
    assert many == few
    assert many <= 6
