"""What the database knows about a sender, fetched in one statement (one round trip per message).

The storm guard's count, the duplicate check, the existing contact with its client, and that
client's active contract on the received date are independent questions about the same sender;
asking them in one SELECT matters because on PostgreSQL a round trip, not the query, is the cost.
The steps still make their own decisions from the answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Date, bindparam, literal, select
from sqlalchemy.orm import Session

from models import Client, Contact, Contract, Ticket, TicketMessage
from routing.steps.loop_guard import RECENT_NEW_TICKETS, recent_window

_DUPLICATE = (
    select(Ticket.number)
    .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
    .where(TicketMessage.message_id == bindparam("dup_message_id"),
           TicketMessage.sender_email == bindparam("dup_sender"))
    .limit(1)
    .scalar_subquery()
)

# The client's contract covering the day; latest start wins (same rule as routing.tickets).
_ACTIVE_CONTRACT_OF_CLIENT = (
    select(Contract.id)
    .where(
        Contract.client_id == Client.id,
        (Contract.start_date.is_(None)) | (Contract.start_date <= bindparam("day", type_=Date())),
        (Contract.end_date.is_(None)) | (Contract.end_date >= bindparam("day", type_=Date())),
    )
    .order_by(Contract.start_date.desc().nulls_last(), Contract.id.desc())
    .limit(1)
    .correlate(Client)
    .scalar_subquery()
)

_ONE_ROW = select(literal(1).label("one")).subquery("one_row")

_SENDER_RECORD = (
    select(RECENT_NEW_TICKETS, _DUPLICATE, _ACTIVE_CONTRACT_OF_CLIENT, Contact, Client)
    .select_from(_ONE_ROW)
    .outerjoin(Contact, Contact.email == bindparam("email"))
    .outerjoin(Client, Client.id == Contact.client_id)
)


@dataclass(frozen=True)
class SenderRecord:
    """The answers of :func:`lookup_sender`."""

    recent_new_tickets: int  # tickets this sender opened in the hour before the message
    duplicate_ticket_number: int | None  # the ticket that already has this Message-ID from them
    contact: Contact | None  # the contact with this address, if any
    client: Client | None  # that contact's client
    active_contract_id: int | None  # that client's active contract on the received date


def lookup_sender(session: Session, *, email: str, message_id: str, inbound_id: int,
                  received_at: datetime) -> SenderRecord:
    """Everything routing needs to know about ``email`` before deciding, in one statement."""
    params = {
        "email": email,
        "dup_message_id": message_id,
        "dup_sender": email,
        "day": received_at.date(),
        **recent_window(email, received_at, inbound_id),
    }
    recent, duplicate, contract_id, contact, client = session.execute(_SENDER_RECORD, params).one()
    return SenderRecord(recent or 0, duplicate, contact, client, contract_id if client is not None else None)
