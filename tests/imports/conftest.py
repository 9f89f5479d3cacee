"""Helpers of the bulk import tests: run an import, seed rows, take a snapshot of the data."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from admin_api.services.imports import ImportReport, import_file
from models import Client, ClientDomain, Contact, Sla, ThresholdProfile
from models.db import session_factory, session_scope


def run_import(engine, kind: str, data: bytes | str, **options) -> ImportReport:
    """Import ``data`` like the CLI does: commit only when the report says applied."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with session_factory(engine)() as session:
        report = import_file(session=session, kind=kind, source=io.BytesIO(raw), **options)
        if report.applied:
            session.commit()
    return report


def snapshot(engine) -> dict:
    """Every client, domain and contact column (timestamps included: a no-op writes nothing)."""
    with engine.connect() as conn:
        return {
            table.name: sorted(tuple(row) for row in conn.execute(select(table)))
            for table in (Client.__table__, ClientDomain.__table__, Contact.__table__)
        }


def errors_of(report: ImportReport) -> list[tuple[int, str | None]]:
    """The (line, column) of every error, in order."""
    return [(e.row, e.column) for e in report.errors]


def add_client(engine, name: str, *domains: str, **fields) -> int:
    with session_scope(engine) as session:
        client = Client(name=name, **fields)
        client.domains = [ClientDomain(domain=d) for d in domains]
        session.add(client)
        session.flush()
        return client.id


def add_contact(engine, client_id: int, email: str, *, is_primary: bool = False, **fields) -> int:
    with session_scope(engine) as session:
        contact = Contact(client_id=client_id, email=email, is_primary=is_primary,
                          first_name=fields.pop("first_name", "First"),
                          last_name=fields.pop("last_name", "Last"), **fields)
        session.add(contact)
        session.flush()
        return contact.id


def add_sla(engine, name: str) -> int:
    with session_scope(engine) as session:
        sla = Sla(name=name, first_response_minutes=60)
        session.add(sla)
        session.flush()
        return sla.id


def add_profile(engine, name: str) -> int:
    with session_scope(engine) as session:
        profile = ThresholdProfile(name=name, thresholds={"cpu_percent": 90})
        session.add(profile)
        session.flush()
        return profile.id


def contact_by_email(engine, email: str) -> Contact | None:
    with session_scope(engine) as session:
        return session.scalar(select(Contact).where(Contact.email == email))


def client_by_name(engine, name: str) -> Client | None:
    with session_scope(engine) as session:
        client = session.scalar(select(Client).where(Client.name == name))
        if client is not None:
            client.domain_names = [d.domain for d in client.domains]
            client.sla_name = client.sla.name if client.sla else None
            client.profile_name = client.threshold_profile.name if client.threshold_profile else None
        return client


@pytest.fixture
def db(engine):
    """A fresh database, SQLite and PostgreSQL in turn."""
    return engine
