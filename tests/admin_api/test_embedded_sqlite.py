"""The same API on the embedded SQLite database (`ticketpost up`): the main flows work there too."""

from __future__ import annotations

import warnings

from models.db import make_engine
from core.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_the_main_flows_work_on_sqlite(sqlite_url):
    from admin_api.app import create_app

    engine = make_engine(sqlite_url)
    app = create_app(engine=engine, settings=Settings(database_url=sqlite_url, admin_token="t", secret_key="k"))
    h = {"Authorization": "Bearer t"}
    try:
        with TestClient(app) as http:
            sla = http.post("/api/v1/slas", headers=h, json={"name": "Gold", "resolution_minutes": 60})
            assert sla.status_code == 201, sla.text
            onboard = http.post("/api/v1/onboarding", headers=h, json={
                "client": {"name": "Acme", "domains": ["Acme.com"]}, "sla_id": sla.json()["id"],
                "contract": {"name": "R", "type": "retainer", "start_date": "2020-01-01"},
                "contact": {"first_name": "A", "last_name": "B", "email": "A@acme.com"}})
            assert onboard.status_code == 201, onboard.text
            client_id = onboard.json()["client"]["id"]
            other = http.post(f"/api/v1/clients/{client_id}/contacts", headers=h,
                              json={"first_name": "C", "last_name": "D", "email": "c@acme.com"}).json()
            assert http.patch(f"/api/v1/contacts/{other['id']}", headers=h, json={"is_primary": True}).status_code == 200
            client = http.get(f"/api/v1/clients/{client_id}", headers=h).json()
            assert client["primary_contact_id"] == other["id"]
            ticket = http.post("/api/v1/tickets", headers=h, json={"contact_id": other["id"], "subject": "S"})
            assert ticket.status_code == 201 and ticket.json()["contract_id"] is not None
            assert http.get("/api/v1/domains/x.acme.com", headers=h).json()["client_id"] == client_id
            assert http.get("/api/v1/clients", headers=h, params={"q": "ac"}).json()["total"] == 1
            assert http.delete(f"/api/v1/slas/{sla.json()['id']}", headers=h).status_code == 409
            assert http.get("/api/v1/contracts/1", headers=h).status_code == 200
    finally:
        engine.dispose()
