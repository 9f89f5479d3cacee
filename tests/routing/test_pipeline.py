"""The pipeline as a whole: idempotent, concurrent-safe, faults roll back, failures are recorded."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.store import store_inbound
from models import Contact, InboundMessage, Ticket, TicketMessage
from routing import pipeline
from routing.pipeline import STEPS, InboundNotFound, record_failure, route_inbound
from tests.routing.world import build_world
from core.settings import Settings


def mail(sender="bob@acme.com", subject="Printer broken", message_id="<p1@acme.com>", extra=""):
    return (f"From: {sender}\r\nTo: support@msp.example\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\n{extra}\r\nThe printer is broken.\r\n").encode()


@pytest.fixture
def world(engine):
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return build_world(session)


def count(engine, model, *where):
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_steps_run_in_the_documented_order():
    assert [s.__name__ for s in STEPS] == [
        "parse", "loop_guard", "calendar", "sender", "extract", "rate_limit", "duplicate", "client",
        "contact", "thread", "policy", "content", "write"]


def test_routing_an_inbound_message_twice_returns_the_stored_result_and_changes_nothing(engine, world):
    inbound_id = store_inbound(raw=mail(), source="cli", engine=engine)
    first = route_inbound(inbound_id, engine=engine, settings=Settings())
    second = route_inbound(inbound_id, engine=engine, settings=Settings())
    assert first.outcome == "ticket_created"
    assert second == first
    assert count(engine, Ticket) == 1
    assert count(engine, TicketMessage) == 1
    with Session(engine) as session:
        assert session.get(InboundMessage, inbound_id).attempts == 1


def test_a_new_tickets_number_is_written_into_its_stored_reason_and_explanation(engine, world):
    inbound_id = store_inbound(raw=mail(), source="smtp", engine=engine)
    result = route_inbound(inbound_id, engine=engine, settings=Settings())
    with Session(engine) as session:
        stored = session.get(InboundMessage, inbound_id)
        ticket = session.get(Ticket, stored.ticket_id)
        message = session.scalars(select(TicketMessage).where(TicketMessage.inbound_id == inbound_id)).one()
    assert result.ticket_number == ticket.number == stored.ticket_id == message.ticket_id
    assert stored.reason.startswith(f"new ticket #{ticket.number} for client")
    assert f"new ticket #{ticket.number}" in stored.explanation[-1]["decision"]
    assert "[[" not in stored.reason + str(stored.explanation)


def test_the_same_message_delivered_twice_is_ticketed_once(engine, world):
    first = route_inbound(store_inbound(raw=mail(), source="smtp", engine=engine), engine=engine, settings=Settings())
    again = route_inbound(store_inbound(raw=mail(), source="imap:support", engine=engine), engine=engine, settings=Settings())
    assert (first.outcome, again.outcome) == ("ticket_created", "ignored_duplicate")
    assert count(engine, TicketMessage) == 1


def test_a_message_without_message_id_delivered_twice_is_a_duplicate(engine, world):
    raw = b"From: bob@acme.com\r\nSubject: no id\r\n\r\nbody\r\n"
    first = route_inbound(store_inbound(raw=raw, source="smtp", engine=engine), engine=engine, settings=Settings())
    again = route_inbound(store_inbound(raw=raw, source="smtp", engine=engine), engine=engine, settings=Settings())
    assert (first.outcome, again.outcome) == ("ticket_created", "ignored_duplicate")


def test_an_unknown_inbound_id_is_reported(engine):
    with pytest.raises(InboundNotFound):
        route_inbound(4242, engine=engine, settings=Settings())


def test_an_infrastructure_fault_rolls_back_counts_the_attempt_and_re_raises(engine, world, monkeypatch):
    inbound_id = store_inbound(raw=mail(sender="new.person@acme.com"), source="cli", engine=engine)

    def broken_write(ctx):
        raise ConnectionError("database went away")

    broken_write.__name__ = "write"
    monkeypatch.setattr(pipeline, "DATABASE_STEPS", pipeline.DATABASE_STEPS[:-1] + (broken_write,))
    with pytest.raises(ConnectionError):
        route_inbound(inbound_id, engine=engine, settings=Settings())
    with Session(engine) as session:
        inbound = session.get(InboundMessage, inbound_id)
        assert (inbound.status, inbound.outcome, inbound.attempts) == ("received", None, 1)
    assert count(engine, Contact, Contact.email == "new.person@acme.com") == 0  # rolled back too

    monkeypatch.undo()
    result = route_inbound(inbound_id, engine=engine, settings=Settings())
    assert result.outcome == "ticket_created"
    with Session(engine) as session:
        assert session.get(InboundMessage, inbound_id).attempts == 2


def test_exhausted_retries_are_recorded_as_failed_and_the_raw_message_is_kept(engine, world):
    raw = mail()
    inbound_id = store_inbound(raw=raw, source="cli", engine=engine)
    record_failure(inbound_id, error="OperationalError: server closed the connection", engine=engine)
    with Session(engine) as session:
        inbound = session.get(InboundMessage, inbound_id)
        assert (inbound.status, inbound.outcome) == ("failed", "failed")
        assert "server closed the connection" in inbound.reason
        assert inbound.raw == raw
    replayed = route_inbound(inbound_id, engine=engine, settings=Settings())
    assert replayed.outcome == "ticket_created"


def test_record_failure_leaves_a_routed_message_alone(engine, world):
    inbound_id = store_inbound(raw=mail(), source="cli", engine=engine)
    route_inbound(inbound_id, engine=engine, settings=Settings())
    record_failure(inbound_id, error="late failure", engine=engine)
    with Session(engine) as session:
        assert session.get(InboundMessage, inbound_id).outcome == "ticket_created"


def test_a_sender_over_the_rate_limit_is_treated_as_a_loop(engine, world):
    settings = Settings(rate_limit_per_hour=3)
    outcomes = [
        route_inbound(store_inbound(raw=mail(message_id=f"<storm-{i}@acme.com>", subject=f"Storm {i}"),
                                    source="smtp", engine=engine), engine=engine, settings=settings).outcome
        for i in range(5)
    ]
    assert outcomes == ["ticket_created"] * 3 + ["ignored_loop"] * 2
    other = route_inbound(store_inbound(raw=mail(sender="someone.else@acme.com", message_id="<calm@acme.com>"),
                                        source="smtp", engine=engine), engine=engine, settings=settings)
    assert other.outcome == "ticket_created"


def test_the_rate_limit_counts_only_the_last_hour(engine, world):
    settings = Settings(rate_limit_per_hour=1)
    first = store_inbound(raw=mail(message_id="<old@acme.com>"), source="smtp", engine=engine)
    route_inbound(first, engine=engine, settings=settings)
    with Session(engine) as session, session.begin():
        row = session.get(InboundMessage, first)
        row.received_at = row.received_at - timedelta(hours=2)
    later = store_inbound(raw=mail(message_id="<new@acme.com>"), source="smtp", engine=engine)
    assert route_inbound(later, engine=engine, settings=settings).outcome == "ticket_created"


def test_contacts_are_not_auto_created_when_switched_off(engine, world):
    settings = Settings(auto_create_contacts=False)
    result = route_inbound(store_inbound(raw=mail(sender="stranger@acme.com"), source="cli", engine=engine),
                           engine=engine, settings=settings)
    assert result.outcome == "ticket_created"
    assert result.contact_id is None
    assert count(engine, Contact, Contact.email == "stranger@acme.com") == 0


def test_the_inbound_row_carries_sender_subject_and_message_id(engine, world):
    result = route_inbound(store_inbound(raw=mail(sender="Bob <BOB@ACME.COM>", subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?="),
                                         source="cli", engine=engine), engine=engine, settings=Settings())
    with Session(engine) as session:
        inbound = session.get(InboundMessage, result.inbound_id)
        assert (inbound.sender_email, inbound.subject, inbound.message_id) == ("bob@acme.com", "Grüße", "p1@acme.com")
        assert inbound.routed_at is not None and inbound.ticket_id == result.ticket_id


@pytest.mark.slow
@pytest.mark.parametrize("db", ["pg_engine", "sqlite_engine"])
def test_concurrent_delivery_of_one_inbound_id_makes_one_ticket_message(request, db):
    pg_engine = request.getfixturevalue(db)  # PostgreSQL (FOR UPDATE) and SQLite (BEGIN IMMEDIATE)
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    inbound_id = store_inbound(raw=mail(sender="race@acme.com"), source="smtp", engine=pg_engine)
    barrier = threading.Barrier(6)
    results, errors = [], []

    def deliver():
        barrier.wait()
        try:
            results.append(route_inbound(inbound_id, engine=pg_engine, settings=Settings()))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {r.outcome for r in results} == {"ticket_created"}
    assert len({r.ticket_id for r in results}) == 1
    assert count(pg_engine, TicketMessage, TicketMessage.inbound_id == inbound_id) == 1
    assert count(pg_engine, Ticket) == 1
    assert count(pg_engine, Contact, Contact.email == "race@acme.com") == 1


@pytest.mark.slow
def test_concurrent_new_senders_of_one_domain_share_one_auto_created_contact(pg_engine):
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    ids = [store_inbound(raw=mail(sender="twin@acme.com", message_id=f"<twin-{i}@acme.com>"), source="smtp",
                         engine=pg_engine) for i in range(5)]
    barrier = threading.Barrier(len(ids))
    results = []

    def deliver(i):
        barrier.wait()
        results.append(route_inbound(i, engine=pg_engine, settings=Settings()))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["ticket_created"] * 5
    assert count(pg_engine, Contact, Contact.email == "twin@acme.com") == 1
    assert len({r.contact_id for r in results}) == 1


def test_a_reply_threads_onto_mail_we_sent_whether_its_id_was_stored_with_brackets_or_not(engine, world):
    from models import OutboundMessage
    from routing.tickets import open_ticket

    with Session(engine, expire_on_commit=False) as session, session.begin():
        ticket = open_ticket(session, client=world["Acme"], contact=None, subject="Printer", channel="api")
        session.add(OutboundMessage(ticket_id=ticket.id, message_id="<notify-7@msp.example>"))
    reply = mail(message_id="<reply-7@acme.com>", extra="In-Reply-To: <notify-7@msp.example>\r\n")
    result = route_inbound(store_inbound(raw=reply, source="smtp", engine=engine), engine=engine, settings=Settings())
    assert (result.outcome, result.ticket_id) == ("ticket_updated", ticket.id)
