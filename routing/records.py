"""The rows routing reads on its hot path, as lean read-only tuples instead of ORM entities.

Loading an ORM entity costs about twice a Core row and fetches every column (a client has 17);
routing reads a handful. Each view names the columns it needs; :func:`columns` selects them
(labelled, so several views fit one SELECT) and :func:`take` cuts a view back out of a row. The
views carry the same attribute names as the entities, so code shared with the admin API (such as
routing.tickets) takes either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Table


class InboundRow(NamedTuple):
    """The stored inbound message being routed (locked while it is)."""

    id: int
    raw: bytes | None
    sha256: str | None
    source: str
    status: str
    envelope_from: str | None
    received_at: datetime
    attempts: int
    outcome: str | None
    reason: str | None
    explanation: list | None
    client_id: int | None
    contact_id: int | None
    ticket_id: int | None


class ClientRow(NamedTuple):
    """What routing decides with about a client."""

    id: int
    name: str
    sla_id: int | None
    tickets_only_by_primary_contact: bool
    require_authenticated_sender: bool
    send_acknowledgements: bool


class ContactRow(NamedTuple):
    """What routing decides with about a contact."""

    id: int
    client_id: int
    first_name: str
    last_name: str
    email: str
    is_primary: bool
    ignore_email: bool


class SlaRow(NamedTuple):
    """An SLA's terms, as a new ticket copies them (routing.tickets.sla_snapshot)."""

    id: int
    name: str
    first_response_minutes: int | None
    resolution_minutes: int | None
    business_hours: dict | None


class TicketRow(NamedTuple):
    """A ticket a reply may thread onto."""

    id: int
    number: int
    client_id: int | None
    status: str
    subject: str  # for the ticket.updated webhook event


def columns(view: type[NamedTuple], table: Table, prefix: str = "") -> list:
    """The columns of ``table`` that ``view`` holds, in its order (labelled ``prefix + name``)."""
    return [table.c[name].label(prefix + name) if prefix else table.c[name] for name in view._fields]


def take(view: type[NamedTuple], row: Any, start: int = 0):
    """The ``view`` at ``row[start:]``; None when its first column (the id) is NULL."""
    if row[start] is None:
        return None
    return view._make(row[start:start + len(view._fields)])
