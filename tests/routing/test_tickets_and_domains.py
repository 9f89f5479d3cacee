"""Opening tickets (contract, SLA snapshot, due times) and the longest-suffix domain match."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Client, ClientDomain, Contract, Sla, Ticket, TicketMessage
from routing.domains import match_domain
from routing.tickets import active_contract, open_ticket


def _client(session, name="Acme", **kw):
    client = Client(name=name, **kw)
    session.add(client)
    session.flush()
    return client


def test_the_longest_registered_domain_wins(engine):
    with Session(engine) as session:
        acme, europe = _client(session, "Acme"), _client(session, "Acme Europe")
        session.add_all([ClientDomain(client_id=acme.id, domain="acme.com"),
                         ClientDomain(client_id=europe.id, domain="eu.acme.com")])
        session.flush()
        assert match_domain(session, "acme.com").client_id == acme.id
        assert match_domain(session, "mail.eu.acme.com").domain == "eu.acme.com"
        assert match_domain(session, "MAIL.Acme.COM.").domain == "acme.com"
        assert match_domain(session, "us.acme.com").client_id == acme.id
        assert match_domain(session, "notacme.com") is None
        assert match_domain(session, "acme.com.evil.example") is None
        assert match_domain(session, "not a domain") is None


def test_idn_domains_match_in_either_form(engine):
    with Session(engine) as session:
        shop = _client(session, "Bücher")
        session.add(ClientDomain(client_id=shop.id, domain="xn--bcher-kva.example"))
        session.flush()
        assert match_domain(session, "BÜCHER.example").client_id == shop.id
        assert match_domain(session, "kasse.bücher.example").client_id == shop.id


def test_the_active_contract_covers_the_date_and_the_latest_start_wins(engine):
    with Session(engine) as session:
        acme = _client(session)
        session.add_all([
            Contract(client_id=acme.id, name="open ended", type="retainer"),
            Contract(client_id=acme.id, name="2026", type="hourly", start_date=date(2026, 1, 1), end_date=date(2026, 12, 31)),
            Contract(client_id=acme.id, name="project", type="project_one_time", start_date=date(2026, 6, 1), end_date=date(2026, 6, 30)),
        ])
        session.flush()
        assert active_contract(session, client_id=acme.id, on=date(2026, 6, 15)).name == "project"
        assert active_contract(session, client_id=acme.id, on=date(2026, 6, 30)).name == "project"
        assert active_contract(session, client_id=acme.id, on=date(2026, 7, 1)).name == "2026"
        assert active_contract(session, client_id=acme.id, on=date(2027, 1, 1)).name == "open ended"


def test_a_client_without_a_covering_contract_has_none(engine):
    with Session(engine) as session:
        acme = _client(session)
        session.add(Contract(client_id=acme.id, name="expired", type="retainer", end_date=date(2020, 1, 1)))
        session.flush()
        assert active_contract(session, client_id=acme.id, on=date(2026, 1, 1)) is None


def test_a_new_ticket_gets_number_contract_sla_snapshot_and_due_times(engine):
    at = datetime(2026, 11, 27, 15, 0, tzinfo=timezone.utc)  # Friday 16:00 in Berlin
    with Session(engine) as session:
        sla = Sla(name="8x5", first_response_minutes=120, resolution_minutes=None,
                  business_hours={"timezone": "Europe/Berlin",
                                  "windows": [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)]})
        session.add(sla)
        session.flush()
        acme = _client(session, sla_id=sla.id)
        contract = Contract(client_id=acme.id, name="2026", type="retainer", start_date=date(2026, 1, 1))
        session.add(contract)
        session.flush()
        ticket = open_ticket(session, client=acme, contact=None, subject="Help", channel="api", at=at,
                             first_message={"body_text": "please", "sender_email": "x@acme.com"})
        session.commit()
        assert ticket.number == ticket.id
        assert (ticket.status, ticket.channel, ticket.contract_id) == ("open", "api", contract.id)
        assert ticket.sla_snapshot["name"] == "8x5"
        assert ticket.first_response_due_at == datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)  # Mon 10:00 Berlin
        assert ticket.resolution_due_at is None
        assert session.query(TicketMessage).filter_by(ticket_id=ticket.id).one().body_text == "please"


def test_a_24x7_sla_adds_plain_minutes(engine):
    at = datetime(2026, 11, 28, 23, 0, tzinfo=timezone.utc)
    with Session(engine) as session:
        sla = Sla(name="24x7", first_response_minutes=60, resolution_minutes=480)
        session.add(sla)
        session.flush()
        acme = _client(session, sla_id=sla.id)
        ticket = open_ticket(session, client=acme, contact=None, subject="x", channel="portal", at=at)
        assert ticket.first_response_due_at == datetime(2026, 11, 29, 0, 0, tzinfo=timezone.utc)
        assert ticket.resolution_due_at == datetime(2026, 11, 29, 7, 0, tzinfo=timezone.utc)


def test_ticket_numbers_are_unique_increasing_and_equal_to_the_id_as_stored(engine):
    with Session(engine) as session:
        numbers = [open_ticket(session, client=None, contact=None, subject=str(i), channel="email").number
                   for i in range(3)]
        session.commit()
        assert numbers == sorted(set(numbers)) and len(numbers) == 3
    with Session(engine) as fresh:
        stored = fresh.execute(select(Ticket.id, Ticket.number).order_by(Ticket.id)).all()
        assert [number for _, number in stored] == numbers
        assert all(ticket_id == number for ticket_id, number in stored)
