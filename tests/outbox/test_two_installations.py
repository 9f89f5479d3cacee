"""Two ticketpost installations that answer each other stop after one exchange (SPEC §10).

Two ``ticketpost up`` processes, each with its own database, SMTP listener and support address;
each one's TICKETPOST_OUTBOUND_URL is the other's SMTP listener, and both acknowledge triaged
tickets, so each would answer anything new. A first mail reaches A "from" B's support address:
A acknowledges it to B; B sees an automatic reply (``Auto-Submitted: auto-replied``) and answers
nothing. Then nothing more happens.
"""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

from sqlalchemy import select

from models import InboundMessage, OutboxItem
from models.db import make_engine, session_scope
from tests.conftest import free_port
from tests.ingest.smtp_fixtures import stop_process, ticketpost_process, wait_until


def _install(name: str, directory: Path, smtp_port: int, peer_port: int, database_url: str | None = None) -> dict[str, str]:
    directory.mkdir()
    return {
        "TICKETPOST_DATABASE_URL": database_url or f"sqlite:///{directory / 'ticketpost.db'}",
        "TICKETPOST_SMTP_PORT": str(smtp_port),
        "TICKETPOST_API_PORT": str(free_port()),
        "TICKETPOST_SUPPORT_ADDRESSES": f"help@{name}.example",
        "TICKETPOST_OUTBOUND_URL": f"smtp://127.0.0.1:{peer_port}",
        "TICKETPOST_ACKNOWLEDGE_TRIAGED": "true",
        "TICKETPOST_OUTBOX_POLL_INTERVAL_S": "0.2",
    }


def _rows(engine, model):
    with session_scope(engine) as s:
        return list(s.scalars(select(model).order_by(model.id)))


def test_two_installations_answering_each_other_stop_after_one_exchange(tmp_path, database_url):
    """A runs on the test's database (SQLite or PostgreSQL), B on a SQLite file of its own."""
    port_a, port_b = free_port(), free_port()
    env_a = _install("a", tmp_path / "a", port_a, port_b, database_url)
    env_b = _install("b", tmp_path / "b", port_b, port_a)
    procs = {}
    try:
        for name, env in (("a", env_a), ("b", env_b)):
            log = tmp_path / name / "up.log"
            procs[name] = ticketpost_process(["up"], env, log)
        for name in procs:
            log = tmp_path / name / "up.log"
            wait_until(lambda log=log: "Stop with Ctrl-C" in log.read_text(), timeout=60, what=f"{name} up")
        a = make_engine(env_a["TICKETPOST_DATABASE_URL"])
        b = make_engine(env_b["TICKETPOST_DATABASE_URL"])

        first = (b"From: B Support <help@b.example>\r\nTo: help@a.example\r\nSubject: Forwarded: printer\r\n"
                 b"Message-ID: <first@b.example>\r\n\r\nPlease have a look.\r\n")
        with smtplib.SMTP("127.0.0.1", port_a, timeout=10) as client:
            client.sendmail("help@b.example", ["help@a.example"], first)

        wait_until(lambda: [r.status for r in _rows(a, OutboxItem)] == ["sent"], timeout=60,
                   what="A's acknowledgement to be sent")
        wait_until(lambda: [r.status for r in _rows(b, InboundMessage)] == ["routed"], timeout=60,
                   what="B to route A's acknowledgement")
        time.sleep(3)  # time for a second round, if there were one

        (a_in,) = _rows(a, InboundMessage)
        (a_out,) = _rows(a, OutboxItem)
        (b_in,) = _rows(b, InboundMessage)
        assert a_in.outcome == "triaged" and a_out.recipient == "help@b.example"
        assert b_in.outcome == "ignored_auto_reply" and b_in.sender_email == "help@a.example"
        assert any(e["decision"] == "no acknowledgement: automatic mail is never answered" for e in b_in.explanation)
        assert _rows(b, OutboxItem) == []  # B answered nothing
        assert len(_rows(a, InboundMessage)) == 1  # so A received nothing more
        a.dispose()
        b.dispose()
    finally:
        for proc in procs.values():
            stop_process(proc)
