"""Tickets, their messages, and the Message-IDs of mail we sent about them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, JSONType, UTCDateTime, utcnow

TICKET_STATUSES = ("open", "pending", "resolved", "closed")
TICKET_CHANNELS = ("email", "portal", "api")


class Ticket(Base):
    """A support request; ``client_id`` null means it waits in triage."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int | None] = mapped_column(Integer, unique=True)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    channel: Mapped[str] = mapped_column(String(20), default="email")
    contract_id: Mapped[int | None] = mapped_column(
        ForeignKey("contracts.id", ondelete="SET NULL")
    )
    sla_snapshot: Mapped[dict | None] = mapped_column(JSONType)
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    messages: Mapped[list["TicketMessage"]] = relationship(
        back_populates="ticket", order_by="TicketMessage.id", cascade="all, delete-orphan"
    )


class TicketMessage(Base):
    """One message on a ticket; an inbound message lands on at most one ticket, once."""

    __tablename__ = "ticket_messages"
    __table_args__ = (Index("ix_ticket_messages_message_id_sender", "message_id", "sender_email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL"), unique=True
    )
    message_id: Mapped[str | None] = mapped_column(String(998))
    sender_email: Mapped[str | None] = mapped_column(String(320))
    body_text: Mapped[str] = mapped_column(Text, default="")
    #: The new part of a reply (no quoted history, no signature); NULL: the whole body_text.
    reply_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: One entry per file (routing.mailparse.Attachment.as_dict): index, filename, content_type,
    #: size, sha256, inline, content_id, and where its bytes are in the raw message (location).
    attachments: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")


class OutboundMessage(Base):
    """The Message-ID of a mail we sent about a ticket, so replies to it thread."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
