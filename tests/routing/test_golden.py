"""The golden corpus: every tests/mail/NAME.eml routes to the outcome NAME.yml says, on both databases.

A case file may hold:

``settings``      overrides of Settings for this case (e.g. ``unmatched_policy: reject``)
``envelope_from`` the SMTP envelope sender (``"<>"`` for a null reverse-path)
``setup``         tickets (numbered 1, 2, ... in order) and outbound Message-IDs that exist first
``expect``        ``outcome`` and optionally ``client``, ``contact``, ``ticket``, ``body_contains``,
                  ``body_lacks``, ``reply_contains``, ``reply_lacks`` (reply_text; NULL stored =
                  the whole body), ``attachments`` (filename, content_type, and optionally
                  inline, content_id, size, sha256), ``reason_contains``, ``explanation_contains``,
                  ``message_id``, ``sender``
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.store import store_inbound
from models import OUTCOMES, Client, Contact, InboundMessage, Ticket, TicketMessage
from routing.pipeline import route_inbound
from tests.routing.world import apply_setup, build_world
from core.settings import Settings

MAIL = Path(__file__).resolve().parent.parent / "mail"
CASES = sorted(p.stem for p in MAIL.glob("*.eml"))


def load_case(name: str) -> tuple[bytes, dict]:
    raw = (MAIL / f"{name}.eml").read_bytes()
    spec = yaml.safe_load((MAIL / f"{name}.yml").read_text(encoding="utf-8"))
    return raw, spec


def route_case(engine, name: str):
    raw, spec = load_case(name)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        clients = build_world(session)
        apply_setup(session, clients, spec.get("setup") or {})
    settings = Settings(**(spec.get("settings") or {}))
    inbound_id = store_inbound(raw=raw, source="cli", envelope_from=spec.get("envelope_from"), engine=engine)
    return route_inbound(inbound_id, engine=engine, settings=settings), spec["expect"]


def test_every_mail_has_its_expected_outcome_beside_it():
    assert CASES, "the golden corpus is empty"
    for name in CASES:
        _raw, spec = load_case(name)
        assert spec["expect"]["outcome"] in OUTCOMES, name


def test_the_corpus_covers_every_outcome_but_failed():
    covered = {load_case(name)[1]["expect"]["outcome"] for name in CASES}
    assert set(OUTCOMES) - {"failed"} <= covered, set(OUTCOMES) - {"failed"} - covered


@pytest.mark.parametrize("name", CASES)
def test_golden_mail_routes_as_expected(engine, name):
    result, expect = route_case(engine, name)
    assert result.outcome == expect["outcome"], f"{name}: {result.reason}\n{result.explanation}"
    assert result.reason
    assert result.explanation[0]["step"] == "parse"
    for fragment in expect.get("reason_contains", []):
        assert fragment in result.reason, (name, result.reason)
    decisions = "\n".join(e["decision"] for e in result.explanation)
    for fragment in expect.get("explanation_contains", []):
        assert fragment in decisions, (name, decisions)

    with Session(engine) as session:
        inbound = session.get(InboundMessage, result.inbound_id)
        assert inbound.status == "routed"
        assert inbound.outcome == result.outcome
        assert inbound.attempts == 1
        if "sender" in expect:
            assert inbound.sender_email == expect["sender"]
        if "message_id" in expect:
            assert inbound.message_id == expect["message_id"]
        if "client" in expect:
            client = session.get(Client, result.client_id) if result.client_id else None
            assert (client.name if client else None) == expect["client"], name
        if "contact" in expect:
            contact = session.get(Contact, result.contact_id) if result.contact_id else None
            if expect["contact"] is None:
                assert contact is None
            else:
                for key, value in expect["contact"].items():
                    assert getattr(contact, key) == value, (name, key)
        if "ticket" in expect:
            ticket = session.get(Ticket, result.ticket_id)
            assert ticket is not None and ticket.number == result.ticket_number
            for key, value in expect["ticket"].items():
                if key == "messages":
                    count = session.scalar(select(func.count()).select_from(TicketMessage)
                                           .where(TicketMessage.ticket_id == ticket.id))
                    assert count == value, name
                elif key == "contract":
                    from models import Contract
                    contract = session.get(Contract, ticket.contract_id) if ticket.contract_id else None
                    assert (contract.name if contract else None) == value
                else:
                    assert getattr(ticket, key) == value, (name, key, getattr(ticket, key))
        if result.outcome in ("ticket_created", "ticket_updated", "triaged"):
            message = session.scalars(select(TicketMessage).where(TicketMessage.inbound_id == result.inbound_id)).one()
            for fragment in expect.get("body_contains", []):
                assert fragment in message.body_text, (name, fragment, message.body_text[:500])
            for fragment in expect.get("body_lacks", []):
                assert fragment not in message.body_text, (name, fragment)
            reply = message.reply_text if message.reply_text is not None else message.body_text
            for fragment in expect.get("reply_contains", []):
                assert fragment in reply, (name, fragment, reply[:500])
            for fragment in expect.get("reply_lacks", []):
                assert fragment not in reply, (name, fragment, reply[:500])
            if "attachments" in expect:
                got = [{key: a[key] for key in want} for a, want in zip(message.attachments, expect["attachments"])]
                assert got == expect["attachments"], name
                assert len(message.attachments) == len(expect["attachments"]), name
                assert all(a["size"] > 0 for a in message.attachments)
                assert [a["index"] for a in message.attachments] == list(range(len(got)))
        else:
            assert session.scalar(select(func.count()).select_from(TicketMessage)
                                  .where(TicketMessage.inbound_id == result.inbound_id)) == 0
