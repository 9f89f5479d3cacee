"""The routing pipeline: the ordered steps, and the one place an outcome is recorded (SPEC §3).

``route_inbound(id)`` loads the stored raw message, runs the steps in :data:`STEPS` order on one
:class:`~routing.context.RoutingContext`, and commits the ticket work together with the inbound
row's outcome, reason and explanation: one transaction. Steps end routing early by raising
:class:`~routing.outcomes.RoutingStop`; it is caught only here. Anything else is an
infrastructure fault: roll back, count the attempt, re-raise so the queue retries; when retries
are exhausted the queue calls :func:`record_failure`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Text, bindparam, cast, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import InboundMessage, Ticket, TicketMessage, utcnow
from models.db import get_engine
from routing.context import RoutingContext
from routing.mailparse import clean_text
from routing.outcomes import RoutingStop
from routing.outbox.answer import Answer, plan_answer, write_answer
from routing.outbox.dispatcher import hand_over
from routing.prepared import Prepared
from routing.records import InboundRow, TicketRow, columns, take
from routing.tickets import NEW_TICKET_NUMBER, insert_ticket, new_ticket_insert
from routing.steps.client import client
from routing.steps.contact import contact
from routing.steps.content import calendar, content
from routing.steps.loop_guard import loop_guard
from routing.steps.parse import parse
from routing.steps.policy import policy
from routing.steps.sender import sender
from routing.steps.thread import thread
from routing.steps.write import write

log = logging.getLogger("ticketpost.routing")

Step = Callable[[RoutingContext], None]

#: The routing steps, in order. Each takes the context and either fills in its part or raises
#: RoutingStop with the final outcome.
STEPS: tuple[Step, ...] = (parse, loop_guard, calendar, sender, client, contact, thread, policy, content, write)


_INBOUND, _TICKETS, _MESSAGES = InboundMessage.__table__, Ticket.__table__, TicketMessage.__table__

#: The inbound row, locked until commit (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises).
_LOCK_INBOUND = Prepared(
    select(*columns(InboundRow, _INBOUND)).where(_INBOUND.c.id == bindparam("inbound_id")).with_for_update()
)

#: The Message-ID as PostgreSQL reads it from the first 8 KiB of the raw bytes: a plain
#: ``Message-ID: <id>`` header line (NULL when there is none, or it is folded, not ASCII or
#: further down; then the sender step takes the lock in a statement of its own). 8 KiB holds the
#: header of mail that passed a few relays and signers; the window's cost is PostgreSQL's, per
#: message (16 KiB cost 0.1 ms more per message than 4 KiB).
_RAW_MESSAGE_ID = func.substring(
    func.encode(func.substring(InboundMessage.raw, 1, 8192), "escape"),
    r"(?in)^message-id:[ \t]*<([^>\s]+)>",
)
#: PostgreSQL: the same row lock, and in the same round trip the duplicate lock of the sender step
#: (routing.steps.sender._DUPLICATE_LOCK) on that Message-ID; the sender step compares it with the
#: parsed one and takes the lock itself when they differ (or the SQL found none).
_LOCK_INBOUND_AND_DUPLICATES = Prepared(
    select(*columns(InboundRow, _INBOUND), _RAW_MESSAGE_ID,
           func.pg_advisory_xact_lock(func.hashtextextended(_RAW_MESSAGE_ID, 0)))
    .where(_INBOUND.c.id == bindparam("inbound_id"))
    .with_for_update()
)


def _typed(table, prefix: str, column: str):
    return bindparam(prefix + column, type_=table.c[column].type)


_KEPT_UNLESS_GIVEN = ("attempts", "message_id", "subject", "sender_email")  # None keeps the stored value
_ALWAYS_SET = ("status", "outcome", "reason", "explanation", "client_id", "contact_id", "ticket_id", "routed_at")
MESSAGE_COLUMNS = ("ticket_id", "inbound_id", "message_id", "sender_email", "body_text", "reply_text", "attachments",
                   "created_at")

#: The outcome on the inbound row. Core statements built once with bind parameters, run as
#: routing.prepared statements below (the ORM unit of work was a third of routing's CPU).
_RECORD = (
    update(_INBOUND)
    .where(_INBOUND.c.id == bindparam("o_inbound_id"))
    .values({c: func.coalesce(_typed(_INBOUND, "o_", c), _INBOUND.c[c]) for c in _KEPT_UNLESS_GIVEN}
            | {c: _typed(_INBOUND, "o_", c) for c in _ALWAYS_SET})
)
#: The ticket message the write step prepared.
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
_RECORD, _ADD_MESSAGE, _TOUCH_TICKET, _RECORD_WITH_MESSAGE, _RECORD_WITH_REPLY = map(
    Prepared, (_RECORD, _ADD_MESSAGE, _TOUCH_TICKET, _RECORD_WITH_MESSAGE, _RECORD_WITH_REPLY))
_RECORD_WITH_NEW_TICKET = Prepared(_RECORD_WITH_NEW_TICKET)


class InboundNotFound(LookupError):
    """Raised when no inbound message has the given id (nothing to route; retrying cannot help)."""


@dataclass(frozen=True)
class RouteResult:
    """The decision about one inbound message, as stored on its row."""

    inbound_id: int
    outcome: str
    reason: str
    explanation: list[dict] = field(default_factory=list)
    client_id: int | None = None
    contact_id: int | None = None
    ticket_id: int | None = None
    ticket_number: int | None = None
    answered: bool = False  # an acknowledgement or notice was written to the outbox with it


def _settings(settings):
    if settings is not None:
        return settings
    from core.settings import get_settings  # wiring default only

    return get_settings()


def _engine(engine: Engine | None, settings) -> Engine:
    return engine if engine is not None else get_engine(settings.database_url)


def route_inbound(inbound_id: int, *, engine: Engine | None = None, settings=None) -> RouteResult:
    """Route one stored inbound message and return its outcome; idempotent.

    An inbound message already ``routed`` returns its stored result and nothing changes. The row
    is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises
    writers), so concurrent calls for one id produce one ticket message; the unique
    ``ticket_messages.inbound_id`` is the last line of defence. Raises InboundNotFound for an
    unknown id, and re-raises any unexpected error after rolling back (the queue retries).
    """
    settings = _settings(settings)
    engine = _engine(engine, settings)
    started = time.perf_counter()  # for the routing duration metric
    # A Connection, not a Session: Core statements on it cost half the CPU; the few steps that
    # need the ORM get a Session on the same connection and transaction (RoutingContext.session).
    db = engine.connect()
    ctx = None
    try:
        db.begin()  # routing.prepared runs statements under this transaction
        postgres = engine.dialect.name == "postgresql"
        row = (_LOCK_INBOUND_AND_DUPLICATES if postgres else _LOCK_INBOUND).first(db, {"inbound_id": inbound_id})
        if row is None:
            raise InboundNotFound(f"no inbound message with id {inbound_id}")
        inbound = take(InboundRow, row)
        locked_message_id = row[len(InboundRow._fields)] if postgres else None
        if inbound.status == "routed":
            result = stored_result(db, inbound)
            db.rollback()
            return result
        ctx = RoutingContext(db=db, settings=settings, inbound=inbound, locked_message_id=locked_message_id)
        result = _run(ctx)
        ctx.flush()
        db.commit()
        _observe(result.outcome, inbound.source, time.perf_counter() - started)
        if result.answered:
            hand_over(inbound_id=inbound_id)  # the dispatcher sends it now (else its poller, soon)
        return result
    except IntegrityError:
        # Another delivery of the same id won the race to the ticket message: return its result.
        db.rollback()
        stored = _stored_if_routed(engine, inbound_id)
        if stored is None:
            _count_attempt(engine, inbound_id)
            raise
        return stored
    except InboundNotFound:
        db.rollback()
        raise
    except BaseException:
        db.rollback()
        _count_attempt(engine, inbound_id)
        raise
    finally:
        if ctx is not None:
            ctx.close()
        db.close()


def _run(ctx: RoutingContext) -> RouteResult:
    """Run every step; a RoutingStop ends the run with its outcome. Records the outcome."""
    name = ""
    try:
        for step in STEPS:
            name = step.__name__
            step(ctx)
    except RoutingStop as stop:
        ctx.outcome, ctx.reason = stop.outcome, stop.reason
        ctx.explain(getattr(stop, "step", None) or name, stop.reason)
    written = ctx.outcome in ("ticket_created", "ticket_updated", "triaged")
    answer = plan_answer(ctx)  # the acknowledgement or notice, if any (explained either way)
    return record_outcome(
        ctx.db,
        ctx.inbound,
        status="routed",
        outcome=ctx.outcome or "failed",
        reason=ctx.reason,
        explanation=ctx.explanation,
        client_id=ctx.client.id if ctx.client is not None else None,
        contact_id=ctx.contact.id if ctx.contact is not None else None,
        ticket=ctx.ticket if written else None,
        message=ctx.message if written else None,
        reply=ctx.outcome == "ticket_updated",
        ticket_status=ctx.ticket_status if written else None,
        new_ticket=ctx.new_ticket if written else None,
        attempts=(ctx.inbound.attempts or 0) + 1,
        message_id=ctx.message_id or None,
        subject=ctx.mail.subject if ctx.mail is not None else None,
        sender_email=ctx.sender_email or _claimed_sender(ctx),
        answer=answer,
    )


def _claimed_sender(ctx: RoutingContext) -> str | None:
    """For mail stopped before the sender step: the first From address as written (for searching)."""
    if ctx.mail is None:
        return None
    for _name, address in ctx.mail.from_addresses:
        if "@" in address:
            return clean_text(address.lower(), 320)
    return None


def record_outcome(
    db: Connection,
    inbound: InboundRow,
    *,
    status: str,
    outcome: str,
    reason: str,
    explanation: list[dict],
    client_id: int | None = None,
    contact_id: int | None = None,
    ticket: TicketRow | None = None,
    message: dict | None = None,
    reply: bool = False,
    ticket_status: str | None = None,
    new_ticket: dict | None = None,
    attempts: int | None = None,
    message_id: str | None = None,
    subject: str | None = None,
    sender_email: str | None = None,
    answer: Answer | None = None,
) -> RouteResult:
    """THE place an inbound message's outcome is recorded (in ``db``'s transaction) and logged.

    Everything routing learned about the row (attempts, Message-ID, subject, sender) is written
    here too, so one UPDATE carries it; with it the ticket message the write step prepared
    (``message``: :data:`MESSAGE_COLUMNS`) and, for a ``reply``, its ticket's ``updated_at`` and
    ``ticket_status`` (None = unchanged). A ``new_ticket`` (routing.tickets.ticket_values) is
    opened here too: ``reason`` and ``explanation`` name it as :data:`NEW_TICKET_NUMBER` and
    ``message`` has no ticket_id yet. On PostgreSQL that is one statement. ``inbound`` is only
    read (its id). An ``answer`` (routing.outbox.answer) is written with it: the outbox row, in
    the same transaction. The caller commits, then counts the outcome with :func:`_observe`.
    """
    values = {
        "attempts": attempts,
        "message_id": clean_text(message_id, 998) if message_id is not None else None,
        "subject": clean_text(subject, 10000) if subject is not None else None,
        "sender_email": sender_email,
        "status": status,
        "outcome": outcome,
        "reason": clean_text(reason or ""),
        "explanation": [
            {"step": clean_text(str(e.get("step", ""))), "decision": clean_text(str(e.get("decision", "")))}
            for e in explanation
        ],
        "client_id": client_id,
        "contact_id": contact_id,
        "ticket_id": ticket.id if ticket is not None else None,
        "routed_at": utcnow(),
    }
    params = {"o_inbound_id": inbound.id, **{"o_" + k: v for k, v in values.items()}}
    touch = reply and ticket is not None
    if message is not None:
        params.update({"m_" + k: message[k] for k in MESSAGE_COLUMNS})
    if touch:
        params.update({"t_id": ticket.id, "t_status": ticket_status, "t_updated_at": utcnow()})
    if db.dialect.name == "postgresql":
        if new_ticket is not None:
            params.update({"n_" + k: v for k, v in new_ticket.items()})
            _number_new_ticket(values, _RECORD_WITH_NEW_TICKET.first(db, params)[0])
        else:
            (_RECORD_WITH_REPLY if touch else _RECORD_WITH_MESSAGE if message is not None else _RECORD).rows(db, params)
    else:  # SQLite has no data-modifying CTEs: the same statements one by one
        if new_ticket is not None:
            _number_new_ticket(values, insert_ticket(db, new_ticket))
            params.update({"o_" + k: values[k] for k in ("ticket_id", "reason", "explanation")},
                          m_ticket_id=values["ticket_id"])
        if message is not None:
            _ADD_MESSAGE.rows(db, params)
        if touch:
            _TOUCH_TICKET.rows(db, params)
        _RECORD.rows(db, params)
    if answer is not None:
        write_answer(db, answer, inbound_id=inbound.id, ticket_id=values["ticket_id"])
    log.info(
        "inbound %s: %s (%s)", inbound.id, outcome, values["reason"],
        extra={"inbound_id": inbound.id, "outcome": outcome},
    )
    return RouteResult(
        inbound_id=inbound.id,
        outcome=outcome,
        reason=values["reason"],
        explanation=values["explanation"],
        client_id=client_id,
        contact_id=contact_id,
        ticket_id=values["ticket_id"],
        ticket_number=values["ticket_id"] if new_ticket is not None else ticket.number if ticket is not None else None,
        answered=answer is not None,
    )


def _number_new_ticket(values: dict, ticket_id: int) -> None:
    """Put the new ticket's id, and its number for :data:`NEW_TICKET_NUMBER`, into ``values``."""
    number = str(ticket_id)
    values["ticket_id"] = ticket_id
    values["reason"] = values["reason"].replace(NEW_TICKET_NUMBER, number)
    values["explanation"] = [{k: v.replace(NEW_TICKET_NUMBER, number) for k, v in e.items()}
                             for e in values["explanation"]]


def _observe(outcome: str, source: str, seconds: float | None) -> None:
    """Count a committed outcome (and how long routing took) in the metrics."""
    from core import telemetry as metrics

    metrics.observe_routing(outcome, source, seconds)


def stored_result(db: Connection | Session, inbound: InboundRow | InboundMessage) -> RouteResult:
    """The RouteResult recorded on an inbound row."""
    number = None
    if inbound.ticket_id is not None:
        number = db.scalar(select(Ticket.number).where(Ticket.id == inbound.ticket_id))
    return RouteResult(
        inbound_id=inbound.id,
        outcome=inbound.outcome or "",
        reason=inbound.reason or "",
        explanation=list(inbound.explanation or []),
        client_id=inbound.client_id,
        contact_id=inbound.contact_id,
        ticket_id=inbound.ticket_id,
        ticket_number=number,
    )


def _stored_if_routed(engine: Engine, inbound_id: int) -> RouteResult | None:
    with Session(engine) as session:
        inbound = session.get(InboundMessage, inbound_id)
        if inbound is None or inbound.status != "routed":
            return None
        return stored_result(session, inbound)


def _count_attempt(engine: Engine, inbound_id: int) -> None:
    """After a rolled-back attempt, still count it (best effort: the database may be the fault)."""
    try:
        with Session(engine) as session, session.begin():
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbound_id, InboundMessage.status != "routed")
                .values(attempts=InboundMessage.attempts + 1)
            )
    except Exception:  # best effort: the original error is the one that matters
        log.debug("could not count the failed attempt of inbound %s", inbound_id, exc_info=True)


def record_failure(inbound_id: int, *, error: str, engine: Engine | None = None) -> None:
    """Mark an inbound message ``failed`` after its retries are exhausted; the raw bytes stay.

    A message routed in the meantime is left alone. ``failed`` messages can be replayed.
    """
    engine = _engine(engine, _settings(None)) if engine is None else engine
    with engine.begin() as db:
        row = _LOCK_INBOUND.first(db, {"inbound_id": inbound_id})
        if row is None:
            raise InboundNotFound(f"no inbound message with id {inbound_id}")
        inbound = take(InboundRow, row)
        if inbound.status == "routed":
            return
        reason = clean_text(error or "routing failed", 4000)
        record_outcome(
            db,
            inbound,
            status="failed",
            outcome="failed",
            reason=reason,
            explanation=[{"step": "failed", "decision": reason}],
        )
    _observe("failed", inbound.source, None)
