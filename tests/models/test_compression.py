"""PostgreSQL keeps stored mail compressed with lz4 (migration 0005)."""

from __future__ import annotations

from sqlalchemy import text

from models.db import make_engine


def test_stored_mail_and_ticket_text_are_compressed_with_lz4(pg_url):
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            methods = dict(conn.execute(text(
                "SELECT attrelid::regclass::text || '.' || attname, attcompression FROM pg_attribute "
                "WHERE (attrelid, attname) IN (('inbound_messages'::regclass, 'raw'), "
                "('ticket_messages'::regclass, 'body_text'))")).all())
    finally:
        engine.dispose()
    assert methods == {"inbound_messages.raw": "l", "ticket_messages.body_text": "l"}
