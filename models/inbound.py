"""The stored raw inbound message: the source of truth of the mail flow."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, utcnow

INBOUND_STATUSES = ("received", "routed", "failed")

OUTCOMES = (
    "ticket_created",
    "ticket_updated",
    "triaged",
    "rejected_unknown_sender",
    "rejected_not_primary",
    "rejected_unauthenticated",
    "rejected_invalid_sender",
    "ignored_auto_reply",
    "ignored_bounce",
    "ignored_loop",
    "ignored_duplicate",
    "ignored_contact_muted",
    "failed",
)


def content_sha256(raw: bytes) -> str:
    """The SHA-256 of ``raw`` as hex: the ``sha256`` column of every stored message.

    Fed in pieces under 2 KiB: hashlib releases the GIL for inputs of 2 KiB and more; next to
    CPU-bound routing threads each release costs up to a switch interval (5 ms) to win the GIL
    back, which dominated a batch of IMAP intake. Small pieces are hashed without releasing it, at
    the same speed.
    """
    digest = hashlib.sha256()
    view = memoryview(raw)
    for start in range(0, len(view), 2047):
        digest.update(view[start:start + 2047])
    return digest.hexdigest()


#: The rows ix_inbound_new_tickets_by_sender holds (routing.sender_record.RECENT_NEW_TICKETS).
NEW_TICKET_PREDICATE = "outcome IN ('ticket_created', 'triaged')"


class InboundMessage(Base):
    """One accepted message: raw bytes first, the routing decision later."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_status_received", "status", "received_at"),
        # The storm guard's count of a sender's new tickets in the last hour (migration 0004):
        # partial, so it holds only messages that opened a ticket, and covering (id), so the count
        # reads the index, not the rows.
        Index("ix_inbound_new_tickets_by_sender", "sender_email", "received_at",
              postgresql_include=["id"],
              postgresql_where=text(NEW_TICKET_PREDICATE), sqlite_where=text(NEW_TICKET_PREDICATE)),
        # Covers the metrics' count by source, status and outcome (migration 0003).
        Index("ix_inbound_source_status_outcome", "source", "status", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200), default="cli")
    envelope_from: Mapped[str | None] = mapped_column(String(998))
    envelope_to: Mapped[list] = mapped_column(JSONType, default=list)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    sender_email: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="received")
    outcome: Mapped[str | None] = mapped_column(String(40), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[list] = mapped_column(JSONType, default=list)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
