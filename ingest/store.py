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
    values = inbound_values(raw=raw, source=source, envelope_from=envelope_from, envelope_to=envelope_to)
    return store_inbound_batch(rows=[values], engine=engine)[0]


def store_inbound_batch(*, rows: Sequence[dict], engine: Engine | None = None) -> list[int]:
    """INSERT ``rows`` (from ``inbound_values``) in one transaction, COMMIT once; ids in row order.

    Group commit for the SMTP listener: the messages that arrived together share one statement and
    one COMMIT, and all or none of them are stored. PostgreSQL gets one multi-row ``INSERT ...
    RETURNING`` whose ids come back in row order (``sort_by_parameter_order``: each session is told
    its own id even when two sessions sent the same bytes); SQLite runs one INSERT per row inside
    the transaction, which costs no round trips there. (:func:`insert_inbound_batch` matches ids
    by SHA-256 instead, which is only right where equal bytes mean equal rows, as in IMAP intake.)
    """
    if not rows:
        return []
    with (engine or get_engine()).begin() as conn:
        return list(
            conn.execute(
                insert(InboundMessage).returning(InboundMessage.id, sort_by_parameter_order=True),
                list(rows),
            ).scalars()
        )


def content_sha256(raw: bytes) -> str:
    """The SHA-256 of ``raw`` as hex, fed in pieces under 2 KiB.

    hashlib releases the GIL for inputs of 2 KiB and more; next to CPU-bound routing threads each
    release costs up to a switch interval (5 ms) to win the GIL back, which dominated a batch of IMAP
    intake. Small pieces are hashed without releasing it, at the same speed.
    """
    digest = hashlib.sha256()
    view = memoryview(raw)
    for start in range(0, len(view), 2047):
        digest.update(view[start:start + 2047])
    return digest.hexdigest()


def inbound_values(
    *,
    raw: bytes,
    source: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
    message_id: str | None = None,
    sha256: str | None = None,
) -> dict:
    """The column values of a newly stored message (status ``received``), for a Core INSERT."""
    return {
        "source": source,
        "message_id": message_id,
        "envelope_from": envelope_from,
        "envelope_to": list(envelope_to),
        "raw": raw,
        "size": len(raw),
        "sha256": sha256 or content_sha256(raw),
        "status": "received",
    }


def insert_inbound_batch(session: Session, rows: Sequence[dict]) -> list[int]:
    """INSERT ``rows`` (from ``inbound_values``) in ``session``'s transaction; ids in row order.

    Multi-row ``INSERT ... RETURNING`` instead of one statement per message; the caller commits.
    Rows come back matched by SHA-256, not by position: asking SQLAlchemy for parameter order
    makes it fall back to one statement per row on SQLite. Rows with equal SHA-256 hold equal
    bytes, so which of them gets which id does not matter.
    """
    if not rows:
        return []
    result = session.execute(
        insert(InboundMessage).returning(InboundMessage.id, InboundMessage.sha256), list(rows)
    )
    by_digest: dict[str, list[int]] = {}
    for inbound_id, digest in sorted(result.all()):
        by_digest.setdefault(digest, []).append(inbound_id)
    return [by_digest[row["sha256"]].pop(0) for row in rows]


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
