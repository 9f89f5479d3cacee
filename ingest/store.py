"""Store one raw inbound message durably, then hand its id to the routing queue."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from models import InboundMessage
from models.db import session_scope


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
    with session_scope(engine) as session:
        return add_inbound(
            session, raw=raw, source=source, envelope_from=envelope_from, envelope_to=envelope_to
        ).id


def add_inbound(
    session: Session,
    *,
    raw: bytes,
    source: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
    message_id: str | None = None,
) -> InboundMessage:
    """Add the raw message (status ``received``) to ``session`` and flush; the caller commits.

    For intake that must commit more than the message in the same transaction (the IMAP poller
    commits its checkpoint with the messages it stored, and records the Message-ID it de-duplicates
    by; the router sets it anyway).
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
    session.flush()
    return row
