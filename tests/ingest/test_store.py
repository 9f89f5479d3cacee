"""The one write path of inbound messages (ingest.store): a batch stored, ids in row order."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
from sqlalchemy import select

from ingest.store import inbound_values, insert_inbound
from models import InboundMessage


@contextmanager
def driver_statements():
    """The SQL texts psycopg is given (execute and executemany) inside the block."""
    texts: list[str] = []
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def recording_execute(cursor, query, *args, **kwargs):
        texts.append(str(query))
        return execute(cursor, query, *args, **kwargs)

    def recording_executemany(cursor, query, *args, **kwargs):
        texts.append(str(query))
        return executemany(cursor, query, *args, **kwargs)

    psycopg.Cursor.execute, psycopg.Cursor.executemany = recording_execute, recording_executemany
    try:
        yield texts
    finally:
        psycopg.Cursor.execute, psycopg.Cursor.executemany = execute, executemany


def rows(n: int, tag: str) -> list[dict]:
    return [inbound_values(raw=f"Subject: {tag} {i}\r\n\r\n".encode() + bytes(range(256)), source="imap",
                           envelope_to=["support@msp.example"]) for i in range(n)]


def test_a_batch_is_stored_with_the_same_statement_whatever_its_size(pg_engine):
    with driver_statements() as sent, pg_engine.begin() as conn:
        insert_inbound(conn, rows(2, "two"))
        insert_inbound(conn, rows(7, "seven"))
    inserts = [text for text in sent if text.startswith("INSERT INTO inbound_messages")]
    assert len(inserts) == 2 and inserts[0] == inserts[1]  # so it is converted and planned once


def test_stored_ids_come_back_in_row_order_with_the_bytes_and_columns_intact(engine):
    batch = rows(5, "order")
    batch[2] = inbound_values(raw=b"", source="imap", size=99_000_000, status="failed", outcome="failed",
                              reason="too large", explanation=[{"step": "intake", "decision": "too large"}])
    with engine.begin() as conn:
        ids = insert_inbound(conn, batch)
    assert ids == sorted(ids) and len(set(ids)) == 5
    with engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(select(InboundMessage.__table__).where(InboundMessage.id.in_(ids)))}
    for inbound_id, row in zip(ids, batch):
        got = stored[inbound_id]
        assert (bytes(got.raw), got.sha256, got.size, got.status, got.outcome, got.reason, got.explanation,
                got.envelope_to, got.attempts) == (
            row["raw"], row["sha256"], row["size"], row["status"], row["outcome"], row["reason"],
            row["explanation"], row["envelope_to"], 0)
        assert got.received_at is not None
