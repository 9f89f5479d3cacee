"""Webhook events: their bodies, and the deliveries written in the transaction of the event.

:func:`write_event` is one ``INSERT INTO outbox … SELECT … FROM webhooks`` that writes a
delivery (outbox row of kind ``webhook``) for every enabled webhook subscribed to the event, in
the caller's transaction: with routing's outcome (:func:`write_outcome_event`, called where the
outcome is recorded), with the dispatcher's record of a failed mail (:func:`outbox_failed`, an
outbox ``FAILED_HOOKS`` hook) and with a mailbox's change to unhealthy (:func:`mailbox_unhealthy`).
With no webhook subscribed it writes nothing, in that one statement; routing does not even send
it while no webhook is enabled (routing.statements.ANY_WEBHOOK, read with its lock statement).

The body is ``{"type", "timestamp", "data"}``; ``data`` carries the ids, the outcome, the reason
and what a helpdesk needs to act without asking back: the ticket's number, subject and status,
the client's id and name, the contact's id, e-mail and name, the inbound message's id, source,
Message-ID, subject and sender. The ``webhook-id`` of a delivery (``outbox.message_id``) is
``msg_<event id>_<webhook id>``: one per event and endpoint, the same on every retry.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import DateTime, Integer, String, bindparam, cast, insert, literal, select, type_coerce
from sqlalchemy.engine import Connection

from models import OutboxItem, Webhook, utcnow
from models.base import JSONType, UTCDateTime
from routing.prepared import Prepared

#: routing outcome -> event (ignored_* outcomes are not events)
OUTCOME_EVENTS = {
    "ticket_created": "ticket.created",
    "triaged": "ticket.created",
    "ticket_updated": "ticket.updated",
    "rejected_unknown_sender": "inbound.rejected",
    "rejected_not_primary": "inbound.rejected",
    "rejected_unauthenticated": "inbound.rejected",
    "rejected_invalid_sender": "inbound.rejected",
    "failed": "inbound.failed",
}

_OUTBOX, _WEBHOOKS = OutboxItem.__table__, Webhook.__table__
_COLUMNS = ("kind", "status", "target_id", "ticket_id", "inbound_id", "client_id", "message_id", "payload",
            "attempts", "next_attempt_at", "created_at", "updated_at")


def _insert_deliveries(postgres: bool, *, one_webhook: bool):
    """INSERT … SELECT of one delivery per matching webhook (typed casts for PostgreSQL)."""

    def param(name: str, type_):
        p = bindparam(name, type_=type_)
        return cast(p, type_) if postgres else type_coerce(p, type_)

    when = param("w_now", UTCDateTime())
    if postgres:
        when = cast(bindparam("w_now", type_=UTCDateTime()), DateTime(timezone=True))
    pick = select(
        literal("webhook"), literal("pending"), _WEBHOOKS.c.id,
        param("w_ticket_id", Integer()), param("w_inbound_id", Integer()), param("w_client_id", Integer()),
        param("w_event_id", String()).concat(cast(_WEBHOOKS.c.id, String)),
        param("w_payload", JSONType), literal(0), when, when, when,
    ).where(_WEBHOOKS.c.enabled.is_(True), _WEBHOOKS.c.events.like(bindparam("w_pattern", type_=String())))
    if one_webhook:
        pick = pick.where(_WEBHOOKS.c.id == bindparam("w_webhook_id", type_=Integer()))
    return insert(_OUTBOX).from_select(_COLUMNS, pick).returning(_OUTBOX.c.id)


_INSERT = Prepared(_insert_deliveries(False, one_webhook=False),
                   postgresql=_insert_deliveries(True, one_webhook=False))
_INSERT_ONE = Prepared(_insert_deliveries(False, one_webhook=True),
                       postgresql=_insert_deliveries(True, one_webhook=True))


def body(event: str, data: dict[str, Any], *, at=None) -> dict[str, Any]:
    """The JSON body of an event: ``{"type", "timestamp" (ISO-8601, UTC), "data"}``."""
    at = at or utcnow()
    return {"type": event, "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "data": data}


def write_event(db: Connection, event: str, data: dict[str, Any], *, ticket_id: int | None = None,
                inbound_id: int | None = None, client_id: int | None = None,
                webhook_id: int | None = None) -> list[int]:
    """Write the deliveries of ``event`` in ``db``'s transaction; return the outbox ids written.

    ``webhook_id`` limits it to that webhook (replays and ``webhook.test``, which any enabled
    webhook receives whatever it subscribed to).
    """
    now = utcnow()
    params = {
        "w_now": now, "w_ticket_id": ticket_id, "w_inbound_id": inbound_id, "w_client_id": client_id,
        "w_event_id": f"msg_{uuid.uuid4().hex}_", "w_payload": body(event, data, at=now),
        "w_pattern": "%" if webhook_id is not None else f"% {event} %",
    }
    if webhook_id is not None:
        params["w_webhook_id"] = webhook_id
        return [r[0] for r in _INSERT_ONE.rows(db, params)]
    return [r[0] for r in _INSERT.rows(db, params)]


# --- the events ---------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def routing_about(ctx) -> dict[str, Any]:
    """What the event of routing's outcome tells beyond the ids (from a RoutingContext)."""
    mail = ctx.mail
    about: dict[str, Any] = {
        "source": ctx.inbound.source,
        "received_at": _iso(ctx.inbound.received_at),
        "message_id": ctx.message_id or None,
        "subject": (mail.subject if mail is not None else None),
        "sender": ctx.sender_email,
    }
    if ctx.client is not None:
        about["client"] = {"id": ctx.client.id, "name": ctx.client.name}
    if ctx.contact is not None:
        c = ctx.contact
        about["contact"] = {"id": c.id, "email": c.email, "name": f"{c.first_name} {c.last_name}".strip(),
                            "is_primary": c.is_primary}
    if ctx.ticket is not None:
        about["ticket"] = {"subject": ctx.ticket.subject, "status": ctx.ticket_status or ctx.ticket.status}
    elif ctx.new_ticket is not None:
        about["ticket"] = {"subject": ctx.new_ticket.get("subject"), "status": ctx.new_ticket.get("status", "open")}
    return about


def write_outcome_event(db: Connection, *, inbound_id: int, outcome: str, reason: str, client_id: int | None,
                        contact_id: int | None, ticket_id: int | None, ticket_number: int | None,
                        about: dict[str, Any] | None) -> list[int]:
    """The event of a routing outcome (``OUTCOME_EVENTS``), written with it; [] for no event."""
    event = OUTCOME_EVENTS.get(outcome)
    if event is None:
        return []
    about = dict(about or {})
    ticket = about.pop("ticket", None)
    client = about.pop("client", None) or ({"id": client_id, "name": None} if client_id is not None else None)
    contact = about.pop("contact", None) or ({"id": contact_id} if contact_id is not None else None)
    data: dict[str, Any] = {
        "outcome": outcome,
        "reason": reason,
        "inbound": {"id": inbound_id, **about},
        "ticket": ({"id": ticket_id, "number": ticket_number, **(ticket or {})} if ticket_id is not None else None),
        "client": client,
        "contact": contact,
    }
    return write_event(db, event, data, ticket_id=ticket_id, inbound_id=inbound_id, client_id=client_id)


def outbox_failed(db: Connection, rows: list) -> None:
    """``outbox.failed`` for mail the dispatcher gave up on (a FAILED_HOOKS hook; not for webhooks,
    whose own failures would otherwise feed each other). Reads the final reason back first."""
    mail = [r.id for r in rows if r.kind != "webhook"]
    if not mail:
        return
    final = db.execute(select(_OUTBOX.c.id, _OUTBOX.c.kind, _OUTBOX.c.recipient, _OUTBOX.c.message_id,
                              _OUTBOX.c.attempts, _OUTBOX.c.last_status_code, _OUTBOX.c.reason,
                              _OUTBOX.c.ticket_id, _OUTBOX.c.inbound_id, _OUTBOX.c.client_id)
                       .where(_OUTBOX.c.id.in_(mail)).order_by(_OUTBOX.c.id))
    for row in final:
        data = {
            "outbox": {"id": row.id, "kind": row.kind, "recipient": row.recipient, "message_id": row.message_id,
                       "attempts": row.attempts, "last_status_code": row.last_status_code},
            "reason": row.reason,
            "ticket": {"id": row.ticket_id} if row.ticket_id is not None else None,
            "inbound": {"id": row.inbound_id} if row.inbound_id is not None else None,
            "client": {"id": row.client_id} if row.client_id is not None else None,
        }
        write_event(db, "outbox.failed", data, ticket_id=row.ticket_id, inbound_id=row.inbound_id,
                    client_id=row.client_id)


def mailbox_unhealthy(db: Connection, *, mailbox: dict[str, Any], health: str, reason: str) -> list[int]:
    """``mailbox.unhealthy`` when a mailbox turns ``failing`` or ``auth_failed``."""
    data = {"mailbox": mailbox, "health": health, "reason": reason}
    return write_event(db, "mailbox.unhealthy", data)
