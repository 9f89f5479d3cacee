"""What the database knows about a sender, fetched in one statement (one round trip per message).

The rate limit's count, the duplicate check, the existing contact with its client, and that
client's active contract on the received date are independent questions about the same sender;
asking them in one SELECT matters because on PostgreSQL a round trip, not the query, is the cost.
The steps still make their own decisions from the answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Date, Text, bindparam, column, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP
from sqlalchemy.engine import Connection
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from models import Client, Contact, InboundMessage, Sla, Ticket, TicketMessage
from models.base import UTCDateTime
from routing.prepared import Prepared
from routing.records import ClientRow, ContactRow, SlaRow, columns, take
from routing.tickets import ACTIVE_CONTRACT_OF_CLIENT

NEW_TICKET_OUTCOMES = ("ticket_created", "triaged")

#: Tickets a sender opened with mail received within an hour of a message, before or after it
#: (routing.steps.rate_limit decides with it). Counting the hour after too keeps the limit when
#: routing runs out of arrival order (concurrent workers, retries): of the messages in any one
#: hour, the one routed last saw all the others that got a ticket.
#: Built once: constructing a statement costs more than running it (bind parameters vary).
RECENT_NEW_TICKETS = (
    select(func.count())
    .select_from(InboundMessage)
    .where(
        InboundMessage.sender_email == bindparam("rl_sender"),
        InboundMessage.received_at > bindparam("rl_since", type_=UTCDateTime()),
        InboundMessage.received_at < bindparam("rl_until", type_=UTCDateTime()),
        # literal values, not bind parameters: PostgreSQL's generic plan of the prepared statement
        # can then use the partial index ix_inbound_new_tickets_by_sender (models.inbound)
        InboundMessage.outcome.in_([literal_column(f"'{o}'") for o in NEW_TICKET_OUTCOMES]),
        InboundMessage.id != bindparam("rl_inbound_id"),
    )
    .scalar_subquery()
)


def recent_window(sender_email: str, received_at, inbound_id: int) -> dict:
    """Bind parameters of :data:`RECENT_NEW_TICKETS` for a message received at ``received_at``.

    Counts the sender's inbound messages that opened a ticket (``ticket_created`` or
    ``triaged``), other than this one, received less than an hour before or after it.
    """
    return {
        "rl_sender": sender_email,
        "rl_since": received_at - timedelta(hours=1),
        "rl_until": received_at + timedelta(hours=1),
        "rl_inbound_id": inbound_id,
    }


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

    recent_new_tickets: int  # tickets this sender opened within an hour of the message
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
    return _record_of(_SENDER_RECORD.first(db, params))


# --- several senders in one statement (routing.batch) -------------------------------------------

_STAMP = TIMESTAMP(timezone=True)
#: One row per question: the same parameters as :func:`lookup_sender`'s, as parallel arrays.
_ASKED = func.unnest(
    bindparam("b_email", type_=ARRAY(Text)), bindparam("b_message_id", type_=ARRAY(Text)),
    bindparam("b_day", type_=ARRAY(Date)), bindparam("b_since", type_=ARRAY(_STAMP)),
    bindparam("b_until", type_=ARRAY(_STAMP)), bindparam("b_inbound_id", type_=ARRAY(BigInteger)),
).table_valued(column("email", Text), column("message_id", Text), column("day", Date), column("since", _STAMP),
               column("until", _STAMP), column("inbound_id", BigInteger), with_ordinality="ord",
               name="asked").render_derived()
_ASKED_FOR = {"email": _ASKED.c.email, "dup_message_id": _ASKED.c.message_id, "dup_sender": _ASKED.c.email,
              "day": _ASKED.c.day, "rl_sender": _ASKED.c.email, "rl_since": _ASKED.c.since,
              "rl_until": _ASKED.c.until, "rl_inbound_id": _ASKED.c.inbound_id}


def _asked(element, **_kw):
    if isinstance(element, BindParameter) and element.key in _ASKED_FOR:
        return _ASKED_FOR[element.key]
    return None


_ACTIVE_CONTRACT_ASKED = (
    visitors.replacement_traverse(ACTIVE_CONTRACT_OF_CLIENT.element, {}, _asked).correlate(_ASKED).scalar_subquery()
)


def _one_per_asked_row(element, **kw):
    if element is _ONE_ROW:
        return _ASKED
    if element is ACTIVE_CONTRACT_OF_CLIENT:
        return _ACTIVE_CONTRACT_ASKED
    return _asked(element, **kw)


#: PostgreSQL: :data:`_SENDER_RECORD`'s question for many senders at once — the same statement,
#: its one-row FROM replaced by one row per question (``unnest`` of the parameter arrays).
_SENDER_RECORDS = Prepared(
    visitors.replacement_traverse(_SENDER_RECORD.statement, {}, _one_per_asked_row)
    .add_columns(_ASKED.c.ord).order_by(_ASKED.c.ord),
    server_prepare=False,  # planned with its arrays each time (a generic plan cannot see their size)
)


def lookup_senders(db: Connection, asked: list[dict]) -> list[SenderRecord]:
    """:func:`lookup_sender` for several messages (keyword arguments of it each), one statement on
    PostgreSQL; the answers in the order asked. Each answer is what :func:`lookup_sender` would
    have said at this moment."""
    if not asked:
        return []
    if db.dialect.name != "postgresql":
        return [lookup_sender(db, **kwargs) for kwargs in asked]
    windows = [recent_window(a["email"], a["received_at"], a["inbound_id"]) for a in asked]
    rows = _SENDER_RECORDS.rows(db, {
        "b_email": [a["email"] for a in asked],
        "b_message_id": [a["message_id"] for a in asked],
        "b_day": [a["received_at"].date() for a in asked],
        "b_since": [w["rl_since"] for w in windows],
        "b_until": [w["rl_until"] for w in windows],
        "b_inbound_id": [a["inbound_id"] for a in asked],
    })
    return [_record_of(row) for row in rows]


def _record_of(row) -> SenderRecord:
    recent, duplicate, contract_id = row[0], row[1], row[2]
    client = take(ClientRow, row, _CLIENT_AT)
    return SenderRecord(recent or 0, duplicate, take(ContactRow, row, _CONTACT_AT), client,
                        contract_id if client is not None else None, take(SlaRow, row, _SLA_AT))
