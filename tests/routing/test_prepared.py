"""routing.prepared runs a Core statement on the driver and answers exactly as SQLAlchemy does."""

from __future__ import annotations

from ingest.store import store_inbound
from routing.statements import LOCK_INBOUND_ROW as _LOCK_INBOUND


def test_a_prepared_statement_returns_what_sqlalchemy_returns_bytes_json_and_times_included(engine):
    raw = b"From: a@acme.com\r\nSubject: \xe4\r\n\r\n" + bytes(range(256)) * 40
    inbound_id = store_inbound(raw=raw, source="smtp", envelope_to=["help@msp.example"], engine=engine)
    with engine.connect() as db:
        db.begin()
        ours = _LOCK_INBOUND.first(db, {"inbound_id": inbound_id})
        theirs = tuple(db.execute(_LOCK_INBOUND.statement, {"inbound_id": inbound_id}).first())
        db.rollback()
    assert ours == theirs
    row = dict(zip(("id", "raw", "sha256", "source", "status", "envelope_from", "received_at"), ours))
    assert bytes(row["raw"]) == raw and row["id"] == inbound_id
    assert row["received_at"].utcoffset().total_seconds() == 0


def test_a_missing_row_is_none(engine):
    with engine.connect() as db:
        db.begin()
        assert _LOCK_INBOUND.first(db, {"inbound_id": 424242}) is None
        db.rollback()
