"""Routing parses and decodes a message before it takes any write lock (issue 15, item 2).

A message that takes long to decode must not hold SQLite's write lock (which every SMTP
acknowledgement needs) nor PostgreSQL's row and duplicate locks while it is decoded.
"""

from __future__ import annotations

import threading

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.settings import Settings
from ingest.store import store_inbound
from routing import pipeline
from routing.pipeline import route_inbound
from tests.routing.world import build_world

SLOW = (b"From: bob@acme.com\r\nTo: support@msp.example\r\nSubject: slow\r\nMessage-ID: <slow@acme.com>\r\n"
        b"Content-Type: text/html\r\n\r\n" + b'<a b="' * 200 + b"\r\n")


def test_mail_is_stored_while_another_message_is_being_decoded(engine, monkeypatch):
    with Session(engine, expire_on_commit=False) as session, session.begin():
        build_world(session)
    decoding, release = threading.Event(), threading.Event()
    real_extract = pipeline.extract

    def slow_extract(ctx):
        decoding.set()
        release.wait(60)  # stands in for minutes of HTML-to-text work on a hostile body
        real_extract(ctx)

    slow_extract.__name__ = "extract"
    steps = pipeline.MESSAGE_STEPS
    monkeypatch.setattr(pipeline, "MESSAGE_STEPS", tuple(slow_extract if s is real_extract else s for s in steps))
    slow_id = store_inbound(raw=SLOW, source="smtp", engine=engine)
    results = []
    router = threading.Thread(target=lambda: results.append(
        route_inbound(slow_id, engine=engine, settings=Settings())))
    router.start()
    try:
        assert decoding.wait(30)
        # what an SMTP acknowledgement needs: a committed write (SQLite: the write lock) ...
        other_id = store_inbound(raw=SLOW.replace(b"<slow@", b"<other@"), source="smtp", engine=engine)
        # ... and no lock held by the routing transaction on the row being routed
        with engine.connect() as db:
            if engine.dialect.name == "postgresql":
                db.execute(text("SET lock_timeout = '5s'"))
                db.execute(text("SELECT id FROM inbound_messages WHERE id = :id FOR UPDATE NOWAIT"),
                           {"id": slow_id})
            db.rollback()
    finally:
        release.set()
        router.join(60)
    assert other_id > slow_id
    assert results and results[0].outcome == "ticket_created"
