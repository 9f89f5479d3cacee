"""Open a ticket: number, active contract, SLA snapshot and due times (SPEC §1, §3 step 8).

Used by the routing pipeline for e-mail and by the admin API for tickets created through the API
or portal (which the primary-contact rule never refuses).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import Date, bindparam, insert, literal_column, select
from sqlalchemy.orm import Session, make_transient_to_detached

from models import Client, Contact, Contract, Sla, Ticket, TicketMessage, utcnow
from routing.records import SlaRow
from routing.sla import InvalidBusinessHours, due_at

_CURRENT_TICKET_ID = literal_column("currval(pg_get_serial_sequence('tickets', 'id'))")
LOOKUP = object()  # open_ticket(contract_id=LOOKUP): find the client's active contract

_TICKETS = Ticket.__table__
_INSERTED_COLUMNS = tuple(c.key for c in _TICKETS.columns if c.key not in ("id", "number"))
#: PostgreSQL: number = id inside the INSERT itself: PostgreSQL evaluates the id default (nextval)
#: before the number column (column order), so currval is this row's id. A Core statement built
#: once (a compiled-cache hit), not an ORM flush: the unit of work cost more CPU than the round trip.
_INSERT_TICKET = (
    insert(_TICKETS)
    .values({"number": _CURRENT_TICKET_ID}
            | {key: bindparam(key, type_=_TICKETS.c[key].type) for key in _INSERTED_COLUMNS})
    .returning(_TICKETS.c.id)
)


def active_contract(session: Session, *, client_id: int, on: date) -> Contract | None:
    """The client's contract whose [start_date, end_date] covers ``on``; latest start wins.

    An open start counts as "since always" (so it loses to any dated start); ties go to the
    newest contract.
    """
    return session.scalars(_ACTIVE_CONTRACT, {"client_id": client_id, "on": on}).first()


_ACTIVE_CONTRACT = (
    select(Contract)
    .where(
        Contract.client_id == bindparam("client_id"),
        (Contract.start_date.is_(None)) | (Contract.start_date <= bindparam("on", type_=Date())),
        (Contract.end_date.is_(None)) | (Contract.end_date >= bindparam("on", type_=Date())),
    )
    .order_by(Contract.start_date.desc().nulls_last(), Contract.id.desc())
    .limit(1)
)


def sla_snapshot(sla: Sla | SlaRow) -> dict:
    """The SLA terms copied onto a ticket, so later SLA edits do not move its due times."""
    return {
        "sla_id": sla.id,
        "name": sla.name,
        "first_response_minutes": sla.first_response_minutes,
        "resolution_minutes": sla.resolution_minutes,
        "business_hours": sla.business_hours,
    }


def apply_sla(ticket: Ticket, sla: Sla | SlaRow | None, *, at: datetime) -> None:
    """Set the ticket's SLA snapshot and due times from ``sla`` (None clears them).

    Business hours that cannot be read leave the due times empty rather than failing the ticket;
    the snapshot keeps the definition so the problem is visible.
    """
    if sla is None:
        ticket.sla_snapshot = None
        ticket.first_response_due_at = ticket.resolution_due_at = None
        return
    ticket.sla_snapshot = sla_snapshot(sla)
    try:
        ticket.first_response_due_at = due_at(at, sla.first_response_minutes, sla.business_hours)
        ticket.resolution_due_at = due_at(at, sla.resolution_minutes, sla.business_hours)
    except InvalidBusinessHours:
        ticket.first_response_due_at = ticket.resolution_due_at = None


def open_ticket(
    session: Session,
    *,
    client: Client | None,
    contact: Contact | None,
    subject: str,
    channel: str,
    at: datetime | None = None,
    first_message: dict | None = None,
    contract_id: int | None | object = LOOKUP,
    sla: "Sla | SlaRow | None | object" = LOOKUP,
) -> Ticket:
    """Create an open ticket (its id and number set) and optionally its first message.

    ``client`` None makes a triage ticket (no contract, no SLA). ``first_message`` holds
    TicketMessage fields (inbound_id, message_id, sender_email, body_text, attachments).
    The ticket number is its id. ``contract_id`` and ``sla`` skip the lookups of the active
    contract and of the client's SLA when the caller already knows them (None = there is none).
    """
    at = at or utcnow()
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    ticket = Ticket(
        client_id=client.id if client is not None else None,
        contact_id=contact.id if contact is not None else None,
        subject=subject,
        status="open",
        channel=channel,
        created_at=at,
        updated_at=at,
    )
    if client is not None:
        if contract_id is LOOKUP:
            contract = active_contract(session, client_id=client.id, on=at.date())
            contract_id = contract.id if contract is not None else None
        ticket.contract_id = contract_id
        if sla is LOOKUP:
            sla = session.get(Sla, client.sla_id) if client.sla_id is not None else None
        apply_sla(ticket, sla, at=at)
    if session.get_bind().dialect.name == "postgresql":
        params = {key: getattr(ticket, key) for key in _INSERTED_COLUMNS}
        ticket.id = ticket.number = session.execute(_INSERT_TICKET, params).scalar_one()
        make_transient_to_detached(ticket)  # every column is set: it is now as if just loaded
        session.add(ticket)
    else:
        session.add(ticket)
        session.flush()  # the INSERT gives the id, which is the number
        ticket.number = ticket.id  # SQLite: an UPDATE, in-process and cheap
    if first_message is not None:
        fields = {"created_at": at, **first_message}
        session.add(TicketMessage(ticket_id=ticket.id, **fields))
    # The number and the first message reach the database with the caller's next flush or commit
    # (one unit of work instead of two); queries in between autoflush them.
    return ticket
