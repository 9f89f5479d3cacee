"""Replay leaves alone a record whose message was never downloaded (an IMAP oversize stub)."""

from __future__ import annotations

from sqlalchemy import update

from ingest.store import store_inbound
from models import InboundMessage
from models.db import session_scope
from routing.replay import replay_report


def _oversize_stub(engine) -> int:
    inbound_id = store_inbound(raw=b"", source="imap:support", engine=engine)
    reason = "message of 40 MiB is over the 25 MiB limit: not downloaded"
    with session_scope(engine) as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id)
            .values(size=40 * 1024 * 1024, status="failed", outcome="failed", reason=reason)
        )
    return inbound_id


def test_a_replay_of_failed_mail_skips_a_message_that_was_never_downloaded(engine):
    stub = _oversize_stub(engine)
    failed = store_inbound(raw=b"From: a@b.example\r\n\r\nhi", source="smtp", engine=engine)
    with session_scope(engine) as session:
        session.execute(update(InboundMessage).where(InboundMessage.id == failed)
                        .values(status="failed", outcome="failed", reason="db down"))

    report = replay_report(status="failed", engine=engine)

    assert report.skipped_not_downloaded == [stub]
    assert report.replayed == [failed]
    with session_scope(engine) as session:
        kept = session.get(InboundMessage, stub)
        assert (kept.status, kept.outcome) == ("failed", "failed")
        assert "not downloaded" in kept.reason
