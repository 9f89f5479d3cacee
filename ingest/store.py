"""The one write path of inbound messages: every SMTP, IMAP and CLI message is stored here.

``inbound_values`` builds a row (one hash: :func:`models.inbound.content_sha256`); ``insert_inbound``
INSERTs any number of rows with one multi-row statement inside the caller's transaction and
returns their ids in row order; ``store_inbound`` is the one-message form that also COMMITs.
Only after the COMMIT may a sender be acknowledged (SMTP 250, IMAP ``\\Seen``). Parsing is the
router's job: storing never fails because of what the bytes contain.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from models import InboundMessage
from models.db import get_engine
from models.inbound import content_sha256

__all__ = ["InboundOrderError", "content_sha256", "inbound_values", "insert_inbound",
           "store_inbound"]

_INBOUND = InboundMessage.__table__


class InboundOrderError(RuntimeError):
    """Raised when the database numbered a multi-row INSERT out of row order (never seen; the
    transaction is rolled back rather than telling a sender someone else's id)."""


def inbound_values(
    *,
    raw: bytes,
    source: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
    message_id: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    status: str = "received",
    outcome: str | None = None,
    reason: str | None = None,
    explanation: list | None = None,
    sender_email: str | None = None,
    subject: str | None = None,
) -> dict:
    """The column values of a newly stored message, for :func:`insert_inbound`.

    A message to route has status ``received`` and only the intake columns. A message intake
    already decided (an IMAP message too large to download: empty ``raw``, its real ``size``,
    status and outcome ``failed`` with a reason) passes those too. Every row has the same keys,
    so rows of both kinds go into one multi-row INSERT.
    """
    return {
        "source": source,
        "message_id": message_id,
        "envelope_from": envelope_from,
        "envelope_to": list(envelope_to),
        "raw": raw,
        "size": len(raw) if size is None else size,
        "sha256": sha256 or content_sha256(raw),
        "status": status,
        "outcome": outcome,
        "reason": reason,
        "explanation": list(explanation or []),
        "sender_email": sender_email,
        "subject": subject,
    }


def insert_inbound(conn: Connection | Session, rows: Sequence[dict]) -> list[int]:
    """INSERT ``rows`` (from :func:`inbound_values`) in the caller's transaction; ids in row order.

    One multi-row ``INSERT ... RETURNING id, sha256`` on both databases (SQLAlchemy's
    ``sort_by_parameter_order`` would fall back to one statement per row on SQLite). The ids are
    put in row order by sorting them: both databases number the rows of one statement in the order
    of its VALUES, ascending (SQLite: rowid = max + 1 per row under the write lock; PostgreSQL: one
    ``nextval`` per row as the VALUES are scanned, never decreasing). The returned SHA-256 of every
    row is checked against the row it is matched with, so a numbering out of order could never
    tell a sender someone else's id: it raises :class:`InboundOrderError` and the caller's
    transaction rolls back. The caller commits.
    """
    if not rows:
        return []
    returned = sorted(
        conn.execute(insert(_INBOUND).returning(_INBOUND.c.id, _INBOUND.c.sha256), list(rows)).all()
    )
    if len(returned) != len(rows) or any(
        digest != row["sha256"] for (_, digest), row in zip(returned, rows)
    ):
        raise InboundOrderError("the database returned the inserted ids out of row order")
    return [inbound_id for inbound_id, _ in returned]


def store_inbound(
    *,
    raw: bytes,
    source: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
    engine: Engine | None = None,
) -> int:
    """INSERT the raw message with status ``received`` and COMMIT; return its id."""
    values = inbound_values(raw=raw, source=source, envelope_from=envelope_from,
                            envelope_to=envelope_to)
    with (engine or get_engine()).begin() as conn:
        return insert_inbound(conn, [values])[0]
