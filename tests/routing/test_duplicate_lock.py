"""On PostgreSQL a copy of a message being routed waits for the (Message-ID) duplicate lock.

The pipeline's lock statement takes it with the parsed Message-ID (plain or folded header alike);
routing must wait for a transaction holding that lock, so the duplicate check runs after its commit.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ingest.store import store_inbound
from models import TicketMessage
from routing.pipeline import route_inbound
from tests.routing.world import build_world
from core.settings import Settings

PLAIN = "Message-ID: <lock-1@acme.com>\r\n"
FOLDED = "Message-ID:\r\n <lock-1@acme.com>\r\n"


def mail(message_id_header: str) -> bytes:
    return (f"From: bob@acme.com\r\nTo: support@msp.example\r\nSubject: Printer\r\n"
            f"{message_id_header}\r\nThe printer is broken.\r\n").encode()


def waiting_on_an_advisory_lock(engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(text(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and wait_event = 'advisory'"
            " and datname = current_database()")))


@pytest.mark.parametrize("header", [PLAIN, FOLDED], ids=["plain header", "folded header"])
def test_routing_waits_for_whoever_holds_the_message_id_lock(pg_engine, header):
    with Session(pg_engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    inbound_id = store_inbound(raw=mail(header), source="smtp", engine=pg_engine)
    results = []
    with pg_engine.connect() as holder:  # another delivery of the same message, mid-routing
        holder.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("lock-1@acme.com", 0))))
        router = threading.Thread(target=lambda: results.append(
            route_inbound(inbound_id, engine=pg_engine, settings=Settings())))
        router.start()
        deadline = time.monotonic() + 30  # generous: only how long we look, not what we assert
        while not waiting_on_an_advisory_lock(pg_engine) and router.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert router.is_alive() and waiting_on_an_advisory_lock(pg_engine)
        holder.rollback()
    router.join(30)
    assert results[0].outcome == "ticket_created"
    with Session(pg_engine) as session:
        assert session.scalar(select(func.count()).select_from(TicketMessage)) == 1
