"""A client (customer company) and the mail domains that route to it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, func, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime, utcnow


class Client(Base):
    """A customer company of the MSP."""

    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    rank: Mapped[str | None] = mapped_column(String(100))
    business_id: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(50))
    fax: Mapped[str | None] = mapped_column(String(50))
    address: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(100))
    zip_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)
    tickets_only_by_primary_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    require_authenticated_sender: Mapped[bool] = mapped_column(Boolean, default=False)
    #: answer new tickets with an acknowledgement (when outbound mail is configured; SPEC §10)
    send_acknowledgements: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    sla_id: Mapped[int | None] = mapped_column(ForeignKey("slas.id", ondelete="SET NULL"))
    threshold_profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("threshold_profiles.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    domains: Mapped[list["ClientDomain"]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="ClientDomain.domain"
    )
    sla = relationship("Sla", lazy="select")
    threshold_profile = relationship("ThresholdProfile", lazy="select")


Index("uq_clients_name_lower", func.lower(Client.name), unique=True)


class ClientDomain(Base):
    """A mail domain (lower-case A-label, no ``@``) owned by exactly one client."""

    __tablename__ = "client_domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253), unique=True)

    client: Mapped[Client] = relationship(back_populates="domains")
