"""A webhook subscription (SPEC §11): where events are POSTed, which ones, and the signing secret.

A delivery is an outbox row of kind ``webhook`` (``models.outbox``: ``target_id`` is the
subscription, ``payload`` the body, ``message_id`` the ``webhook-id``); each attempt at it is a
:class:`WebhookAttempt` (status code, duration, error), listed by
``GET /api/v1/webhooks/{id}/deliveries``.

``events`` is stored as one space-separated string with a space at both ends
(``" ticket.created inbound.failed "``), so "which enabled webhooks want this event" is a portable
``LIKE '% ticket.created %'`` inside the INSERT … SELECT that writes the deliveries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.secrets import decrypt_secret, encrypt_secret

#: The events a webhook may subscribe to (``webhook.test`` is sent by the test endpoint only).
WEBHOOK_EVENTS = (
    "ticket.created", "ticket.updated", "inbound.rejected", "inbound.failed", "outbox.failed",
    "mailbox.unhealthy",
)
TEST_EVENT = "webhook.test"


def events_column(events: list[str]) -> str:
    """The stored form of a list of events: ``" a b "`` (see the module docstring)."""
    return " " + " ".join(dict.fromkeys(events)) + " "


def events_list(stored: str | None) -> list[str]:
    """The list of events of the stored form."""
    return (stored or "").split()


#: The stored form of a secret kept without encryption (no TICKETPOST_SECRET_KEY configured).
PLAIN = b"plain:"


def seal_secret(secret: str, *, key: str | None) -> bytes:
    """The stored form of a webhook secret: encrypted with ``key`` (models.secrets), or, with no
    key configured, as it is behind :data:`PLAIN` (the webhook must still be able to sign)."""
    if key:
        return encrypt_secret(secret, key=key)
    return PLAIN + secret.encode("utf-8")


def open_secret(blob: bytes, *, key: str | None) -> str:
    """The secret :func:`seal_secret` stored; raises SecretKeyMissing or SecretUndecryptable."""
    blob = bytes(blob)
    if blob.startswith(PLAIN):
        return blob[len(PLAIN):].decode("utf-8")
    return decrypt_secret(blob, key=key)


class Webhook(Base):
    """An endpoint that receives signed JSON POSTs for the events it subscribed to."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[str] = mapped_column(String(1000))
    description: Mapped[str | None] = mapped_column(String(500))
    # whsec_… encrypted with TICKETPOST_SECRET_KEY (models.secrets); the previous one signs too
    # until previous_secret_expires_at after a rotation
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # health: the first failure since the last success; disabled automatically after days of it
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookAttempt(Base):
    """One attempt at one delivery: when, the HTTP status (None: no answer), how long, the error."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    webhook_id: Mapped[int] = mapped_column(Integer, index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
