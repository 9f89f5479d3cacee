"""The routing pipeline: the ordered steps, and the one place an outcome is recorded (SPEC §3).

``route_inbound(id)`` reads the stored raw message and runs the steps in :data:`STEPS` order on
one :class:`~routing.context.RoutingContext`. The :data:`MESSAGE_STEPS` need only the message
(parsing and decoding, routing's CPU work): they run before any transaction or lock. Then one
write transaction locks the row (routing.statements.LOCK_INBOUND), reads what the database knows
about the sender, runs the :data:`DATABASE_STEPS`, and records the ticket work together with the
inbound row's outcome, reason and explanation. Steps end routing early by raising
:class:`~routing.outcomes.RoutingStop`; it is caught only here. Anything else is an
infrastructure fault: roll back, count the attempt, re-raise so the queue retries (routing.actors).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import telemetry
from models import InboundMessage, Ticket, utcnow
from models.addresses import address_key
from models.db import get_engine
from routing import statements as sql
from routing.context import RoutingContext
from routing.mailparse import clean_text
from routing.outcomes import RoutingStop
from routing.prepared import Pending
from routing.outbox.answer import Answer, answer_params, plan_answer, write_answer
from routing.outbox.dispatcher import hand_over
from routing.records import InboundRow, TicketRow, take
from routing.sender_record import lookup_sender
from routing.webhooks.events import routing_about, write_outcome_event
from routing.steps.client import client
from routing.steps.contact import contact
from routing.steps.content import calendar, content
from routing.steps.duplicate import duplicate
from routing.steps.extract import extract
from routing.steps.loop_guard import loop_guard
from routing.steps.parse import parse
from routing.steps.policy import policy
from routing.steps.rate_limit import rate_limit
from routing.steps.sender import sender
from routing.steps.thread import thread
from routing.steps.write import write
from routing.tickets import NEW_TICKET_NUMBER, insert_ticket

log = logging.getLogger("ticketpost.routing")

Step = Callable[[RoutingContext], None]

#: Steps that need only the message: run before the write transaction, so CPU work never holds a lock.
MESSAGE_STEPS: tuple[Step, ...] = (parse, loop_guard, calendar, sender, extract)
#: Steps that decide with the database: run in the write transaction, the row and sender locked.
DATABASE_STEPS: tuple[Step, ...] = (rate_limit, duplicate, client, contact, thread, policy, content, write)
#: The routing steps, in order. Each takes the context and either fills in its part or raises
#: RoutingStop with the final outcome.
STEPS: tuple[Step, ...] = MESSAGE_STEPS + DATABASE_STEPS


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
    notified: bool = False  # webhook deliveries were written to the outbox with it


@dataclass(frozen=True)
class PendingResult:
    """What :func:`record_outcome` returns in pipeline mode (routing.batch) while the new ticket's
    id is still on its way from the server; :func:`complete` turns it into the RouteResult."""

    inbound_id: int
    outcome: str
    finish: Callable[[], RouteResult] = field(repr=False)


def _settings(settings):
    if settings is not None:
        return settings
    from core.settings import get_settings  # wiring default only

    return get_settings()


def _engine(engine: Engine | None, settings) -> Engine:
    return engine if engine is not None else get_engine(settings.database_url)


def resolve(engine: Engine | None, settings) -> tuple:
    """``(settings, engine)``: the ones given, or the process's defaults."""
    settings = _settings(settings)
    return settings, _engine(engine, settings)


def route_inbound(inbound_id: int, *, engine: Engine | None = None, settings=None) -> RouteResult:
    """Route one stored inbound message and return its outcome; idempotent.

    An inbound message already ``routed`` returns its stored result and nothing changes. The row
    is locked for the decisions (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
    IMMEDIATE`` serialises writers), so concurrent calls for one id produce one ticket message;
    the unique ``ticket_messages.inbound_id`` is the last line of defence. Raises InboundNotFound
    for an unknown id, and re-raises any unexpected error after rolling back (the queue retries).
    """
    settings = _settings(settings)
    engine = _engine(engine, settings)
    started = time.perf_counter()  # for the routing duration metric
    # A Connection, not a Session: Core statements on it cost half the CPU; the few steps that
    # need the ORM get a Session on the same connection and transaction (RoutingContext.session).
    db = engine.connect()
    ctx = None
    try:
        inbound = _read(db, inbound_id)
        if inbound.status == "routed":
            return stored_result(db, inbound)
        ctx = RoutingContext(db=db, settings=settings, inbound=inbound)
        stop = run_steps(MESSAGE_STEPS, ctx)  # no transaction yet: parsing and decoding hold no lock
        db.begin()  # routing.prepared runs statements under this transaction
        locked = _lock(ctx, decide=stop is None)
        if locked.status == "routed":  # another delivery of this id finished meanwhile
            result = stored_result(db, read_locked(db, inbound_id))
            db.rollback()
            return result
        ctx.inbound = locked
        if stop is None:
            stop = run_steps(DATABASE_STEPS, ctx)
        result = record(ctx, stop)
        ctx.flush()
        db.commit()
        observe_outcome(result.outcome, inbound.source, time.perf_counter() - started)
        if result.answered or result.notified:
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


def _read(db: Connection, inbound_id: int) -> InboundRow:
    """The stored inbound row, read in autocommit mode: no transaction, no lock (SQLite included)."""
    rows = sql.READ_INBOUND.rows_autocommit(db, {"inbound_id": inbound_id})
    if not rows:
        raise InboundNotFound(f"no inbound message with id {inbound_id}")
    return take(InboundRow, rows[0])


def read_locked(db: Connection, inbound_id: int) -> InboundRow:
    """The row as it is now, in the write transaction (after the locks were granted)."""
    return take(InboundRow, sql.READ_INBOUND.first(db, {"inbound_id": inbound_id}))


def _lock(ctx: RoutingContext, *, decide: bool) -> InboundRow:
    """Lock the row for the decisions (routing.statements.LOCK_INBOUND); its current state.

    With ``decide`` (no step has stopped routing yet), PostgreSQL also takes the Message-ID lock
    (for the duplicate check) and, while the rate limit is on, the sender lock (for its count);
    then what the database knows about the sender is read, in a statement of its own, so it sees
    what the transactions it waited for committed.
    """
    db, inbound = ctx.db, ctx.inbound
    params = {"inbound_id": inbound.id}
    if db.dialect.name == "postgresql":
        limited = (ctx.settings.rate_limit_per_hour or 0) > 0
        params |= {"message_id": ctx.message_id if decide else None,
                   "sender": ctx.sender_email if decide and limited else None}
        row = sql.LOCK_INBOUND.first(db, params)
    else:
        row = sql.INBOUND_STATE.first(db, params)
    if row is None:
        raise InboundNotFound(f"no inbound message with id {inbound.id}")
    locked = inbound._replace(status=row[0], attempts=row[1])
    ctx.webhooks = bool(row[2])  # statements.ANY_WEBHOOK: none enabled = no event statement
    if decide and locked.status != "routed":
        read_sender(ctx)
    return locked


def read_sender(ctx: RoutingContext) -> None:
    """What the database knows about the sender (:attr:`RoutingContext.record`), read once the
    locks are held, in a statement of its own, so it sees what the transactions it waited for
    committed."""
    if ctx.sender_email:
        ctx.record = lookup_sender(ctx.db, email=ctx.sender_email, message_id=ctx.message_id,
                                   inbound_id=ctx.inbound.id, received_at=ctx.inbound.received_at)


def run_steps(steps: tuple[Step, ...], ctx: RoutingContext) -> RoutingStop | None:
    """Run ``steps`` in order; the RoutingStop one of them raised (now in the explanation), or None."""
    name = ""
    try:
        for step in steps:
            name = step.__name__
            step(ctx)
    except RoutingStop as stop:
        ctx.outcome, ctx.reason = stop.outcome, stop.reason
        ctx.explain(stop.step or name, stop.reason)
        return stop
    return None


def record(ctx: RoutingContext, stop: RoutingStop | None) -> RouteResult | PendingResult:
    """Record what the steps decided (:func:`record_outcome`)."""
    written = stop is None and ctx.outcome in ("ticket_created", "ticket_updated", "triaged")
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
        about=routing_about(ctx),
        webhooks=ctx.webhooks,
    )


def _claimed_sender(ctx: RoutingContext) -> str | None:
    """For mail stopped before the sender step: the first From address as written (for searching)."""
    if ctx.mail is None:
        return None
    for _name, address in ctx.mail.from_addresses:
        if "@" in address:
            return clean_text(address_key(address), 320)
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
    about: dict | None = None,
    webhooks: bool = True,
) -> RouteResult | PendingResult:
    """THE place an inbound message's outcome is recorded (in ``db``'s transaction) and logged.

    Everything routing learned about the row (attempts, Message-ID, subject, sender) is written
    here too, so one UPDATE carries it; with it the ticket message the write step prepared
    (``message``: routing.statements.MESSAGE_COLUMNS) and, for a ``reply``, its ticket's ``updated_at`` and
    ``ticket_status`` (None = unchanged). A ``new_ticket`` (routing.tickets.ticket_values) is
    opened here too: ``reason`` and ``explanation`` name it as :data:`NEW_TICKET_NUMBER` and
    ``message`` has no ticket_id yet. On PostgreSQL that is one statement. ``inbound`` is only
    read (its id). An ``answer`` (routing.outbox.answer) is written with it: the outbox row, in
    the same transaction. So are the webhook deliveries of the outcome's event
    (routing.webhooks.events; ``about`` adds client, contact, ticket and mail details to it),
    unless ``webhooks`` is False: the caller read in this transaction that no webhook is enabled
    (routing.statements.ANY_WEBHOOK, with the lock), so that statement is skipped.
    The caller commits, then counts the outcome with :func:`observe_outcome`. In psycopg's
    pipeline mode (routing.batch) a new ticket's statement is only sent, and when nothing here needs
    its id (no answer to write apart from the acknowledgement, no webhook) a :class:`PendingResult`
    is returned, which the caller completes (:func:`complete`) once the server has answered.
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
    answer_written = None
    touch = reply and ticket is not None
    if message is not None:
        params.update({"m_" + k: message[k] for k in sql.MESSAGE_COLUMNS})
    if touch:
        params.update({"t_id": ticket.id, "t_status": ticket_status, "t_updated_at": utcnow()})
    created = None  # the new ticket's id, on its way from the server (PostgreSQL)
    if db.dialect.name == "postgresql":
        if new_ticket is not None and answer is not None and answer.kind == "acknowledgement":
            params.update({"n_" + k: v for k, v in new_ticket.items()})
            params.update(answer_params(answer, inbound_id=inbound.id, ticket_id=None))
            created = sql.RECORD_WITH_NEW_TICKET_AND_ACKNOWLEDGEMENT.send(db, params)
            answer_written, answer = answer, None  # written with the outcome
        elif new_ticket is not None:
            params.update({"n_" + k: v for k, v in new_ticket.items()})
            created = sql.RECORD_WITH_NEW_TICKET.send(db, params)
        else:
            (sql.RECORD_WITH_REPLY if touch else sql.RECORD_WITH_MESSAGE if message is not None
             else sql.RECORD).rows(db, params)
    else:  # SQLite has no data-modifying CTEs: the same statements one by one
        if new_ticket is not None:
            _number_new_ticket(values, insert_ticket(db, new_ticket))
            params.update({"o_" + k: values[k] for k in ("ticket_id", "reason", "explanation")},
                          m_ticket_id=values["ticket_id"])
        if message is not None:
            sql.ADD_MESSAGE.rows(db, params)
        if touch:
            sql.TOUCH_TICKET.rows(db, params)
        sql.RECORD.rows(db, params)
    answered = answer is not None or answer_written is not None
    finish = partial(_finished, inbound.id, outcome, values, client_id=client_id, contact_id=contact_id,
                     ticket=ticket, new_ticket=new_ticket is not None, answered=answered)
    if created is not None and not created.arrived and answer is None and not webhooks:
        # Pipeline mode (routing.batch), and nothing below needs the new ticket's id: the caller
        # finishes the result once the server has answered (routing.pipeline.complete).
        return PendingResult(inbound.id, outcome, partial(finish, created=created))
    if created is not None:
        _number_new_ticket(values, created.first()[0])
    if answer is not None:
        write_answer(db, answer, inbound_id=inbound.id, ticket_id=values["ticket_id"])
    ticket_number = values["ticket_id"] if new_ticket is not None else ticket.number if ticket is not None else None
    notified = webhooks and write_outcome_event(
        db, inbound_id=inbound.id, outcome=outcome, reason=values["reason"], client_id=client_id,
        contact_id=contact_id, ticket_id=values["ticket_id"], ticket_number=ticket_number, about=about)
    return finish(notified=bool(notified))


def _finished(inbound_id: int, outcome: str, values: dict, *, client_id, contact_id, ticket: TicketRow | None,
              new_ticket: bool, answered: bool, notified: bool = False, created: Pending | None = None,
              ) -> RouteResult:
    """The RouteResult of :func:`record_outcome` (the new ticket's id read from ``created`` first, when
    it was still on its way), logged."""
    if created is not None:
        _number_new_ticket(values, created.first()[0])
    log.info(
        "inbound %s: %s (%s)", inbound_id, outcome, values["reason"],
        extra={"inbound_id": inbound_id, "outcome": outcome},
    )
    return RouteResult(
        inbound_id=inbound_id,
        outcome=outcome,
        reason=values["reason"],
        explanation=values["explanation"],
        client_id=client_id,
        contact_id=contact_id,
        ticket_id=values["ticket_id"],
        ticket_number=values["ticket_id"] if new_ticket else ticket.number if ticket is not None else None,
        answered=answered,
        notified=notified,
    )


def complete(result: RouteResult | PendingResult) -> RouteResult:
    """The RouteResult of a :class:`PendingResult` (waiting for the server's answer if it has not
    arrived); a RouteResult as it is."""
    return result.finish() if isinstance(result, PendingResult) else result


def _number_new_ticket(values: dict, ticket_id: int) -> None:
    """Put the new ticket's id, and its number for :data:`NEW_TICKET_NUMBER`, into ``values``."""
    number = str(ticket_id)
    values["ticket_id"] = ticket_id
    values["reason"] = values["reason"].replace(NEW_TICKET_NUMBER, number)
    values["explanation"] = [{k: v.replace(NEW_TICKET_NUMBER, number) for k, v in e.items()}
                             for e in values["explanation"]]


def observe_outcome(outcome: str, source: str, seconds: float | None) -> None:
    """Count a committed outcome (and how long routing took) in the metrics."""
    telemetry.observe_routing(outcome, source, seconds)


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
        with engine.begin() as db:
            sql.COUNT_ATTEMPT.rows(db, {"inbound_id": inbound_id})
    except Exception:  # best effort: the original error is the one that matters
        log.debug("could not count the failed attempt of inbound %s", inbound_id, exc_info=True)


def record_failure(inbound_id: int, *, error: str, engine: Engine | None = None) -> None:
    """Mark an inbound message ``failed`` after its retries are exhausted; the raw bytes stay.

    A message routed in the meantime is left alone. ``failed`` messages can be replayed.
    """
    engine = _engine(engine, _settings(None)) if engine is None else engine
    with engine.begin() as db:
        row = sql.LOCK_INBOUND_ROW.first(db, {"inbound_id": inbound_id})
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
            about={"source": inbound.source, "received_at": inbound.received_at.isoformat()},
        )
    observe_outcome("failed", inbound.source, None)
