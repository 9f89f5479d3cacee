"""The per-sender rate limit holds exactly, also when messages are routed concurrently or out of order."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.settings import Settings
from ingest.store import store_inbound
from models import InboundMessage, Ticket
from routing import pipeline
from routing.pipeline import route_inbound
from tests.routing.world import build_world


def mail(n: int, sender: str = "storm@acme.com") -> bytes:
    return (f"From: {sender}\r\nTo: support@msp.example\r\nSubject: Storm {n}\r\n"
            f"Message-ID: <storm-{n}@acme.com>\r\n\r\nbody {n}\r\n").encode()


@pytest.fixture
def world(engine):
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return build_world(session)


def tickets(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Ticket))


def test_two_routings_racing_for_the_last_place_open_one_ticket(pg_engine, monkeypatch):
    """Two messages of one sender, the 20th and 21st, are decided at the same moment.

    Both routings are held after their rate-limit check until the other one has reached the same
    point (or 3 s passed): without serialisation per sender both would see 19 tickets and pass.
    """
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    settings = Settings(rate_limit_per_hour=20)
    for n in range(19):
        route_inbound(store_inbound(raw=mail(n), source="smtp", engine=pg_engine), engine=pg_engine, settings=settings)
    assert tickets(pg_engine) == 19

    meet = threading.Barrier(2, timeout=3)

    def wait_for_the_other(ctx):
        try:
            meet.wait()
        except threading.BrokenBarrierError:
            pass  # the other routing is held elsewhere (on the sender lock): go on alone

    wait_for_the_other.__name__ = "wait_for_the_other"
    steps = pipeline.DATABASE_STEPS
    at = steps.index(pipeline.rate_limit) + 1
    monkeypatch.setattr(pipeline, "DATABASE_STEPS", steps[:at] + (wait_for_the_other,) + steps[at:])

    ids = [store_inbound(raw=mail(n), source="smtp", engine=pg_engine) for n in (19, 20)]
    outcomes: list[str] = []
    routers = [threading.Thread(target=lambda i=i: outcomes.append(
        route_inbound(i, engine=pg_engine, settings=settings).outcome)) for i in ids]
    for router in routers:
        router.start()
    for router in routers:
        router.join(60)
    assert sorted(outcomes) == ["ignored_loop", "ticket_created"]
    assert tickets(pg_engine) == 20


def test_a_burst_routed_by_many_threads_opens_exactly_the_limit(pg_engine):
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    settings = Settings(rate_limit_per_hour=20)
    ids = [store_inbound(raw=mail(n), source="smtp", engine=pg_engine) for n in range(30)]
    pending = list(ids)
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if not pending:
                    return
                inbound_id = pending.pop()
            route_inbound(inbound_id, engine=pg_engine, settings=settings)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert tickets(pg_engine) == 20


def test_mail_routed_out_of_arrival_order_still_counts_against_the_limit(engine, world):
    settings = Settings(rate_limit_per_hour=1)
    earlier = store_inbound(raw=mail(1), source="smtp", engine=engine)
    later = store_inbound(raw=mail(2), source="smtp", engine=engine)
    with Session(engine) as session, session.begin():  # arrived ten minutes apart
        row = session.get(InboundMessage, earlier)
        row.received_at = row.received_at - timedelta(minutes=10)
    assert route_inbound(later, engine=engine, settings=settings).outcome == "ticket_created"
    assert route_inbound(earlier, engine=engine, settings=settings).outcome == "ignored_loop"
    assert tickets(engine) == 1
