"""One definition of an e-mail address: routing, the contacts API and the import agree."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin_api.services import contacts as contacts_service
from admin_api.services.errors import Invalid
from admin_api.services.import_contacts import normalize_email as import_normalize
from core.settings import Settings
from ingest.store import store_inbound
from models import Contact
from models.addresses import AddressPatterns, InvalidAddress, address_key, parse_address
from routing.pipeline import route_inbound
from tests.routing.world import build_world


def test_an_address_keeps_its_local_part_and_gets_a_canonical_domain():
    address = parse_address("  Bob.Builder@Bücher.EXAMPLE ")
    assert (address.local, address.domain) == ("Bob.Builder", "xn--bcher-kva.example")
    assert address.key == "bob.builder@xn--bcher-kva.example"


@pytest.mark.parametrize("text", [
    "bob", "@acme.com", "bob@", "a..b@acme.com", '"quoted"@acme.com', "bob@localhost",
    "bob@host.local", "bob@acme", "bob@acme.com/x", "x" * 250 + "@acme.com",
])
def test_what_is_not_an_address_is_refused_with_a_reason(text):
    with pytest.raises(InvalidAddress) as refused:
        parse_address(text)
    assert str(refused.value)


@pytest.mark.parametrize("text", [
    "bob@acme.com", "Bob@ACME.com", "jörg@bücher.example", "o'neil+tag@eu.acme.com", "bob@local",
    "bob@host.local", '"q"@acme.com', "a..b@acme.com",
])
def test_the_contacts_api_and_the_import_give_the_same_answer(text):
    try:
        expected = parse_address(text).key
    except InvalidAddress:
        expected = None
    try:
        api = contacts_service.normalize_email(text)
    except Invalid:
        api = None
    try:
        imported = import_normalize(text)
    except ValueError:
        imported = None
    assert api == imported == expected


def test_support_address_patterns_match_case_and_idna_insensitively():
    patterns = AddressPatterns.from_entries(["Help@MSP.example", "*@bücher.example"])
    assert patterns.match("help@msp.EXAMPLE") == "help@msp.example"
    assert patterns.match("<anyone@xn--bcher-kva.example>") == "*@xn--bcher-kva.example"
    assert patterns.match("other@msp.example") is None
    assert address_key("not an address") == "not an address"


def _route(engine, sender):
    raw = (f"From: Someone <{sender}>\r\nTo: support@msp.example\r\nSubject: hello\r\n"
           f"Message-ID: <{abs(hash(sender))}@x>\r\n\r\nbody\r\n").encode()
    return route_inbound(store_inbound(raw=raw, source="smtp", engine=engine), engine=engine,
                         settings=Settings(unmatched_policy="triage"))


def test_routing_refuses_a_sender_the_contacts_api_refuses_and_creates_no_contact(engine):
    with Session(engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    sender = '"bob.q"@acme.com'  # a quoted local part at a client's domain
    with pytest.raises(Invalid):
        contacts_service.normalize_email(sender)
    result = _route(engine, sender)
    assert result.outcome == "rejected_invalid_sender"
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Contact).where(
            Contact.email.like("%bob.q%"))) == 0


def test_support_addresses_written_as_unicode_are_recognised_as_our_own(engine):
    with Session(engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    raw = (b"From: help@xn--bcher-kva.example\r\nTo: x@acme.com\r\nSubject: loop\r\n"
           b"Message-ID: <loop1@x>\r\n\r\nbody\r\n")
    result = route_inbound(store_inbound(raw=raw, source="smtp", engine=engine), engine=engine,
                           settings=Settings(support_addresses=["help@bücher.example"]))
    assert result.outcome == "ignored_loop"
