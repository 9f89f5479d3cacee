"""OAuth2 and Graph mailboxes over HTTP (SPEC §9): secrets write-only, bad combinations 422."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Mailbox
from models.secrets import decrypt_secret
from tests.admin_api.conftest import SECRET_KEY

MICROSOFT_IMAP = {
    "name": "m365", "host": "outlook.office365.com", "username": "support@msp.example",
    "auth": "oauth2",
    "oauth2": {"provider": "microsoft", "tenant_id": "contoso.onmicrosoft.com",
               "client_id": "app-id-1", "client_secret": "very-secret-client-secret"},
}
GRAPH = {
    "name": "graph", "kind": "graph", "user": "support@msp.example", "folder": "inbox",
    "oauth2": {"provider": "microsoft", "tenant_id": "t1", "client_id": "app-id-2",
               "client_secret": "graph-client-secret"},
}


def test_an_oauth2_mailbox_keeps_its_secrets_and_shows_the_scope_in_effect(admin, api_engine):
    created = admin.ok("POST", "/api/v1/mailboxes", 201, json=MICROSOFT_IMAP)
    assert created["auth"] == "oauth2" and created["kind"] == "imap"
    assert created["has_password"] is False
    assert created["oauth2"]["grant"] == "client_credentials"
    assert created["oauth2"]["scope"] == "https://outlook.office365.com/.default"
    assert created["oauth2"]["has_client_secret"] is True
    shown = str(created) + str(admin.ok("GET", f"/api/v1/mailboxes/{created['id']}"))
    assert "very-secret" not in shown and "'client_secret'" not in shown
    with api_engine.connect() as conn:
        blob = conn.execute(select(Mailbox.oauth2_client_secret_encrypted)).scalar_one()
    assert b"very-secret" not in blob
    assert decrypt_secret(blob, key=SECRET_KEY) == "very-secret-client-secret"


def test_a_graph_mailbox_defaults_to_the_graph_scope_and_host(admin):
    created = admin.ok("POST", "/api/v1/mailboxes", 201, json=GRAPH)
    assert created["kind"] == "graph" and created["auth"] == "oauth2"
    assert created["user"] == "support@msp.example" and created["host"] == "graph.microsoft.com"
    assert created["graph_base_url"] == "https://graph.microsoft.com"
    assert created["oauth2"]["scope"] == "https://graph.microsoft.com/.default"
    assert created["health"] == "never_polled"


def test_a_delegated_refresh_token_is_write_only_and_can_be_replaced(admin, api_engine):
    body = {**MICROSOFT_IMAP, "oauth2": {**MICROSOFT_IMAP["oauth2"], "grant": "refresh_token",
                                          "refresh_token": "rt-one"}}
    created = admin.ok("POST", "/api/v1/mailboxes", 201, json=body)
    assert created["oauth2"]["has_refresh_token"] is True
    assert "IMAP.AccessAsUser.All" in created["oauth2"]["scope"]
    changed = admin.ok("PATCH", f"/api/v1/mailboxes/{created['id']}",
                       json={"oauth2": {"refresh_token": "rt-two"}})
    assert "rt-two" not in str(changed) and changed["oauth2"]["client_id"] == "app-id-1"
    with api_engine.connect() as conn:
        row = conn.execute(select(Mailbox.oauth2_refresh_token_encrypted,
                                  Mailbox.oauth2_client_secret_encrypted)).one()
    assert decrypt_secret(row[0], key=SECRET_KEY) == "rt-two"
    assert decrypt_secret(row[1], key=SECRET_KEY) == "very-secret-client-secret"


@pytest.mark.parametrize(
    "body, loc",
    [
        ({**GRAPH, "auth": "password", "password": "x"}, ["body", "auth"]),
        ({**GRAPH, "user": None}, ["body", "user"]),
        ({**GRAPH, "oauth2": {**GRAPH["oauth2"], "provider": "google"}}, ["body", "oauth2", "provider"]),
        ({**MICROSOFT_IMAP, "oauth2": {**MICROSOFT_IMAP["oauth2"], "tenant_id": None}},
         ["body", "oauth2", "tenant_id"]),
        ({**MICROSOFT_IMAP, "oauth2": {**MICROSOFT_IMAP["oauth2"], "client_secret": None}},
         ["body", "oauth2", "client_secret"]),
        ({**MICROSOFT_IMAP, "password": "also-a-password"}, ["body", "password"]),
        ({**MICROSOFT_IMAP, "oauth2": None}, ["body", "oauth2"]),
        ({**MICROSOFT_IMAP, "auth": "password"}, ["body", "oauth2"]),
        ({**MICROSOFT_IMAP, "oauth2": {"provider": "generic", "client_id": "c",
                                       "client_secret": "s"}}, ["body", "oauth2", "token_url"]),
        ({**MICROSOFT_IMAP, "oauth2": {"provider": "google", "client_id": "c",
                                       "grant": "client_credentials"}}, ["body", "oauth2", "grant"]),
        ({**MICROSOFT_IMAP, "oauth2": {"provider": "google", "grant": "service_account",
                                       "client_secret": "not json"}},
         ["body", "oauth2", "client_secret"]),
        ({**MICROSOFT_IMAP, "oauth2": {**MICROSOFT_IMAP["oauth2"], "grant": "password"}},
         ["body", "oauth2", "grant"]),
        ({**GRAPH, "graph_base_url": "https://graph.microsoft.com/v1.0"}, ["body", "graph_base_url"]),
    ],
)
def test_bad_combinations_are_422_naming_the_field(admin, body, loc):
    response = admin.post("/api/v1/mailboxes", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc, response.text


def test_switching_a_mailbox_from_password_to_oauth2_drops_the_password(admin, api_engine):
    created = admin.ok("POST", "/api/v1/mailboxes", 201, json={
        "name": "old", "host": "imap.example.com", "username": "u@example.com", "password": "pw"})
    changed = admin.ok("PATCH", f"/api/v1/mailboxes/{created['id']}",
                       json={"auth": "oauth2", "oauth2": MICROSOFT_IMAP["oauth2"]})
    assert changed["auth"] == "oauth2" and changed["has_password"] is False
    back = admin.patch(f"/api/v1/mailboxes/{created['id']}", json={"auth": "password"})
    assert back.status_code == 422 and back.json()["detail"][0]["loc"] == ["body", "password"]
    back = admin.ok("PATCH", f"/api/v1/mailboxes/{created['id']}",
                    json={"auth": "password", "password": "pw2"})
    assert back["oauth2"] is None and back["has_password"] is True
    with api_engine.connect() as conn:
        assert conn.execute(select(Mailbox.oauth2_client_secret_encrypted)).scalar_one() is None
