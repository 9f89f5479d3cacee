"""Store one raw inbound message durably, then hand its id to the routing queue."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from models import InboundMessage
from models.db import get_engine


def store_inbound(
    *,
    raw: bytes,
    source: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
    engine: Engine | None = None,
) -> int:
    """INSERT the raw message with status ``received`` and COMMIT; return its id.

    Only after this returns may a sender be acknowledged (SMTP 250, IMAP \\Seen). Parsing is the
    router's job: storing never fails because of what the bytes contain.
    """
    # One Core INSERT ... RETURNING in its own transaction: the same row as add_inbound, at less
    # than half the CPU of an ORM session (this runs once per SMTP message, on the hot path).
    with (engine or get_engine()).begin() as conn:
        return conn.execute(
            insert(InboundMessage).returning(InboundMessage.id),
            {
                "source": source,
                "envelope_from": envelope_from,
                "envelope_to": list(envelope_to),
                "raw": raw,
                "size": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(),
                "status": "received",
            },
        ).scalar_one()


def add_inbound(
    session: Session,
    *,
    raw: bytes,
    source: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
    message_id: str | None = None,
    flush: bool = True,
) -> InboundMessage:
    """Add the raw message (status ``received``) to ``session`` and flush; the caller commits.

    For intake that must commit more than the message in the same transaction (the IMAP poller
    commits its checkpoint with the messages it stored, and records the Message-ID it de-duplicates
    by; the router sets it anyway). ``flush=False`` leaves the INSERT to the caller's next flush, so
    a batch of messages goes to the database as one multi-row INSERT.
    """
    row = InboundMessage(
        source=source,
        message_id=message_id,
        envelope_from=envelope_from,
        envelope_to=list(envelope_to),
        raw=raw,
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        status="received",
    )
    session.add(row)
    if flush:
        session.flush()
    return row
