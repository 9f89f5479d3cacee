"""Routing several ready messages at once: one transaction, a savepoint each, one commit.

A message that fails in a batch rolls back only its own savepoint; the others commit, and the
failed one is retried alone (the actor puts it back on the queue as a single-id message).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bench.statements import counting
from core.settings import Settings
from ingest.store import store_inbound
from models import InboundMessage, TicketMessage
from routing.batch import MAX_BATCH, route_batch
from routing.pipeline import RouteResult, route_inbound
from tests.routing.world import build_world

REFUSED = "carol.acme@gmail.com"  # a known contact of Acme, refused by the fault trigger


def mail(n: int, sender: str = "bob@acme.com", message_id: str | None = None) -> bytes:
    message_id = message_id or f"<batch-{n}@acme.com>"
    return (f"From: {sender}\r\nTo: support@msp.example\r\nSubject: Printer {n}\r\n"
            f"Message-ID: {message_id}\r\n\r\nThe printer number {n} is broken.\r\n").encode()


@pytest.fixture
def world(engine):
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return build_world(session)


def store(engine, raws) -> list[int]:
    return [store_inbound(raw=raw, source="smtp", engine=engine) for raw in raws]


def rows(engine, ids):
    with Session(engine) as session:
        return {r.id: r for r in session.scalars(select(InboundMessage).where(InboundMessage.id.in_(ids)))}


def ticket_messages(engine, inbound_id) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(TicketMessage)
                              .where(TicketMessage.inbound_id == inbound_id))


@contextmanager
def refusing_ticket_messages_from(engine, sender: str):
    """A trigger that makes storing a ticket message from ``sender`` fail (a per-message fault)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(
                "CREATE FUNCTION tp_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.sender_email = '{sender}' THEN RAISE EXCEPTION 'refused by the test trigger'; "
                "END IF; RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER tp_test_refuse BEFORE INSERT ON ticket_messages "
                              "FOR EACH ROW EXECUTE FUNCTION tp_test_refuse()"))
        else:
            conn.execute(text(
                "CREATE TRIGGER tp_test_refuse BEFORE INSERT ON ticket_messages "
                f"WHEN NEW.sender_email = '{sender}' BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER tp_test_refuse" + (" ON ticket_messages" if engine.dialect.name == "postgresql" else "")))
            if engine.dialect.name == "postgresql":
                conn.execute(text("DROP FUNCTION tp_test_refuse()"))


def test_a_batch_routes_every_message_and_commits_once(engine, world):
    ids = store(engine, [mail(n) for n in range(5)])
    with engine.connect():  # the dialect's first-connect queries are not routing's
        pass
    with counting(engine) as sent:
        done = route_batch(ids, engine=engine, settings=Settings())
    assert [done.results[i].outcome for i in ids] == ["ticket_created"] * 5
    assert not done.failed and not done.missing
    assert sent.durable_commits == 1
    assert {r.status for r in rows(engine, ids).values()} == {"routed"}
    assert len({done.results[i].ticket_number for i in ids}) == 5


def test_a_failing_message_rolls_back_alone_and_the_others_commit(engine, world):
    raws = [mail(0), mail(1, sender=REFUSED), mail(2), mail(3)]
    ids = store(engine, raws)
    with refusing_ticket_messages_from(engine, REFUSED):
        done = route_batch(ids, engine=engine, settings=Settings())
    failed = ids[1]
    assert list(done.failed) == [failed]
    assert "refused by the test trigger" in str(done.failed[failed])
    stored = rows(engine, ids)
    assert [stored[i].outcome for i in ids if i != failed] == ["ticket_created"] * 3
    assert all(ticket_messages(engine, i) == 1 for i in ids if i != failed)
    # nothing of the failed one half-applied; its attempt is counted; it stays for retrying
    assert (stored[failed].status, stored[failed].outcome, stored[failed].attempts) == ("received", None, 1)
    assert ticket_messages(engine, failed) == 0
    # retried alone once the fault is gone
    assert route_inbound(failed, engine=engine, settings=Settings()).outcome == "ticket_created"
    assert ticket_messages(engine, failed) == 1


def test_routing_a_batch_is_idempotent_and_each_id_is_routed_once(engine, world):
    first, second = store(engine, [mail(1), mail(2)])
    before = route_inbound(first, engine=engine, settings=Settings())
    done = route_batch([first, second, second, 999_999], engine=engine, settings=Settings())
    assert done.results[first] == before  # already routed: the stored result, nothing changed
    assert done.results[second].outcome == "ticket_created"
    assert done.missing == [999_999]
    assert ticket_messages(engine, first) == ticket_messages(engine, second) == 1
    assert rows(engine, [first])[first].attempts == 1


def test_two_copies_of_one_message_in_one_batch_make_one_ticket(engine, world):
    ids = store(engine, [mail(1, message_id="<same@acme.com>"), mail(1, message_id="<same@acme.com>")])
    done = route_batch(ids, engine=engine, settings=Settings())
    assert [done.results[i].outcome for i in ids] == ["ticket_created", "ignored_duplicate"]


def test_a_batch_is_at_most_max_batch_ids(engine):
    with pytest.raises(ValueError, match="at most"):
        route_batch(list(range(1, MAX_BATCH + 2)), engine=engine, settings=Settings())


def test_the_actor_puts_a_failed_message_back_on_the_queue_alone(engine, world, use_database):
    from routing.actors import route_inbound_batch
    from routing.broker import QUEUE_NAME, setup_broker

    broker = setup_broker(Settings(database_url=use_database))
    ids = store(engine, [mail(0), mail(1, sender=REFUSED), mail(2)])
    with refusing_ticket_messages_from(engine, REFUSED):
        route_inbound_batch.fn(ids)
    queued = []
    while not broker.queues[QUEUE_NAME].empty():
        queued.append(broker.queues[QUEUE_NAME].get_nowait())
    from dramatiq import Message

    messages = [Message.decode(m) for m in queued]
    assert [(m.actor_name, m.args) for m in messages] == [("route_inbound", (ids[1],))]
    assert {r.status for i, r in rows(engine, ids).items() if i != ids[1]} == {"routed"}


def test_concurrent_batches_of_the_same_ids_route_each_once(pg_engine):
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    ids = store(pg_engine, [mail(n) for n in range(20)] + [mail(99, message_id="<batch-3@acme.com>")])
    outcomes: list = []
    barrier = threading.Barrier(3)

    def worker(order):
        barrier.wait()
        outcomes.append(route_batch(order, engine=pg_engine, settings=Settings()))

    threads = [threading.Thread(target=worker, args=(o,)) for o in (ids, ids[::-1], ids[5:] + ids[:5])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not done.failed for done in outcomes) and len(outcomes) == 3
    assert all(ticket_messages(pg_engine, i) <= 1 for i in ids)
    with Session(pg_engine) as session:
        per_message_id = session.execute(
            select(TicketMessage.message_id, func.count()).group_by(TicketMessage.message_id)).all()
    assert all(n == 1 for _, n in per_message_id)
    assert len(per_message_id) == 20  # the 21st is a copy of batch-3: ignored as a duplicate


def test_the_rate_limit_holds_inside_a_batch(engine, world):
    ids = store(engine, [mail(n) for n in range(6)])
    done = route_batch(ids, engine=engine, settings=Settings(rate_limit_per_hour=3))
    assert [done.results[i].outcome for i in ids] == ["ticket_created"] * 3 + ["ignored_loop"] * 3


def test_the_senders_of_a_batch_read_together_are_what_each_reads_alone(engine, world):
    from datetime import datetime, timedelta, timezone

    from routing.sender_record import lookup_sender, lookup_senders

    routed = store(engine, [mail(1), mail(2, sender="worker@beta.example")])
    route_batch(routed, engine=engine, settings=Settings())
    now = datetime.now(timezone.utc)
    asked = [
        {"email": "bob@acme.com", "message_id": "batch-1@acme.com", "inbound_id": 10_000, "received_at": now},
        {"email": "worker@beta.example", "message_id": "other@beta.example", "inbound_id": 10_001,
         "received_at": now - timedelta(minutes=30)},
        {"email": "nobody@unknown.example", "message_id": "x@unknown.example", "inbound_id": 10_002, "received_at": now},
        {"email": "bob@acme.com", "message_id": "new@acme.com", "inbound_id": 10_003,
         "received_at": now + timedelta(hours=3)},
    ]
    with engine.connect() as db:
        together = lookup_senders(db, asked)
        alone = [lookup_sender(db, **a) for a in asked]
    assert together == alone
    assert together[0].duplicate_ticket_number is not None and together[0].recent_new_tickets == 1
    assert together[1].contact is not None and together[2].contact is None
    assert together[3].recent_new_tickets == 0


@contextmanager
def statements_sent(engine):
    """Every statement psycopg sends inside the block: (its first words, whether the connection was in
    pipeline mode)."""
    import psycopg

    sent: list[tuple[str, bool]] = []
    execute = psycopg.Cursor.execute

    def recording(cursor, query, *args, **kwargs):
        sent.append((str(query)[:40], bool(cursor.connection.pgconn.pipeline_status)))
        return execute(cursor, query, *args, **kwargs)

    psycopg.Cursor.execute = recording
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = execute


def test_a_postgresql_batch_is_sent_in_pipeline_mode_without_savepoints(pg_engine):
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    ids = store(pg_engine, [mail(1), mail(2), mail(3, sender="newcomer@acme.com"),
                            mail(4, sender="worker@beta.example"), mail(5, sender="bob@acme.com")])
    with statements_sent(pg_engine) as sent:
        done = route_batch(ids, engine=pg_engine, settings=Settings())
    assert not any(query.startswith("SAVEPOINT tp_route") for query, _ in sent)  # (the contact step's own may run)
    writes = [in_pipeline for query, in_pipeline in sent if query.startswith(("WITH", "UPDATE", "INSERT"))]
    assert writes and all(writes)
    # a new contact (written through SQLAlchemy) and the primary-contact rule (read through it) hold
    assert [done.results[i].outcome for i in ids] == ["ticket_created"] * 3 + ["rejected_not_primary", "ticket_created"]
    stored = rows(pg_engine, ids)
    for i in ids:  # each result read back from the pipeline is the one stored
        result = done.results[i]
        assert (result.reason, result.ticket_id, result.contact_id) == (
            stored[i].reason, stored[i].ticket_id, stored[i].contact_id)
        assert isinstance(result, RouteResult)
    created = [done.results[i] for i in ids if done.results[i].outcome == "ticket_created"]
    assert all(str(r.ticket_number) in r.reason and r.ticket_number == r.ticket_id for r in created)


def test_a_pipelined_batch_that_fails_is_routed_again_with_a_savepoint_each(pg_engine, caplog):
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    ids = store(pg_engine, [mail(0), mail(1, sender=REFUSED), mail(2)])
    with refusing_ticket_messages_from(pg_engine, REFUSED), statements_sent(pg_engine) as sent:
        done = route_batch(ids, engine=pg_engine, settings=Settings())
    assert "routing it again with a savepoint per message" in caplog.text
    assert sum(query.startswith("SAVEPOINT tp_route") for query, _ in sent) == 3  # the second attempt's
    assert list(done.failed) == [ids[1]]
    stored = rows(pg_engine, ids)
    assert [stored[i].outcome for i in ids] == ["ticket_created", None, "ticket_created"]
    assert stored[ids[1]].attempts == 1  # counted once, by the attempt that isolated it


def test_a_pipelined_batch_whose_connection_dies_commits_nothing_and_raises(pg_engine):
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    ids = store(pg_engine, [mail(0), mail(1, sender=REFUSED), mail(2)])
    with pg_engine.begin() as conn:  # the server ends the routing connection at the second message's write
        conn.execute(text(
            "CREATE FUNCTION tp_test_die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.sender_email = '{REFUSED}' THEN PERFORM pg_terminate_backend(pg_backend_pid()); "
            "END IF; RETURN NEW; END $$"))
        conn.execute(text("CREATE TRIGGER tp_test_die BEFORE INSERT ON ticket_messages "
                          "FOR EACH ROW EXECUTE FUNCTION tp_test_die()"))
    try:
        with pytest.raises(OperationalError, match="connection is lost"):
            route_batch(ids, engine=pg_engine, settings=Settings())
        stored = rows(pg_engine, ids)
        assert {r.status for r in stored.values()} == {"received"}  # every id is for retrying
        assert all(ticket_messages(pg_engine, i) == 0 for i in ids)
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text("DROP TRIGGER tp_test_die ON ticket_messages"))
            conn.execute(text("DROP FUNCTION tp_test_die()"))
    done = route_batch(ids, engine=pg_engine, settings=Settings())  # the retry, once the fault is gone
    assert [done.results[i].outcome for i in ids] == ["ticket_created"] * 3


def reply(n: int, to: str, sender: str = "bob@acme.com") -> bytes:
    return (f"From: {sender}\r\nTo: support@msp.example\r\nSubject: Re: Printer\r\n"
            f"Message-ID: <reply-{n}@acme.com>\r\nIn-Reply-To: <{to}>\r\nReferences: <{to}>\r\n\r\n"
            f"Still broken ({n}).\r\n").encode()


def test_a_batch_looks_up_its_replies_tickets_together_and_sees_what_it_changed_itself(engine, world):
    from bench.statements import Count

    first, second = store(engine, [mail(1), mail(2)])
    ticket_a = route_inbound(first, engine=engine, settings=Settings()).ticket_id
    ticket_b = route_inbound(second, engine=engine, settings=Settings()).ticket_id
    with engine.begin() as conn:
        conn.execute(text("UPDATE tickets SET status = 'closed' WHERE id = :id"), {"id": ticket_a})
    ids = store(engine, [
        reply(1, "batch-1@acme.com"),  # reopens ticket A
        reply(2, "batch-1@acme.com"),  # A again: an earlier message of the batch changed it, so read anew
        mail(3, message_id="<batch-3@acme.com>"),  # a new ticket
        reply(4, "batch-3@acme.com"),  # refers to a message of this batch: read anew
        reply(5, "batch-2@acme.com"),  # ticket B, as read ahead
    ])
    sent = Count(texts=[])
    with counting(engine, sent):
        done = route_batch(ids, engine=engine, settings=Settings())
    results = [done.results[i] for i in ids]
    assert [r.outcome for r in results] == ["ticket_updated", "ticket_updated", "ticket_created",
                                            "ticket_updated", "ticket_updated"]
    assert [r.ticket_id for r in results] == [ticket_a, ticket_a, results[2].ticket_id, results[2].ticket_id, ticket_b]
    reopened = ["reopens" in " ".join(e["decision"] for e in r.explanation) for r in results]
    assert reopened == [True, False, False, False, False]  # the second reply saw the reopened ticket
    lookups = [t for t in sent.texts if "ticket_messages.message_id" in t and "outbound_messages" in t]
    assert len(lookups) == 3  # one for the batch, then the two replies that read anew
