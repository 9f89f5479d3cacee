"""Routing pays no webhook statement while no webhook is enabled, and still writes the delivery
in the outcome's transaction once one is (routing.statements.ANY_WEBHOOK, read with the lock).

Statements are counted at the driver (bench.statements: psycopg's cursor on PostgreSQL, where
routing.prepared runs the hot statements; SQLAlchemy's events on SQLite). Both databases.
"""

from __future__ import annotations

from sqlalchemy import select

from bench.statements import Count, counting
from models import OutboxItem
from routing.batch import route_batch
from routing.pipeline import route_inbound
from tests.webhooks.conftest import add_webhook
from tests.webhooks.test_events import _mail, _store, _world


def _webhook_inserts(texts: list[str]) -> list[str]:
    """The statements that write webhook deliveries (INSERT INTO outbox … SELECT … FROM webhooks)."""
    return [t for t in texts if "INSERT INTO outbox" in t and "FROM webhooks" in t]


def _route_one(engine, settings, message_id: str):
    inbound_id = _store(engine, _mail("bob@acme.com", "Printer offline", message_id=message_id))
    sent = Count(texts=[])
    with counting(engine, sent):
        result = route_inbound(inbound_id, engine=engine, settings=settings)
    return result, sent


def _deliveries(engine) -> list:
    with engine.connect() as db:
        return list(db.execute(select(OutboxItem.id, OutboxItem.inbound_id).where(OutboxItem.kind == "webhook")))


def test_no_enabled_webhook_means_no_webhook_statement_and_one_enabled_gets_its_delivery(engine, hook_settings):
    _world(engine)
    add_webhook(engine, "http://127.0.0.1:9/off", events=("ticket.created",), enabled=False)

    quiet, sent = _route_one(engine, hook_settings, "q1@acme.com")
    assert quiet.outcome == "ticket_created" and not quiet.notified
    assert sent.texts and _webhook_inserts(sent.texts) == []
    assert _deliveries(engine) == []

    add_webhook(engine, "http://127.0.0.1:9/on", events=("ticket.created",))
    loud, sent_with = _route_one(engine, hook_settings, "q2@acme.com")
    assert loud.outcome == "ticket_created" and loud.notified
    assert len(_webhook_inserts(sent_with.texts)) == 1
    assert sent_with.statements == sent.statements + 1  # the event's one statement, nothing else
    assert [row.inbound_id for row in _deliveries(engine)] == [loud.inbound_id]


def test_a_batch_skips_the_webhook_statement_only_while_no_webhook_is_enabled(engine, hook_settings):
    _world(engine)
    ids = [_store(engine, _mail("bob@acme.com", f"Printer {n}", message_id=f"b{n}@acme.com")) for n in range(3)]
    sent = Count(texts=[])
    with counting(engine, sent):
        done = route_batch(ids, engine=engine, settings=hook_settings)
    assert sorted(done.results) == ids and not any(r.notified for r in done.results.values())
    assert _webhook_inserts(sent.texts) == [] and _deliveries(engine) == []

    add_webhook(engine, "http://127.0.0.1:9/on", events=("ticket.created",))
    more = [_store(engine, _mail("bob@acme.com", f"Scanner {n}", message_id=f"c{n}@acme.com")) for n in range(3)]
    sent = Count(texts=[])
    with counting(engine, sent):
        done = route_batch(more, engine=engine, settings=hook_settings)
    assert all(r.outcome == "ticket_created" and r.notified for r in done.results.values())
    assert len(_webhook_inserts(sent.texts)) == 3
    assert sorted(row.inbound_id for row in _deliveries(engine)) == more
