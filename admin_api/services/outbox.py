"""The outbox seen from the API: list what was (or will be) sent, and send a row again.

A retry makes a ``failed`` (or waiting ``pending``) row due now with a fresh set of attempts
(``attempts`` starts again from 0; ``reason`` keeps the last error until it is sent); the
dispatcher sends it with the Message-ID it always had. A ``sent`` row is not sent again (409).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_api.services.errors import Conflict, NotFound
from admin_api.services.pages import Page, paginate
from models import OutboxItem, utcnow


def list_outbox(session: Session, *, status: str | None = None, kind: str | None = None,
                ticket_id: int | None = None, inbound_id: int | None = None, recipient: str | None = None,
                limit: int = 50, offset: int = 0) -> Page[OutboxItem]:
    """Outbox rows, newest first, filtered by status, kind, ticket, inbound message, recipient."""
    query = select(OutboxItem).order_by(OutboxItem.id.desc())
    if status is not None:
        query = query.where(OutboxItem.status == status)
    if kind is not None:
        query = query.where(OutboxItem.kind == kind)
    if ticket_id is not None:
        query = query.where(OutboxItem.ticket_id == ticket_id)
    if inbound_id is not None:
        query = query.where(OutboxItem.inbound_id == inbound_id)
    if recipient is not None:
        query = query.where(OutboxItem.recipient == recipient.strip().lower())
    return paginate(session, query, limit=limit, offset=offset)


def get_outbox_item(session: Session, *, item_id: int) -> OutboxItem:
    """The outbox row with this id; raises NotFound."""
    item = session.get(OutboxItem, item_id)
    if item is None:
        raise NotFound("outbox item", item_id)
    return item


def retry_outbox_item(session: Session, *, item_id: int) -> OutboxItem:
    """Make the row due now with fresh attempts; raises NotFound, Conflict (already sent)."""
    item = session.scalar(select(OutboxItem).where(OutboxItem.id == item_id).with_for_update())
    if item is None:
        raise NotFound("outbox item", item_id)
    if item.status == "sent":
        raise Conflict(f"outbox item {item_id} was already sent at {item.sent_at.isoformat()}; it is not sent twice")
    now = utcnow()
    item.status = "pending"
    item.attempts = 0
    item.next_attempt_at = now
    item.updated_at = now
    session.flush()
    return item
