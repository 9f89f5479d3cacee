"""Forged senders, loops and mail storms through the real pipeline on a real database (issue 8).

Every test stores raw mail with ``store_inbound`` and routes it with ``route_inbound`` on SQLite
and on PostgreSQL, then reads the outcome, reason and explanation from the inbound row.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import routing.auth_dkim as auth_dkim
from ingest.store import store_inbound
from models import Client, ClientDomain, Contact, InboundMessage, Ticket
from routing.pipeline import route_inbound
from tests.routing.sender_auth_keys import DkimKey, dns_for
from core.settings import Settings, reset_settings

MX = "mx.msp.example"
SUPPORT = "support@msp.example"


@pytest.fixture
def acme(engine) -> dict:
    """Acme takes tickets only from its primary contact Alice, and wants her authenticated;
    Globex takes tickets from anyone."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        acme = Client(
            name="Acme", tickets_only_by_primary_contact=True, require_authenticated_sender=True
        )
        relaxed = Client(name="Relaxed", tickets_only_by_primary_contact=True)
        globex = Client(name="Globex")
        session.add_all([acme, relaxed, globex])
        session.flush()
        session.add_all(
            [
                ClientDomain(client_id=acme.id, domain="acme.com"),
                ClientDomain(client_id=relaxed.id, domain="relaxed.example"),
                ClientDomain(client_id=globex.id, domain="globex.example"),
                Contact(client_id=acme.id, first_name="Alice", last_name="Boss",
                        email="alice@acme.com", is_primary=True),
                Contact(client_id=relaxed.id, first_name="Rita", last_name="Relaxed",
                        email="rita@relaxed.example", is_primary=True),
            ]
        )
    return {"acme": acme.id, "relaxed": relaxed.id, "globex": globex.id}


def settings(**overrides) -> Settings:
    values = {"trusted_authserv_ids": [MX], "support_addresses": [SUPPORT]}
    values.update(overrides)
    return Settings(**values)


_counter = iter(range(1_000_000))


def mail(*auth_results: str, sender: str = "Alice Boss <alice@acme.com>", subject: str = "",
         body: str = "The server room is flooding.") -> bytes:
    """Raw mail from ``sender`` with the given Authentication-Results headers, topmost first."""
    n = next(_counter)
    lines = [f"Authentication-Results: {value}" for value in auth_results]
    lines += [
        f"From: {sender}",
        f"To: {SUPPORT}",
        f"Subject: {subject or f'Urgent request {n}'}",
        "Date: Fri, 27 Nov 2026 10:00:00 +0000",
        f"Message-ID: <auth-{n}@mail.test>",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode()


def route(engine, raw: bytes, config: Settings | None = None) -> InboundMessage:
    """Store and route ``raw``; return the inbound row as recorded."""
    inbound_id = store_inbound(raw=raw, source="smtp", envelope_to=[SUPPORT], engine=engine)
    route_inbound(inbound_id, engine=engine, settings=config or settings())
    with Session(engine) as session:
        return session.get(InboundMessage, inbound_id)


def tickets(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Ticket))


def decision_of(row: InboundMessage, step: str) -> str:
    return " | ".join(e["decision"] for e in row.explanation if e["step"] == step)


def assert_rejected_unauthenticated(engine, row: InboundMessage, *fragments: str) -> None:
    assert row.outcome == "rejected_unauthenticated", (row.outcome, row.reason)
    assert row.ticket_id is None and tickets(engine) == 0
    for fragment in fragments:
        assert fragment in row.reason
        assert fragment in decision_of(row, "policy")


# --- forged primary contact -----------------------------------------------------------------------


def test_a_forged_primary_contact_without_any_header_is_rejected(engine, acme):
    row = route(engine, mail())
    assert_rejected_unauthenticated(
        engine, row,
        "alice@acme.com claims to be the primary contact",
        "the message has no Authentication-Results header",
        "local DKIM verification is off",
    )
    assert row.client_id == acme["acme"]


def test_a_passing_header_from_an_untrusted_authserv_id_is_ignored(engine, acme):
    forged = "forger.example; dkim=pass header.d=acme.com; dmarc=pass header.from=acme.com"
    row = route(engine, mail(forged))
    assert_rejected_unauthenticated(
        engine, row,
        f"no Authentication-Results header from a trusted authserv-id ({MX})",
        "ignored Authentication-Results from untrusted authserv-id forger.example",
    )


def test_with_two_trusted_headers_only_the_topmost_counts(engine, acme):
    row = route(engine, mail(
        f"{MX}; spf=softfail smtp.mailfrom=acme.com; dkim=none; dmarc=fail header.from=acme.com",
        f"{MX}; dkim=pass header.d=acme.com; dmarc=pass header.from=acme.com",  # planted by forger
    ))
    assert_rejected_unauthenticated(
        engine, row,
        f"Authentication-Results from {MX} (topmost trusted): dkim=none; dmarc=fail",
        "1 lower Authentication-Results header not considered",
    )


def test_dkim_pass_by_an_unaligned_domain_is_rejected(engine, acme):
    row = route(engine, mail(f"{MX}; dkim=pass header.d=evil.example header.s=k1; dmarc=fail"))
    assert_rejected_unauthenticated(
        engine, row, "dkim=pass but d=evil.example is not aligned with acme.com; dmarc=fail"
    )


def test_the_real_primary_contact_with_a_trusted_dmarc_pass_gets_a_ticket(engine, acme):
    row = route(engine, mail(
        "forger.example; dmarc=fail",
        f"{MX}; dkim=pass header.d=acme.com; dmarc=pass (p=reject) header.from=acme.com",
    ))
    assert row.outcome == "ticket_created", row.reason
    assert tickets(engine) == 1
    assert "authenticated (dmarc" in decision_of(row, "policy")


def test_aligned_dkim_from_a_subdomain_authenticates(engine, acme):
    row = route(engine, mail(f"{MX}; dkim=pass header.d=mail.eu.acme.com"))
    assert row.outcome == "ticket_created", row.reason
    assert "aligned with acme.com" in decision_of(row, "policy")


# --- local DKIM with real signatures --------------------------------------------------------------


@pytest.fixture(scope="module")
def acme_key() -> DkimKey:
    return DkimKey("acme.com", selector="2026")


def test_a_real_dkim_signature_that_verifies_opens_a_ticket(engine, acme, acme_key, monkeypatch):
    monkeypatch.setattr(auth_dkim, "system_dns", dns_for(acme_key))
    row = route(engine, acme_key.sign(mail()), settings(dkim_verify=True))
    assert row.outcome == "ticket_created", row.reason
    assert "local-dkim" in decision_of(row, "policy")
    assert "the signature by d=acme.com s=2026 verifies and is aligned" in (
        decision_of(row, "policy")
    )


def test_a_signed_message_whose_body_was_altered_is_rejected(engine, acme, acme_key, monkeypatch):
    monkeypatch.setattr(auth_dkim, "system_dns", dns_for(acme_key))
    signed = acme_key.sign(mail(body="Please call me back."))
    tampered = signed.replace(b"Please call me back.", b"Please wire 9,800 EUR to our new bank.")
    row = route(engine, tampered, settings(dkim_verify=True))
    assert_rejected_unauthenticated(
        engine, row, "the signature by d=acme.com s=2026 fails (body hash mismatch"
    )


def test_a_valid_signature_by_the_forgers_own_domain_is_rejected(engine, acme, monkeypatch):
    forger = DkimKey("evil.example")
    monkeypatch.setattr(auth_dkim, "system_dns", dns_for(forger))
    row = route(engine, forger.sign(mail()), settings(dkim_verify=True))
    assert_rejected_unauthenticated(
        engine, row,
        "the signature by d=evil.example s=sel1 verifies but is not aligned with acme.com",
    )


# --- who must be authenticated --------------------------------------------------------------------


def test_the_installation_wide_switch_applies_to_every_client(engine, acme, monkeypatch):
    monkeypatch.setenv("TICKETPOST_REQUIRE_AUTHENTICATED_SENDER", "true")
    monkeypatch.setenv("TICKETPOST_TRUSTED_AUTHSERV_IDS", f"{MX}, mx2.msp.example")
    reset_settings()
    row = route(engine, mail(sender="rita@relaxed.example"), Settings())
    assert row.outcome == "rejected_unauthenticated"
    assert "the installation requires an authenticated sender" in row.reason

    genuine = mail("mx2.msp.example; dmarc=pass header.from=relaxed.example",
                   sender="rita@relaxed.example")
    assert route(engine, genuine, Settings()).outcome == "ticket_created"


def test_without_the_requirement_the_primary_contact_rule_does_not_check(engine, acme):
    row = route(engine, mail(sender="rita@relaxed.example"))
    assert row.outcome == "ticket_created", row.reason


def test_a_sender_who_is_not_the_primary_contact_is_rejected_as_not_primary(engine, acme):
    row = route(engine, mail(f"{MX}; dmarc=pass header.from=acme.com", sender="mallory@acme.com"))
    assert row.outcome == "rejected_not_primary"


# --- loops and mail storms ------------------------------------------------------------------------


def test_a_burst_of_thirty_mails_from_one_sender_opens_twenty_tickets(engine, acme):
    rows = [route(engine, mail(sender="storm@globex.example")) for _ in range(30)]
    outcomes = [row.outcome for row in rows]
    assert outcomes == ["ticket_created"] * 20 + ["ignored_loop"] * 10
    assert tickets(engine) == 20
    for row in rows[20:]:
        assert "rate limit is 20 per hour" in row.reason
        assert "rate limit" in decision_of(row, "rate_limit")
    calm = route(engine, mail(sender="calm@globex.example"))
    assert calm.outcome == "ticket_created"


def test_the_rate_limit_is_configurable(engine, acme):
    config = settings(rate_limit_per_hour=2)
    storm = [route(engine, mail(sender="storm@globex.example"), config) for _ in range(3)]
    outcomes = [row.outcome for row in storm]
    assert outcomes == ["ticket_created", "ticket_created", "ignored_loop"]


@pytest.mark.parametrize("pattern", [SUPPORT, "*@msp.example"])
def test_mail_from_our_own_support_address_is_a_loop(engine, acme, pattern):
    row = route(engine, mail(sender=f"Support <{SUPPORT}>"), settings(support_addresses=[pattern]))
    assert row.outcome == "ignored_loop"
    assert "one of our own support addresses" in row.reason
    assert tickets(engine) == 0
