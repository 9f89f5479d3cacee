"""Step 10, thread: does the message continue a ticket? In-Reply-To, References, then subject tag."""

from __future__ import annotations

from sqlalchemy import String, any_, bindparam, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Select

from models import OutboundMessage, Ticket, TicketMessage
from routing.context import RoutingContext
from routing.prepared import Prepared
from routing.records import TicketRow, columns, take
from routing.subjects import new_ticket_subject, ticket_tags

MAX_REFERENCES = 100  # a References header longer than this is cut to its newest ids

_TICKETS = Ticket.__table__


def _tickets_by_message_id(any_of) -> Select:
    """The tickets holding a message (ours or a reply we sent) whose Message-ID is ``any_of``.

    The ticket's columns come from correlated subqueries on its primary key, one lookup per
    match, whatever the planner estimates: with a join and stale statistics EXPLAIN showed a hash
    join over a scan of every ticket (it guessed dozens of matches for three Message-IDs).
    """
    known = union_all(
        select(TicketMessage.message_id.label("message_id"), TicketMessage.ticket_id.label("ticket_id"))
        .where(any_of(TicketMessage.message_id)),
        select(OutboundMessage.message_id, OutboundMessage.ticket_id).where(any_of(OutboundMessage.message_id)),
    ).subquery()

    def of_ticket(name: str):
        return select(_TICKETS.c[name]).where(_TICKETS.c.id == known.c.ticket_id).scalar_subquery()

    return select(known.c.message_id, known.c.ticket_id, *(of_ticket(name) for name in TicketRow._fields[1:]))


#: The tickets that hold any of the referenced Message-IDs (bound as ``forms``). Planned on every
#: run (not server-prepared): a generic plan made while ticket_messages was small kept scanning
#: all of it after it had grown (1.2 ms a reply at 5,000 messages instead of an index lookup).
_TICKETS_BY_MESSAGE_ID = Prepared(
    _tickets_by_message_id(lambda column: column.in_(bindparam("forms", expanding=True))),
    postgresql=_tickets_by_message_id(lambda column: column == any_(bindparam("forms", type_=ARRAY(String)))),
    server_prepare=False,
)
_TICKET_BY_NUMBER = Prepared(
    select(*columns(TicketRow, _TICKETS)).where(_TICKETS.c.number == bindparam("number")).limit(1)
)
_SENDER_ON_TICKET = Prepared(
    select(TicketMessage.id)
    .where(TicketMessage.ticket_id == bindparam("ticket_id"), TicketMessage.sender_email == bindparam("sender"))
    .limit(1)
)


def thread(ctx: RoutingContext) -> None:
    """Set ``ctx.ticket`` when the message replies to a ticket, else ``ctx.subject`` for a new one."""
    mail = ctx.mail
    assert mail is not None
    ticket = _by_headers(ctx)
    if ticket is None:
        ticket = _by_subject_tag(ctx)
    if ticket is None:
        ctx.subject = new_ticket_subject(mail.subject)
        return
    ctx.ticket = ticket
    if ticket.status in ("resolved", "closed"):
        ctx.reopened = True
        ctx.explain("thread", f"ticket #{ticket.number} was {ticket.status}; the reply reopens it")


def referenced(mail) -> list[tuple[str, str]]:
    """(header, Message-ID) of what the mail refers to, newest first: In-Reply-To, then References
    from the last (the parent) to the first (the root); its own Message-ID left out."""
    in_reply_to = [i for i in mail.in_reply_to if i != mail.message_id]
    references = [i for i in mail.references if i != mail.message_id][-MAX_REFERENCES:]
    ordered: list[tuple[str, str]] = [("In-Reply-To", i) for i in in_reply_to]
    ordered += [("References", i) for i in reversed(references) if i not in in_reply_to]
    return ordered


def tickets_holding(db, message_ids) -> dict[str, TicketRow]:
    """The tickets holding a message with one of ``message_ids`` (stored with or without angle
    brackets), by Message-ID without them; one statement."""
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        return {}
    forms = ids + [f"<{i}>" for i in ids]
    found: dict[str, TicketRow] = {}
    for row in _TICKETS_BY_MESSAGE_ID.rows(db, {"forms": forms}):
        found.setdefault(row[0].strip("<>"), take(TicketRow, row, 1))
    return found


def _by_headers(ctx: RoutingContext) -> TicketRow | None:
    ordered = referenced(ctx.mail)
    if not ordered:
        return None
    ids = list(dict.fromkeys(i for _, i in ordered))
    known = ctx.known_threads
    found = tickets_holding(ctx.db, ids) if known is None else known
    for header, message_id in ordered:
        ticket = found.get(message_id)
        if ticket is None:
            continue
        note = ""
        if ticket.client_id is not None and ctx.client is not None and ticket.client_id != ctx.client.id:
            note = " (the sender belongs to another client; the Message-ID reference is trusted)"
        ctx.explain("thread", f"{header} <{message_id}> is on ticket #{ticket.number}{note}")
        return ticket
    ctx.explain("thread", f"none of the {len(ids)} referenced Message-IDs is on a ticket")
    return None


def _by_subject_tag(ctx: RoutingContext) -> TicketRow | None:
    tags = ticket_tags(ctx.mail.subject)
    if not tags:
        if not ctx.mail.in_reply_to and not ctx.mail.references:
            ctx.explain("thread", "not a reply (no In-Reply-To, References or ticket tag): a new ticket")
        return None
    for number in tags:
        ticket = take(TicketRow, _TICKET_BY_NUMBER.first(ctx.db, {"number": number}) or (None,))
        if ticket is None:
            ctx.explain("thread", f"subject tag [#{number}] names no ticket; ignored")
            continue
        if _sender_belongs(ctx, ticket):
            ctx.explain("thread", f"subject tag [#{number}] names ticket #{ticket.number} of the sender's client")
            return ticket
        ctx.explain(
            "thread",
            f"subject tag [#{number}] ignored: ticket #{ticket.number} does not belong to the sender's client"
            + ("" if ctx.client is not None else " (the sender's client is unknown)")
            + "; a tag alone cannot add mail to another client's ticket",
        )
    return None


def _sender_belongs(ctx: RoutingContext, ticket: TicketRow) -> bool:
    """The sender may use the ticket's tag: same client; for a triage ticket, a previous sender."""
    if ticket.client_id is not None:
        return ctx.client is not None and ctx.client.id == ticket.client_id
    earlier = _SENDER_ON_TICKET.first(ctx.db, {"ticket_id": ticket.id, "sender": ctx.sender_email})
    return earlier is not None
