"""Open a ticket: number, active contract, SLA snapshot and due times (SPEC §1, §3 step 8).

Used by the routing pipeline for e-mail and by the admin API for tickets created through the API
or portal (which the primary-contact rule never refuses).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import Date, bindparam, insert, literal_column, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, make_transient_to_detached

from models import Client, Contact, Contract, Sla, Ticket, TicketMessage, utcnow
from models.business_hours import InvalidBusinessHours
from routing.prepared import Prepared
from routing.records import ClientRow, ContactRow, SlaRow
from routing.sla import due_at

_CURRENT_TICKET_ID = literal_column("currval(pg_get_serial_sequence('tickets', 'id'))")
LOOKUP = object()  # ticket_values(contract_id=LOOKUP, sla=LOOKUP): look the client's up

_TICKETS = Ticket.__table__
_INSERTED_COLUMNS = tuple(c.key for c in _TICKETS.columns if c.key not in ("id", "number"))
#: Stands for a new ticket's number in texts written before it has one (routing.pipeline
#: records the outcome and opens the ticket in one statement, which puts the number in).
NEW_TICKET_NUMBER = "[[new ticket number]]"


def new_ticket_insert(prefix: str = ""):
    """The PostgreSQL INSERT of a ticket from :func:`ticket_values` (bound as ``prefix + column``), returning its id.

    The number is the id, set inside the INSERT itself: PostgreSQL evaluates the id default
    (nextval) before the number column (column order), so currval is this row's id.
    """
    return (
        insert(_TICKETS)
        .values({"number": _CURRENT_TICKET_ID}
                | {key: bindparam(prefix + key, type_=_TICKETS.c[key].type) for key in _INSERTED_COLUMNS})
        .returning(_TICKETS.c.id)
    )


_INSERT_TICKET = Prepared(new_ticket_insert())
#: SQLite: the row first, then its number (an UPDATE in the same transaction, in-process).
_INSERT_TICKET_SQLITE = (
    insert(_TICKETS)
    .values({key: bindparam(key, type_=_TICKETS.c[key].type) for key in _INSERTED_COLUMNS})
    .returning(_TICKETS.c.id)
)
_NUMBER_TICKET = update(_TICKETS).where(_TICKETS.c.id == bindparam("ticket_id")).values(number=_TICKETS.c.id)


def active_contract(session: Session, *, client_id: int, on: date) -> Contract | None:
    """The client's contract whose [start_date, end_date] covers ``on``; latest start wins.

    An open start counts as "since always" (so it loses to any dated start); ties go to the
    newest contract.
    """
    return session.scalars(_ACTIVE_CONTRACT, {"client_id": client_id, "on": on}).first()


def _contract_covering(day, what):
    """SELECT ``what`` of the contract whose [start_date, end_date] covers ``day``; latest start, newest wins."""
    return (
        select(what)
        .where((Contract.start_date.is_(None)) | (Contract.start_date <= day),
               (Contract.end_date.is_(None)) | (Contract.end_date >= day))
        .order_by(Contract.start_date.desc().nulls_last(), Contract.id.desc())
        .limit(1)
    )


_ACTIVE_CONTRACT = _contract_covering(bindparam("on", type_=Date()), Contract).where(
    Contract.client_id == bindparam("client_id"))

#: The active contract of the client in the enclosing query on the date bound as ``day``
#: (the rule of :func:`active_contract`, as a correlated subquery).
ACTIVE_CONTRACT_OF_CLIENT = (
    _contract_covering(bindparam("day", type_=Date()), Contract.id)
    .where(Contract.client_id == Client.id)
    .correlate(Client)
    .scalar_subquery()
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


def sla_terms(sla: Sla | SlaRow | None, *, at: datetime) -> dict:
    """A ticket's SLA columns from ``sla`` opened ``at``: snapshot and due times (None clears them).

    Business hours that cannot be read leave the due times empty rather than failing the ticket;
    the snapshot keeps the definition so the problem is visible.
    """
    terms = {"sla_snapshot": None, "first_response_due_at": None, "resolution_due_at": None}
    if sla is None:
        return terms
    terms["sla_snapshot"] = sla_snapshot(sla)
    try:
        terms["first_response_due_at"] = due_at(at, sla.first_response_minutes, sla.business_hours)
        terms["resolution_due_at"] = due_at(at, sla.resolution_minutes, sla.business_hours)
    except InvalidBusinessHours:
        terms["first_response_due_at"] = terms["resolution_due_at"] = None
    return terms


def apply_sla(ticket: Ticket, sla: Sla | SlaRow | None, *, at: datetime) -> None:
    """Set the ticket's SLA snapshot and due times from ``sla`` (None clears them)."""
    for key, value in sla_terms(sla, at=at).items():
        setattr(ticket, key, value)


def ticket_values(
    session: Session | None,
    *,
    client: "Client | ClientRow | None",
    contact: "Contact | ContactRow | None",
    subject: str,
    channel: str,
    at: datetime,
    contract_id: int | None | object = LOOKUP,
    sla: "Sla | SlaRow | None | object" = LOOKUP,
) -> dict:
    """The columns of a new open ticket (all but id and number); ``session`` answers LOOKUPs.

    ``client`` None makes a triage ticket (no contract, no SLA). ``contract_id`` and ``sla`` skip
    the lookups of the active contract and of the client's SLA when the caller already knows them
    (None = there is none).
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    if client is not None:
        if contract_id is LOOKUP:
            contract = active_contract(session, client_id=client.id, on=at.date())
            contract_id = contract.id if contract is not None else None
        if sla is LOOKUP:
            sla = session.get(Sla, client.sla_id) if client.sla_id is not None else None
    else:
        contract_id = sla = None
    return {
        "client_id": client.id if client is not None else None,
        "contact_id": contact.id if contact is not None else None,
        "subject": subject,
        "status": "open",
        "channel": channel,
        "contract_id": contract_id,
        **sla_terms(sla, at=at),
        "created_at": at,
        "updated_at": at,
    }


def insert_ticket(db: Connection, values: dict) -> int:
    """INSERT a ticket with ``values`` (from :func:`ticket_values`); its number is its id, returned."""
    if db.dialect.name == "postgresql":
        return _INSERT_TICKET.first(db, values)[0]
    ticket_id = db.execute(_INSERT_TICKET_SQLITE, values).scalar_one()
    db.execute(_NUMBER_TICKET, {"ticket_id": ticket_id})
    return ticket_id


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
    """Create an open ticket (its id and number set, in ``session``) and optionally its first message.

    :func:`ticket_values` says what the arguments mean. ``first_message`` holds TicketMessage
    fields (inbound_id, message_id, sender_email, body_text, attachments).
    """
    values = ticket_values(session, client=client, contact=contact, subject=subject, channel=channel,
                           at=at or utcnow(), contract_id=contract_id, sla=sla)
    ticket_id = insert_ticket(session.connection(), values)
    ticket = Ticket(id=ticket_id, number=ticket_id, **values)
    make_transient_to_detached(ticket)  # every column is set: it is now as if just loaded
    session.add(ticket)
    if first_message is not None:
        session.add(TicketMessage(ticket_id=ticket_id, **{"created_at": values["created_at"], **first_message}))
    # The first message reaches the database with the caller's next flush or commit.
    return ticket
