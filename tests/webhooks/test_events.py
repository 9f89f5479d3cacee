"""Events come from the real decisions: routing stored mail, the dispatcher giving up on a mail,
a mailbox turning unhealthy; each delivery is written in the transaction of its event.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select, update

from core.settings import Settings
from ingest.imap import record_failure as record_mailbox_failure
from ingest.store import inbound_values, insert_inbound
from models import Client, ClientDomain, Contact, Mailbox, OutboxItem, utcnow
from models.db import session_scope
from routing.outbox.dispatcher import dispatch
from routing.pipeline import record_failure, route_inbound
from routing.webhooks.delivery import WebhookRunner
from routing.webhooks.signing import verify
from tests.webhooks.conftest import SECRET, add_webhook

ALL = ("ticket.created", "ticket.updated", "inbound.rejected", "inbound.failed", "outbox.failed", "mailbox.unhealthy")


def _mail(sender: str, subject: str, *, message_id: str, in_reply_to: str | None = None) -> bytes:
    lines = [f"From: Bob Builder <{sender}>", "To: help@msp.example", f"Subject: {subject}",
             f"Message-ID: <{message_id}>", "Date: Fri, 04 Dec 2026 10:00:00 +0000"]
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    return ("\r\n".join(lines) + "\r\n\r\nThe printer on floor 2 is offline.\r\n").encode()


def _store(engine, raw: bytes) -> int:
    with engine.begin() as db:
        (inbound_id,) = insert_inbound(db, [inbound_values(raw=raw, source="smtp", envelope_from="bob@acme.com",
                                                           envelope_to=["help@msp.example"])])
    return inbound_id


def _world(engine) -> tuple[int, int]:
    with session_scope(engine) as s:
        client = Client(name="Acme", tickets_only_by_primary_contact=True)
        s.add(client)
        s.flush()
        s.add(ClientDomain(client_id=client.id, domain="acme.com"))
        bob = Contact(client_id=client.id, first_name="Bob", last_name="Builder", email="bob@acme.com",
                      is_primary=True)
        s.add(bob)
        s.flush()
        return client.id, bob.id


def _deliver(engine, settings) -> None:
    runner = WebhookRunner(engine=engine, settings=settings)
    while runner.run_once():
        pass
    assert runner.sender.drain(30)


def _bodies(receiver, path, count) -> list[dict]:
    got = receiver.wait_for(path, count)
    for request in got:
        assert verify(SECRET, request.headers, request.body)
    return [json.loads(r.body) for r in got]


def test_routing_outcomes_become_events_with_enough_to_act(engine, receiver, hook_settings):
    client_id, bob_id = _world(engine)
    add_webhook(engine, receiver.base + "/psa", events=ALL)
    settings = hook_settings.model_copy(update={"unmatched_policy": "reject"})
    created = route_inbound(_store(engine, _mail("bob@acme.com", "Printer offline", message_id="m1@acme.com")),
                            engine=engine, settings=settings)
    assert created.outcome == "ticket_created" and created.notified
    updated = route_inbound(_store(engine, _mail("bob@acme.com", "Re: Printer offline", message_id="m2@acme.com",
                                                 in_reply_to="m1@acme.com")), engine=engine, settings=settings)
    assert updated.outcome == "ticket_updated"
    rejected = route_inbound(_store(engine, _mail("eve@unknown.example", "Hello", message_id="m3@unknown.example")),
                             engine=engine, settings=settings)
    assert rejected.outcome == "rejected_unknown_sender"
    failing = _store(engine, _mail("bob@acme.com", "Broken", message_id="m4@acme.com"))
    record_failure(failing, error="database went away", engine=engine)
    _deliver(engine, settings)
    bodies = _bodies(receiver, "/psa", 4)
    by_type = {b["type"]: b for b in bodies}
    assert sorted(by_type) == ["inbound.failed", "inbound.rejected", "ticket.created", "ticket.updated"]

    data = by_type["ticket.created"]["data"]
    assert data["outcome"] == "ticket_created" and data["reason"]
    assert data["ticket"]["id"] == created.ticket_id and data["ticket"]["number"] == created.ticket_number
    assert data["ticket"]["subject"] == "Printer offline" and data["ticket"]["status"] == "open"
    assert data["client"] == {"id": client_id, "name": "Acme"}
    assert data["contact"]["id"] == bob_id and data["contact"]["email"] == "bob@acme.com"
    assert data["inbound"]["id"] == created.inbound_id and data["inbound"]["message_id"] == "m1@acme.com"

    data = by_type["ticket.updated"]["data"]
    assert data["ticket"]["id"] == created.ticket_id and data["ticket"]["number"] == created.ticket_number
    assert data["ticket"]["subject"] == "Printer offline" and data["inbound"]["subject"] == "Re: Printer offline"

    data = by_type["inbound.rejected"]["data"]
    assert data["outcome"] == "rejected_unknown_sender" and data["ticket"] is None
    assert data["inbound"]["sender"] == "eve@unknown.example"

    data = by_type["inbound.failed"]["data"]
    assert data["outcome"] == "failed" and "database went away" in data["reason"]
    assert data["inbound"]["id"] == failing and data["inbound"]["source"] == "smtp"


def test_the_delivery_rows_are_written_in_routings_transaction(engine, receiver, hook_settings):
    _world(engine)
    add_webhook(engine, receiver.base + "/psa", events=("ticket.created",))
    inbound_id = _store(engine, _mail("bob@acme.com", "Printer", message_id="tx@acme.com"))
    result = route_inbound(inbound_id, engine=engine, settings=hook_settings)
    with session_scope(engine) as s:
        (row,) = s.scalars(select(OutboxItem).where(OutboxItem.inbound_id == inbound_id)).all()
        assert (row.kind, row.ticket_id, row.status) == ("webhook", result.ticket_id, "pending")
    # routing the same id again changes nothing and writes no second delivery
    route_inbound(inbound_id, engine=engine, settings=hook_settings)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 1


def test_ignored_mail_and_unsubscribed_events_write_nothing(engine, receiver, hook_settings):
    _world(engine)
    add_webhook(engine, receiver.base + "/psa", events=("inbound.failed",))
    auto = _mail("bob@acme.com", "Out of office", message_id="ooo@acme.com").replace(
        b"Date:", b"Auto-Submitted: auto-replied\r\nDate:")
    assert route_inbound(_store(engine, auto), engine=engine, settings=hook_settings).outcome == "ignored_auto_reply"
    assert not route_inbound(_store(engine, _mail("bob@acme.com", "New", message_id="n@acme.com")),
                             engine=engine, settings=hook_settings).notified
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 0


def test_a_mail_the_dispatcher_gives_up_on_is_an_outbox_failed_event(engine, receiver, hook_settings):
    add_webhook(engine, receiver.base + "/ops", events=("outbox.failed",))
    with session_scope(engine) as s:
        s.add(OutboxItem(kind="acknowledgement", status="pending", recipient="alice@acme.example",
                         message_id="ack.1@msp.example", payload={"template": "acknowledgement", "subject": "x"},
                         attempts=0, next_attempt_at=utcnow()))
    # no TICKETPOST_OUTBOUND_URL: the mail cannot be sent; one attempt allowed
    settings = hook_settings.model_copy(update={"outbox_max_attempts": 1})
    assert dispatch(engine=engine, settings=settings) == {"sent": 0, "retrying": 0, "failed": 1}
    with session_scope(engine) as s:
        hook_row = s.scalar(select(OutboxItem).where(OutboxItem.kind == "webhook"))
        assert hook_row is not None  # written in the transaction that recorded the failure
    _deliver(engine, settings)
    (body,) = _bodies(receiver, "/ops", 1)
    assert body["type"] == "outbox.failed"
    assert body["data"]["outbox"]["kind"] == "acknowledgement"
    assert body["data"]["outbox"]["recipient"] == "alice@acme.example"
    assert "TICKETPOST_OUTBOUND_URL" in body["data"]["reason"] and "gave up" in body["data"]["reason"]


def test_a_mailbox_turning_unhealthy_is_one_event(engine, receiver, hook_settings):
    add_webhook(engine, receiver.base + "/ops", events=("mailbox.unhealthy",))
    with session_scope(engine) as s:
        box = Mailbox(name="support", host="imap.acme.example", username="support@acme.example", consecutive_failures=0)
        s.add(box)
        s.flush()
        box_id = box.id
    for _ in range(5):  # the 3rd failure in a row turns it unhealthy; the others say nothing new
        record_mailbox_failure(engine, box_id, "ConnectionRefusedError: [Errno 111]", unhealthy_after=3)
    record_mailbox_failure(engine, box_id, "AuthFailed: invalid_grant", auth_failed=True, unhealthy_after=3)
    record_mailbox_failure(engine, box_id, "AuthFailed: invalid_grant", auth_failed=True, unhealthy_after=3)
    _deliver(engine, hook_settings)
    # two deliveries to one endpoint may run side by side: in the order of the failures
    first, second = sorted(_bodies(receiver, "/ops", 2), key=lambda b: b["data"]["mailbox"]["consecutive_failures"])
    assert first["type"] == second["type"] == "mailbox.unhealthy"
    assert first["data"]["health"] == "failing" and first["data"]["mailbox"]["name"] == "support"
    assert first["data"]["mailbox"]["consecutive_failures"] == 3 and "Errno 111" in first["data"]["reason"]
    assert second["data"]["health"] == "auth_failed" and "invalid_grant" in second["data"]["reason"]
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 2
    with engine.begin() as db:
        db.execute(update(Mailbox).values(consecutive_failures=0))
    assert Settings().webhooks_mailbox_failures == 3
