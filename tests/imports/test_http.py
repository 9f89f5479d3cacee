"""The import and export endpoints of the admin API, on PostgreSQL through create_app."""

from __future__ import annotations

import codecs
import csv
import io
import warnings

import pytest

from admin_api.services.tokens import create_token
from models.db import make_engine, session_scope
from tests.imports.conftest import add_client, client_by_name, snapshot

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CLIENTS_CSV = "name;domains;tickets_only_by_primary_contact\r\nAcme;acme.com;yes\r\nBeta;beta.com;no\r\n"


@pytest.fixture
def pg(pg_url):
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def tokens(pg) -> dict[str, str]:
    with session_scope(pg) as session:
        return {role: create_token(session, name=f"{role} of the import tests", role=role).secret
                for role in ("admin", "technician")}


@pytest.fixture
def http(pg, pg_url):
    from admin_api.app import create_app
    from core.settings import Settings

    app = create_app(engine=pg, settings=Settings(database_url=pg_url))
    with TestClient(app) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_templates_are_served_as_csv_to_any_token(http, tokens):
    response = http.get("/api/v1/imports/templates/contacts.csv", headers=auth(tokens["technician"]))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text == ("client,first_name,last_name,email,phone,mobile_phone,job_title,"
                             "is_primary,ignore_email\r\n")
    response = http.get("/api/v1/imports/templates/clients.csv", headers=auth(tokens["admin"]))
    assert response.text.startswith("name,rank,domains,")
    assert http.get("/api/v1/imports/templates/clients.csv").status_code == 401


def test_a_csv_body_is_imported_and_a_second_import_changes_nothing(http, tokens, pg):
    url = "/api/v1/imports/clients"
    response = http.post(url, content=CLIENTS_CSV.encode("cp1252"), headers={
        **auth(tokens["admin"]), "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == {"applied": True, "created": 2, "updated": 0, "unchanged": 0,
                               "errors": []}
    assert client_by_name(pg, "Acme").tickets_only_by_primary_contact is True
    response = http.post(url, content=CLIENTS_CSV, headers={
        **auth(tokens["admin"]), "Content-Type": "text/csv"})
    assert response.json()["unchanged"] == 2


def test_a_multipart_upload_is_imported(http, tokens, pg):
    add_client(pg, "Acme", "acme.com")
    body = codecs.BOM_UTF8 + b"client,first_name,last_name,email,is_primary\r\nAcme,Ann,One,ann@acme.com,TRUE\r\n"
    response = http.post("/api/v1/imports/contacts", headers=auth(tokens["admin"]),
                         files={"file": ("contacts.csv", body, "text/csv")})
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1


def test_bad_rows_answer_422_with_every_row_and_apply_nothing(http, tokens, pg):
    add_client(pg, "Other", "taken.com")
    before = snapshot(pg)
    text = "name,domains\nAcme,acme.com\nBeta,taken.com\nGamma,gmail.com\n"
    response = http.post("/api/v1/imports/clients", content=text,
                         headers={**auth(tokens["admin"]), "Content-Type": "text/csv"})
    assert response.status_code == 422
    body = response.json()
    assert body["applied"] is False
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(3, "domains"), (4, "domains")]
    assert "Other" in body["errors"][0]["message"]
    assert snapshot(pg) == before


def test_a_dry_run_reports_and_applies_nothing(http, tokens, pg):
    response = http.post("/api/v1/imports/clients?dry_run=true", content=CLIENTS_CSV,
                         headers={**auth(tokens["admin"]), "Content-Type": "text/csv"})
    assert response.status_code == 200
    assert response.json() == {"applied": False, "created": 2, "updated": 0, "unchanged": 0,
                               "errors": []}
    assert client_by_name(pg, "Acme") is None


def test_technicians_may_not_import(http, tokens, pg):
    response = http.post("/api/v1/imports/clients", content=CLIENTS_CSV,
                         headers={**auth(tokens["technician"]), "Content-Type": "text/csv"})
    assert response.status_code == 403
    assert client_by_name(pg, "Acme") is None


def test_exports_import_back_unchanged_and_are_escaped(http, tokens, pg):
    add_client(pg, "=Danger", "danger.com", phone="+49 1")
    admin = auth(tokens["admin"])
    exported = http.get("/api/v1/exports/clients.csv", headers=auth(tokens["technician"]))
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.text, newline="")))
    assert rows[1][0] == "'=Danger" and rows[1][4] == "'+49 1"
    response = http.post("/api/v1/imports/clients", content=exported.content,
                         headers={**admin, "Content-Type": "text/csv"})
    assert response.json() == {"applied": True, "created": 0, "updated": 0, "unchanged": 1,
                               "errors": []}
    contacts = http.get("/api/v1/exports/contacts.csv", headers=admin)
    assert contacts.text.startswith("client,first_name,")


def test_openapi_describes_the_import_endpoints(http):
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/api/v1/imports/clients", "/api/v1/imports/contacts",
            "/api/v1/imports/templates/clients.csv", "/api/v1/exports/contacts.csv"} <= set(paths)
    assert "text/csv" in paths["/api/v1/imports/clients"]["post"]["requestBody"]["content"]
