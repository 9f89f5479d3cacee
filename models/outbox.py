"""The outbox: every message ticketpost sends (mail or webhook), written before it is sent.

A row is written in the same transaction as the decision that causes it (routing's outcome, an
API call), so nothing is sent for a decision that rolled back and nothing decided is forgotten.
The dispatcher (``routing.outbox``) sends due rows and records the result on them; the row is the
source of truth, the queue only carries ids. Delivery is at least once: a row whose sender died
mid-send is sent again, with the same ``message_id``.

Kinds: ``acknowledgement`` and ``notice`` are mail (``recipient`` an address, ``message_id`` the
Message-ID it carries); ``webhook`` is an HTTP POST (``target_id`` the subscription, ``payload``
the body). What a kind needs beyond the common columns travels in ``payload`` (JSON).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, utcnow

OUTBOX_KINDS = ("acknowledgement", "notice", "webhook")
OUTBOX_STATUSES = ("pending", "sent", "failed")
#: Mail kinds: the templates a client may override (``GET/PUT /clients/{id}/templates/{kind}``).
TEMPLATE_KINDS = ("acknowledgement", "notice_not_primary", "notice_unknown_sender")


class OutboxItem(Base):
    """One message to send, its attempts, and how it ended."""

    __tablename__ = "outbox"
    __table_args__ = (
        # the dispatcher's scan for due rows
        Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),
        # the per-recipient limits (one notice per interval, acknowledgements per hour)
        Index("ix_outbox_recipient_kind_created", "recipient", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    recipient: Mapped[str | None] = mapped_column(String(320))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL"), index=True
    )
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    target_id: Mapped[int | None] = mapped_column(Integer, index=True)  # webhook: the subscription
    payload: Mapped[dict | None] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)  # the last error; why it failed
    last_status_code: Mapped[int | None] = mapped_column(Integer)  # SMTP reply or HTTP status
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClientTemplate(Base):
    """A client's own text for one kind of mail (else the installation default is used)."""

    __tablename__ = "client_templates"
    __table_args__ = (UniqueConstraint("client_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
