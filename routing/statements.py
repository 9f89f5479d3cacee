"""Routing's SQL: the statements that read and lock an inbound message and record its outcome.

Core statements built once with bind parameters and run as routing.prepared statements (the ORM
unit of work was a third of routing's CPU). routing.pipeline runs them; nothing here decides.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Text, any_, bindparam, cast, exists, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY

from models import InboundMessage, Ticket, TicketMessage, Webhook
from routing.outbox.answer import with_acknowledgement
from routing.prepared import Prepared
from routing.records import InboundRow, columns
from routing.tickets import NEW_TICKET_NUMBER, new_ticket_insert

_INBOUND, _TICKETS, _MESSAGES = InboundMessage.__table__, Ticket.__table__, TicketMessage.__table__

#: Whether any webhook is enabled: read with the lock statements below, so routing skips the
#: webhook event's ``INSERT … SELECT`` (routing.webhooks.events.write_outcome_event) when none is.
#: It is read in the routing transaction that later records the outcome; a webhook created while
#: that transaction runs may be missed, which is the same race as a webhook created a moment after
#: the commit (it receives the events from then on). A webhook that exists and is enabled before
#: the routing transaction begins always gets its delivery row written in it.
ANY_WEBHOOK = exists().where(Webhook.__table__.c.enabled.is_(True)).label("any_webhook")

#: The inbound row, read without any lock (before the write transaction: parsing happens then).
READ_INBOUND = Prepared(select(*columns(InboundRow, _INBOUND)).where(_INBOUND.c.id == bindparam("inbound_id")))

#: The inbound row, locked until commit (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises).
LOCK_INBOUND_ROW = Prepared(
    select(*columns(InboundRow, _INBOUND)).where(_INBOUND.c.id == bindparam("inbound_id")).with_for_update()
)

#: Key space of the per-sender lock (pg_advisory_xact_lock's two-integer form; the Message-ID lock
#: uses the one-bigint form, a separate key space).
SENDER_LOCK_SPACE = 0x7470  # "tp"

#: The first statement of routing's write transaction: the row's status and attempts, the row
#: locked until commit, and transaction locks (released at commit) on
#:
#: * the Message-ID (``message_id``): two copies of one message routed at once queue here, so the
#:   second one's duplicate check sees the first one's committed ticket message;
#: * the sender (``sender``, NULL when no lock is wanted): two messages of one sender routed at
#:   once queue here, so the second one's rate-limit count sees the first one's ticket.
#:
#: With them, whether any webhook is enabled (:data:`ANY_WEBHOOK`).
#:
#: One round trip. On SQLite ``BEGIN IMMEDIATE`` already serialises whole routings, so there it
#: is only the read (:data:`INBOUND_STATE`).
LOCK_INBOUND = Prepared(
    select(_INBOUND.c.status, _INBOUND.c.attempts, ANY_WEBHOOK,
           func.pg_advisory_xact_lock(func.hashtextextended(bindparam("message_id", type_=Text), 0)),
           func.pg_advisory_xact_lock(literal(SENDER_LOCK_SPACE),
                                      func.hashtext(bindparam("sender", type_=Text))))
    .where(_INBOUND.c.id == bindparam("inbound_id"))
    .with_for_update()
)
INBOUND_STATE = Prepared(
    select(_INBOUND.c.status, _INBOUND.c.attempts, ANY_WEBHOOK).where(_INBOUND.c.id == bindparam("inbound_id"))
)


def _typed(table, prefix: str, column: str):
    return bindparam(prefix + column, type_=table.c[column].type)


KEPT_UNLESS_GIVEN = ("attempts", "message_id", "subject", "sender_email")  # None keeps the stored value
ALWAYS_SET = ("status", "outcome", "reason", "explanation", "client_id", "contact_id", "ticket_id", "routed_at")
MESSAGE_COLUMNS = ("ticket_id", "inbound_id", "message_id", "sender_email", "body_text", "reply_text", "attachments",
                   "created_at")

#: The outcome on the inbound row (parameters ``o_`` + column).
_RECORD = (
    update(_INBOUND)
    .where(_INBOUND.c.id == bindparam("o_inbound_id"))
    .values({c: func.coalesce(_typed(_INBOUND, "o_", c), _INBOUND.c[c]) for c in KEPT_UNLESS_GIVEN}
            | {c: _typed(_INBOUND, "o_", c) for c in ALWAYS_SET})
)
#: The ticket message the write step prepared (parameters ``m_`` + column).
_ADD_MESSAGE = insert(_MESSAGES).values({c: _typed(_MESSAGES, "m_", c) for c in MESSAGE_COLUMNS})
#: A reply touches its ticket (None status = unchanged; "open" reopens).
_TOUCH_TICKET = (
    update(_TICKETS)
    .where(_TICKETS.c.id == bindparam("t_id"))
    .values(status=func.coalesce(_typed(_TICKETS, "t_", "status"), _TICKETS.c.status),
            updated_at=_typed(_TICKETS, "t_", "updated_at"))
)
#: On PostgreSQL the three travel as one statement (data-modifying CTEs): one round trip.
_RECORD_WITH_MESSAGE = _RECORD.add_cte(_ADD_MESSAGE.cte("new_message"))
_RECORD_WITH_REPLY = _RECORD_WITH_MESSAGE.add_cte(_TOUCH_TICKET.cte("touched_ticket"))
#: A new ticket, its first message and the outcome in one statement: the ticket INSERT returns
#: the id the other two use, and the number placeholder in reason and explanation becomes it.
_NEW_TICKET = new_ticket_insert("n_").cte("new_ticket")
_NEW_TICKET_ID = select(_NEW_TICKET.c.id).scalar_subquery()
_NUMBER_TEXT = cast(_NEW_TICKET_ID, Text)
_FIRST_MESSAGE = insert(_MESSAGES).from_select(
    MESSAGE_COLUMNS,
    select(_NEW_TICKET.c.id, *(_typed(_MESSAGES, "m_", c) for c in MESSAGE_COLUMNS[1:])),
).cte("first_message")
_RECORD_WITH_NEW_TICKET = (
    _RECORD.values(
        ticket_id=_NEW_TICKET_ID,
        reason=func.replace(_typed(_INBOUND, "o_", "reason"), NEW_TICKET_NUMBER, _NUMBER_TEXT),
        explanation=cast(func.replace(cast(_typed(_INBOUND, "o_", "explanation"), Text), NEW_TICKET_NUMBER,
                                      _NUMBER_TEXT), _INBOUND.c.explanation.type),
    )
    .add_cte(_NEW_TICKET)
    .add_cte(_FIRST_MESSAGE)
    .returning(_INBOUND.c.ticket_id)
)

#: The same, writing the new ticket's acknowledgement too (routing.outbox.answer): one statement.
RECORD_WITH_NEW_TICKET_AND_ACKNOWLEDGEMENT = Prepared(with_acknowledgement(_RECORD_WITH_NEW_TICKET, _NEW_TICKET))
RECORD, ADD_MESSAGE, TOUCH_TICKET, RECORD_WITH_MESSAGE, RECORD_WITH_REPLY, RECORD_WITH_NEW_TICKET = map(
    Prepared, (_RECORD, _ADD_MESSAGE, _TOUCH_TICKET, _RECORD_WITH_MESSAGE, _RECORD_WITH_REPLY,
               _RECORD_WITH_NEW_TICKET))

#: After a rolled-back attempt, the attempt still counts.
COUNT_ATTEMPT = Prepared(
    update(_INBOUND)
    .where(_INBOUND.c.id == bindparam("inbound_id"), _INBOUND.c.status != "routed")
    .values(attempts=_INBOUND.c.attempts + 1)
)


# --- a batch of messages (routing.batch): one transaction, one commit ----------------------------

_BATCH_IDS = bindparam("ids", expanding=True)
_BATCH_IDS_PG = bindparam("ids", type_=ARRAY(BigInteger))

#: A batch's inbound rows, read without any lock (before the write transaction), in id order.
READ_INBOUND_MANY = Prepared(
    select(*columns(InboundRow, _INBOUND)).where(_INBOUND.c.id.in_(_BATCH_IDS)).order_by(_INBOUND.c.id),
    postgresql=select(*columns(InboundRow, _INBOUND)).where(_INBOUND.c.id == any_(_BATCH_IDS_PG))
    .order_by(_INBOUND.c.id),
)

#: A batch's rows locked until commit, in id order: their id, status and attempts, and whether any
#: webhook is enabled (:data:`ANY_WEBHOOK`, the same on every row).
LOCK_INBOUND_MANY = Prepared(
    select(_INBOUND.c.id, _INBOUND.c.status, _INBOUND.c.attempts, ANY_WEBHOOK).where(_INBOUND.c.id.in_(_BATCH_IDS))
    .order_by(_INBOUND.c.id).with_for_update(),
    postgresql=select(_INBOUND.c.id, _INBOUND.c.status, _INBOUND.c.attempts, ANY_WEBHOOK)
    .where(_INBOUND.c.id == any_(_BATCH_IDS_PG)).order_by(_INBOUND.c.id).with_for_update(),
)

#: PostgreSQL: the Message-ID locks and the sender locks of a whole batch (the same keys as
#: :data:`LOCK_INBOUND`), in one statement and in one global order — every Message-ID lock in key
#: order, then every sender lock in key order (each sorted subquery is evaluated first, OFFSET 0
#: keeps it from being flattened; Append runs its branches in order) — so two batches cannot
#: deadlock on them, nor a batch and a single message (which holds at most one of each).
BATCH_LOCKS = Prepared(text(
    "SELECT count(*) FROM ("
    " SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(m, 0) AS k"
    "  FROM unnest(CAST(:message_ids AS text[])) AS m ORDER BY k OFFSET 0) AS by_message_id"
    " UNION ALL"
    f" SELECT pg_advisory_xact_lock({SENDER_LOCK_SPACE}, h) FROM (SELECT DISTINCT hashtext(s) AS h"
    "  FROM unnest(CAST(:senders AS text[])) AS s ORDER BY h OFFSET 0) AS by_sender"
    ") AS locks"
).bindparams(bindparam("message_ids", type_=ARRAY(Text)), bindparam("senders", type_=ARRAY(Text)))
  .columns(count=BigInteger))
