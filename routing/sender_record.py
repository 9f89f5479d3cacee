"""What the database knows about a sender, fetched in one statement (one round trip per message).

The storm guard's count, the duplicate check, the existing contact with its client, and that
client's active contract on the received date are independent questions about the same sender;
asking them in one SELECT matters because on PostgreSQL a round trip, not the query, is the cost.
The steps still make their own decisions from the answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, literal, select
from sqlalchemy.engine import Connection

from models import Client, Contact, Sla, Ticket, TicketMessage
from routing.prepared import Prepared
from routing.records import ClientRow, ContactRow, SlaRow, columns, take
from routing.steps.loop_guard import RECENT_NEW_TICKETS, recent_window
from routing.tickets import ACTIVE_CONTRACT_OF_CLIENT

_DUPLICATE = (
    select(Ticket.number)
    .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
    .where(TicketMessage.message_id == bindparam("dup_message_id"),
           TicketMessage.sender_email == bindparam("dup_sender"))
    .limit(1)
    .scalar_subquery()
)

_ONE_ROW = select(literal(1).label("one")).subquery("one_row")

_SENDER_RECORD = Prepared(
    select(RECENT_NEW_TICKETS, _DUPLICATE, ACTIVE_CONTRACT_OF_CLIENT,
           *columns(ContactRow, Contact.__table__, "contact_"),
           *columns(ClientRow, Client.__table__, "client_"),
           *columns(SlaRow, Sla.__table__, "sla_"))
    .select_from(_ONE_ROW)
    .outerjoin(Contact, Contact.email == bindparam("email"))
    .outerjoin(Client, Client.id == Contact.client_id)
    .outerjoin(Sla, Sla.id == Client.sla_id)
)
_CONTACT_AT = 3
_CLIENT_AT = _CONTACT_AT + len(ContactRow._fields)
_SLA_AT = _CLIENT_AT + len(ClientRow._fields)


@dataclass(frozen=True)
class SenderRecord:
    """The answers of :func:`lookup_sender`."""

    recent_new_tickets: int  # tickets this sender opened in the hour before the message
    duplicate_ticket_number: int | None  # the ticket that already has this Message-ID from them
    contact: ContactRow | None  # the contact with this address, if any
    client: ClientRow | None  # that contact's client
    active_contract_id: int | None  # that client's active contract on the received date
    sla: SlaRow | None  # that client's SLA


def lookup_sender(db: Connection, *, email: str, message_id: str, inbound_id: int,
                  received_at: datetime) -> SenderRecord:
    """Everything routing needs to know about ``email`` before deciding, in one statement."""
    params = {
        "email": email,
        "dup_message_id": message_id,
        "dup_sender": email,
        "day": received_at.date(),
        **recent_window(email, received_at, inbound_id),
    }
    row = _SENDER_RECORD.first(db, params)
    recent, duplicate, contract_id = row[0], row[1], row[2]
    client = take(ClientRow, row, _CLIENT_AT)
    return SenderRecord(recent or 0, duplicate, take(ContactRow, row, _CONTACT_AT), client,
                        contract_id if client is not None else None, take(SlaRow, row, _SLA_AT))
