"""Whatever bytes arrive, routing ends with an outcome: never an unhandled exception (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from ingest.store import store_inbound
from models import OUTCOMES, InboundMessage
from routing.pipeline import route_inbound
from tests.routing.world import build_world
from core.settings import Settings

MAIL = Path(__file__).resolve().parent.parent / "mail"
REAL = [p.read_bytes() for p in sorted(MAIL.glob("*.eml"))]
FUZZ = hsettings(max_examples=60, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ROUTING_SETTINGS = Settings(support_addresses=["support@msp.example"], rate_limit_per_hour=1000)

# Bytes that make parsers trip: MIME syntax, encoded-word markers, NUL, 8-bit, line ends.
TRICKY = st.sampled_from([b"\x00", b"\r", b"\n", b"\r\n\r\n", b"--", b"=?", b"?=", b"=?utf-8?b?", b"\xff",
                          b"\xc3", b"<", b">", b"@", b":", b";", b'"', b"boundary=", b"Content-Type: multipart/mixed",
                          b"Content-Transfer-Encoding: base64", b"charset=koi8-r", b"From: ", b"\t"])


@st.composite
def mutated_real_message(draw):
    raw = bytearray(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "replace", "delete", "truncate"]))
        pos = draw(st.integers(0, len(raw)))
        if op == "insert":
            raw[pos:pos] = draw(st.one_of(TRICKY, st.binary(min_size=1, max_size=40)))
        elif op == "replace":
            raw[pos:pos + draw(st.integers(1, 30))] = draw(st.one_of(TRICKY, st.binary(max_size=30)))
        elif op == "delete":
            del raw[pos:pos + draw(st.integers(1, 50))]
        else:
            del raw[pos:]
    return bytes(raw)


@pytest.fixture
def world_engine(engine):
    with Session(engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    return engine


def assert_routes_to_an_outcome(engine, raw: bytes) -> None:
    note(repr(raw))
    inbound_id = store_inbound(raw=raw, source="smtp", envelope_from="x@y.example", engine=engine)
    result = route_inbound(inbound_id, engine=engine, settings=ROUTING_SETTINGS)
    assert result.outcome in OUTCOMES and result.outcome != "failed"
    with Session(engine) as session:
        assert session.get(InboundMessage, inbound_id).status == "routed"


@pytest.mark.slow
@FUZZ
@given(raw=st.binary(max_size=3000))
def test_arbitrary_bytes_always_get_an_outcome(world_engine, raw):
    assert_routes_to_an_outcome(world_engine, raw)


@pytest.mark.slow
@FUZZ
@given(raw=mutated_real_message())
def test_mutated_real_messages_always_get_an_outcome(world_engine, raw):
    assert_routes_to_an_outcome(world_engine, raw)


@pytest.mark.slow
@FUZZ
@given(name=st.text(max_size=40), subject=st.text(max_size=80), body=st.text(max_size=300),
       local=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20))
def test_arbitrary_text_in_headers_and_body_always_gets_an_outcome(world_engine, name, subject, body, local):
    raw = (f"From: {name} <{local}@acme.com>\r\nSubject: {subject}\r\nMessage-ID: <{local}@x>\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode("utf-8", "surrogatepass")
    assert_routes_to_an_outcome(world_engine, raw)
