"""The database itself enforces the model's invariants, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Client, ClientDomain, Contact, InboundMessage, Ticket, TicketMessage


def _client(session: Session, name: str) -> Client:
    client = Client(name=name)
    session.add(client)
    session.flush()
    return client


def test_a_domain_belongs_to_one_client(engine):
    with Session(engine) as session:
        a, b = _client(session, "Acme"), _client(session, "Beta")
        session.add(ClientDomain(client_id=a.id, domain="acme.com"))
        session.flush()
        session.add(ClientDomain(client_id=b.id, domain="acme.com"))
        with pytest.raises(IntegrityError):
            session.flush()


def test_client_names_are_unique_ignoring_case(engine):
    with Session(engine) as session:
        _client(session, "Acme GmbH")
        with pytest.raises(IntegrityError):
            _client(session, "ACME gmbh")


def test_a_client_has_at_most_one_primary_contact(engine):
    with Session(engine) as session:
        acme = _client(session, "Acme")
        session.add(Contact(client_id=acme.id, first_name="A", last_name="A",
                            email="a@acme.com", is_primary=True))
        session.add(Contact(client_id=acme.id, first_name="B", last_name="B",
                            email="b@acme.com", is_primary=False))
        session.flush()
        session.add(Contact(client_id=acme.id, first_name="C", last_name="C",
                            email="c@acme.com", is_primary=True))
        with pytest.raises(IntegrityError):
            session.flush()


def test_contact_emails_are_unique(engine):
    with Session(engine) as session:
        acme = _client(session, "Acme")
        session.add(Contact(client_id=acme.id, first_name="A", last_name="A", email="a@acme.com"))
        session.flush()
        session.add(Contact(client_id=acme.id, first_name="A", last_name="B", email="a@acme.com"))
        with pytest.raises(IntegrityError):
            session.flush()


def test_an_inbound_message_lands_on_a_ticket_at_most_once(engine):
    with Session(engine) as session:
        inbound = InboundMessage(raw=b"x", size=1, sha256="0" * 64, source="cli")
        ticket = Ticket(subject="s")
        session.add_all([inbound, ticket])
        session.flush()
        session.add(TicketMessage(ticket_id=ticket.id, inbound_id=inbound.id))
        session.flush()
        session.add(TicketMessage(ticket_id=ticket.id, inbound_id=inbound.id))
        with pytest.raises(IntegrityError):
            session.flush()


def test_timestamps_come_back_timezone_aware(engine):
    with Session(engine) as session:
        client = _client(session, "Acme")
        session.commit()
        session.expire_all()
        assert session.get(Client, client.id).created_at.tzinfo is not None


def test_client_names_are_unique_ignoring_case_beyond_ascii(engine):
    with Session(engine) as session:
        _client(session, "Ärzte GmbH")
        with pytest.raises(IntegrityError):
            _client(session, "ÄRZTE gmbh")
