"""Routing several ready inbound messages at once: one transaction, pipelined, one commit.

A worker given N ready ids (``routing.actors.route_inbound_batch``) routes them here instead of one
transaction per message: the read of the rows, the BEGIN, the locks and the commit with its WAL
flush are paid once per batch instead of once per message. Each message still runs every step
(routing.pipeline: the message steps before the transaction, the database steps in it) and has its
outcome recorded in the one place outcomes are recorded; only the transaction around it differs.

* The rows are read together, without a lock, and every message is parsed before the
  transaction begins (as routing.pipeline does for one).
* In the transaction, PostgreSQL first takes the Message-ID and sender locks of the whole batch in
  one statement and in one global order (routing.statements.BATCH_LOCKS), then locks the rows in
  id order; two batches (or a batch and a single message) cannot deadlock on those. Any other
  deadlock (two batches replying to the same two tickets in opposite order) makes PostgreSQL fail
  one statement, which rolls back that message's savepoint only.
* What the database knows about the senders is read for the whole batch in one statement after
  the locks (routing.sender_record.lookup_senders) — for each sender's first message in the batch;
  a later message of the same sender reads its own when its turn comes, so it sees what the
  earlier one wrote (its ticket for the duplicate check and the rate limit, a new contact).
* So are the tickets the batch's replies refer to by Message-ID (:func:`_read_threads`); a reply
  whose references name another message of the batch, or a ticket an earlier message of the batch
  replied to, looks its own up when its turn comes (:class:`_Threads`).
* On PostgreSQL the messages' database steps first run in psycopg's pipeline mode
  (:func:`_route_pipelined`): each message's writes are sent without waiting for the server's
  answer, so PostgreSQL carries them out while this thread decides the next message, and the
  batch waits only where a step needs rows back and once at the end. A failure anywhere in that
  attempt (an error can arrive one or more messages after the statement that caused it) rolls
  the whole transaction back, logs it, and the batch is routed again as below.
* Otherwise (SQLite, or the second attempt) each message's database steps run inside its own
  ``SAVEPOINT``. A message whose routing fails for any reason other than a recorded outcome rolls
  back to its savepoint — the others are unaffected — has its attempt counted in the same
  transaction, and is returned in ``failed`` so the caller retries it alone (the actor puts it
  back on the queue as a single-id message, which has the retries and the final ``failed`` of
  one message). So a failing message costs its batch one more attempt, and never another
  message's routing.
* Savepoints are not released one by one (that would be one more round trip per message): each is
  nested in the one before and all end with the commit. A batch is at most :data:`MAX_BATCH`
  messages, below PostgreSQL's 64 cached subtransactions per transaction.
* When the transaction itself fails (the database went away, the commit failed), nothing of the
  batch is committed and the error is raised: every id of it is for retrying.

Idempotence holds as for one message: a row already ``routed`` returns its stored result and is
left alone; an id given twice is routed once; an id with no stored message is in ``missing``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from routing import pipeline
from routing import statements as sql
from routing.context import RoutingContext
from routing.outbox.dispatcher import hand_over
from routing.outcomes import RoutingStop
from routing.records import InboundRow, take
from routing.sender_record import SenderRecord, lookup_senders
from routing.steps.thread import referenced, tickets_holding

log = logging.getLogger("ticketpost.routing")

#: The most messages one batch routes (each savepoint is a subtransaction; PostgreSQL caches 64
#: per transaction before it spills to pg_subtrans, which slows every snapshot on the server).
MAX_BATCH = 50


@dataclass
class BatchResult:
    """What :func:`route_batch` did with each id it was given."""

    #: routed here, or already routed before (stored result); committed together
    results: dict[int, pipeline.RouteResult] = field(default_factory=dict)
    #: rolled back to their savepoint (attempt counted), or failed before the transaction: to be
    #: retried alone
    failed: dict[int, BaseException] = field(default_factory=dict)
    #: no inbound message has this id
    missing: list[int] = field(default_factory=list)


@dataclass
class _Prepared:
    """One message of the batch after its message steps: its context and what stopped it, if anything."""

    ctx: RoutingContext
    stop: RoutingStop | None
    record: SenderRecord | None = None  # read with the batch's other senders (_read_senders)


def route_batch(inbound_ids, *, engine: Engine | None = None, settings=None) -> BatchResult:
    """Route the stored inbound messages ``inbound_ids`` in one transaction; see the module doc.

    Raised when the transaction as a whole fails (nothing committed): the database's error; and
    ValueError for more than :data:`MAX_BATCH` ids.
    """
    settings, engine = pipeline.resolve(engine, settings)
    ids = sorted({int(i) for i in inbound_ids})
    if len(ids) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} ids per batch, got {len(ids)}")
    if not ids:
        return BatchResult()
    started = time.perf_counter()
    with engine.connect() as db:
        try:
            done, written = _attempt(db, ids, settings, pipelined=db.dialect.driver == "psycopg")
        except _PipelineFailed as failed:
            log.warning(
                "a pipelined routing batch failed and was rolled back; routing it again with a savepoint per message",
                extra={"outcome": "retrying", "error": f"{type(failed.error).__name__}: {failed.error}"},
            )
            done, written = _attempt(db, ids, settings, pipelined=False)
    seconds = (time.perf_counter() - started) / len(ids)  # the batch's time, shared out
    for outcome, source in written:
        pipeline.observe_outcome(outcome, source, seconds)
    for inbound_id, result in done.results.items():
        if result.answered or result.notified:  # its answer / webhook rows were committed with it: send now
            hand_over(inbound_id=inbound_id)
    return done


class _PipelineFailed(Exception):
    """The pipelined attempt at a batch failed somewhere and was rolled back (``error``: why)."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _attempt(db: Connection, ids: list[int], settings, *, pipelined: bool) -> tuple[BatchResult, list]:
    """One transaction over the batch: its results, and the (outcome, source) of each message routed."""
    done = BatchResult()
    written: list[tuple[str, str]] = []
    rows = _read(db, ids)
    done.missing = [i for i in ids if i not in {row.id for row in rows}]
    batch = [_parse(db, inbound, settings, done) for inbound in rows]
    batch = [p for p in batch if p is not None]
    try:
        db.begin()
        states = _lock(db, batch, settings)
        _read_senders(db, batch, states)
        threads = _read_threads(db, batch, states)
        if pipelined:
            _route_pipelined(db, batch, states, done, written, threads)
        else:
            for n, one in enumerate(batch):
                result = _route(db, n, one, states, done, threads)
                if result is not None and result[1] is not None:
                    written.append(result)
        db.commit()
    finally:
        if db.in_transaction():
            db.rollback()
        for one in batch:
            one.ctx.close()
    return done, written


def _route_pipelined(db: Connection, batch: list[_Prepared], states: dict, done: BatchResult,
                     written: list, threads: _Threads) -> None:
    """Every message's database steps and record in psycopg's pipeline mode, without savepoints.

    The statements that write are sent without waiting for their answers, so PostgreSQL carries
    them out while this thread goes on with the next message; only a statement whose rows a step
    needs (a sender read again, a reply's own thread lookup, a new contact) waits, and the new
    tickets' ids are read at the end (routing.pipeline.complete). Any failure — a statement's error, which may
    arrive one or more messages later, or an exception in a step — raises :class:`_PipelineFailed`
    and the caller rolls the transaction back and routes the batch again with a savepoint per
    message (:func:`_route`), where the message at fault is rolled back alone.
    A statement run through SQLAlchemy (the few steps not on routing.prepared) is synced at once
    (:func:`_sync_pipeline`): SQLAlchemy reads its result right after sending it.
    """
    driver = db.connection.dbapi_connection
    event.listen(db, "after_cursor_execute", _sync_pipeline)
    try:
        with driver.pipeline():
            for one in batch:
                result = _route_one(db, one, states, done, threads)
                if result is not None and result[1] is not None:
                    written.append(result)
        # Leaving pipeline mode synced it: every answer has arrived, every error has been raised.
        for inbound_id, result in done.results.items():
            done.results[inbound_id] = pipeline.complete(result)
    except Exception as exc:  # noqa: BLE001 - the whole batch goes again, a savepoint per message
        raise _PipelineFailed(exc) from exc
    finally:
        event.remove(db, "after_cursor_execute", _sync_pipeline)


def _sync_pipeline(_conn, cursor, *_args) -> None:
    """After a statement SQLAlchemy sent in pipeline mode: wait for its result (and every earlier one)."""
    pipe = cursor.connection._pipeline  # psycopg has no public accessor for the active pipeline
    if pipe is not None:
        pipe.sync()


def _read(db: Connection, ids: list[int]) -> list[InboundRow]:
    """The batch's rows, read in autocommit mode: no transaction, no lock (as pipeline._read)."""
    return [take(InboundRow, row) for row in sql.READ_INBOUND_MANY.rows_autocommit(db, {"ids": ids})]


def _parse(db: Connection, inbound: InboundRow, settings, done: BatchResult) -> _Prepared | None:
    """Run the message steps (parsing, decoding: no database) of one message, before the transaction."""
    ctx = RoutingContext(db=db, settings=settings, inbound=inbound)
    try:
        stop = pipeline.run_steps(pipeline.MESSAGE_STEPS, ctx)
    except Exception as exc:  # noqa: BLE001 - this message alone is retried
        ctx.close()
        done.failed[inbound.id] = exc
        return None
    return _Prepared(ctx, stop)


def _lock(db: Connection, batch: list[_Prepared], settings) -> dict[int, tuple[str, int, bool]]:
    """Take the batch's locks (PostgreSQL: Message-IDs and senders, then rows); id → (status,
    attempts, whether any webhook is enabled: routing.statements.ANY_WEBHOOK)."""
    if not batch:
        return {}
    if db.dialect.name == "postgresql":
        deciding = [one.ctx for one in batch if one.stop is None]
        limited = (settings.rate_limit_per_hour or 0) > 0
        message_ids = [ctx.message_id for ctx in deciding]
        senders = [ctx.sender_email for ctx in deciding if ctx.sender_email] if limited else []
        if message_ids or senders:
            sql.BATCH_LOCKS.rows(db, {"message_ids": message_ids, "senders": senders})
    rows = sql.LOCK_INBOUND_MANY.rows(db, {"ids": [one.ctx.inbound.id for one in batch]})
    return {row[0]: (row[1], row[2], bool(row[3])) for row in rows}


def _read_senders(db: Connection, batch: list[_Prepared], states: dict) -> None:
    """What the database knows about the batch's senders, in one statement (after the locks).

    Only for the first message of each sender in the batch: what a message routed earlier in the
    same batch writes (its ticket, a contact) concerns its own sender alone, so a later message of
    that sender reads its record itself when its turn comes (routing.pipeline.read_sender).
    """
    seen: set[str] = set()
    first: list[_Prepared] = []
    for one in batch:
        ctx = one.ctx
        state = states.get(ctx.inbound.id)
        if one.stop is not None or not ctx.sender_email or state is None or state[0] == "routed":
            continue
        if ctx.sender_email not in seen:
            seen.add(ctx.sender_email)
            first.append(one)
    records = lookup_senders(db, [
        {"email": one.ctx.sender_email, "message_id": one.ctx.message_id, "inbound_id": one.ctx.inbound.id,
         "received_at": one.ctx.inbound.received_at} for one in first])
    for one, record in zip(first, records, strict=True):
        one.record = record


def _read_threads(db: Connection, batch: list[_Prepared], states: dict) -> _Threads:
    """The tickets the batch's replies refer to by Message-ID, in one statement (after the locks),
    each reply given its own (``RoutingContext.known_threads``); see :class:`_Threads` for when a
    reply reads its own instead."""
    asked: list[tuple[_Prepared, list[str]]] = []
    for one in batch:
        state = states.get(one.ctx.inbound.id)
        if one.stop is not None or state is None or state[0] == "routed" or one.ctx.mail is None:
            continue
        refs = [message_id for _, message_id in referenced(one.ctx.mail)]
        if refs:
            asked.append((one, refs))
    known = tickets_holding(db, [i for _, refs in asked for i in refs]) if asked else {}
    for one, refs in asked:
        one.ctx.known_threads = {i: known[i] for i in refs if i in known}
    return _Threads({one.ctx.message_id.strip("<>") for one in batch if one.ctx.message_id})


class _Threads:
    """Keeps the tickets read ahead for a batch's replies true while the batch is routed.

    What was read before the first message of the batch was routed is still what a reply would
    read itself, unless the batch changed it meanwhile: a reply that refers to another message of
    this batch (which may be on a ticket by its turn), or whose known ticket a message routed
    earlier in the batch replied to (its status may have changed), reads its own instead.
    """

    def __init__(self, message_ids: set[str]) -> None:
        self.message_ids = message_ids  # of every message in the batch
        self.touched: set[int] = set()  # tickets the messages routed so far replied to

    def check(self, ctx: RoutingContext) -> None:
        """Before the message's database steps: drop what was read ahead if the batch changed it."""
        known = ctx.known_threads
        if known is None:
            return
        if any(t.id in self.touched for t in known.values()) or any(
                message_id in self.message_ids for _, message_id in referenced(ctx.mail)):
            ctx.known_threads = None

    def routed(self, ctx: RoutingContext) -> None:
        """After the message's record: the ticket it replied to, if any."""
        if ctx.ticket is not None:
            self.touched.add(ctx.ticket.id)


def _route_one(db: Connection, one: _Prepared, states: dict, done: BatchResult, threads: _Threads) -> tuple | None:
    """The database steps and the record of one message (no savepoint); (outcome, source)."""
    if not _ready(db, one, states, done):
        return None
    result = done.results[one.ctx.inbound.id] = _decide(one, threads)
    return result.outcome, one.ctx.inbound.source


def _route(db: Connection, n: int, one: _Prepared, states: dict, done: BatchResult, threads: _Threads,
           ) -> tuple | None:
    """The database steps and the record of one message, inside savepoint ``n``; (outcome, source)."""
    if not _ready(db, one, states, done):
        return None
    inbound_id = one.ctx.inbound.id
    _savepoint(db, f"SAVEPOINT tp_route_{n}")
    try:
        result = _decide(one, threads)
    except Exception as exc:  # noqa: BLE001 - this message alone rolls back and is retried
        _savepoint(db, f"ROLLBACK TO SAVEPOINT tp_route_{n}")
        sql.COUNT_ATTEMPT.rows(db, {"inbound_id": inbound_id})
        done.failed[inbound_id] = exc
        log.warning(
            "routing one message of a batch failed; it is retried alone",
            extra={"inbound_id": inbound_id, "outcome": "retrying", "error": f"{type(exc).__name__}: {exc}"},
        )
        return None
    done.results[inbound_id] = result
    return result.outcome, one.ctx.inbound.source


def _ready(db: Connection, one: _Prepared, states: dict, done: BatchResult) -> bool:
    """Whether the message is still to be routed (its locked state put on its context); a row
    deleted meanwhile goes to ``missing``, one routed meanwhile gets its stored result."""
    ctx = one.ctx
    inbound_id = ctx.inbound.id
    state = states.get(inbound_id)
    if state is None:  # deleted since it was read
        done.missing.append(inbound_id)
        return False
    status, attempts, ctx.webhooks = state
    if status == "routed":  # another delivery of this id finished meanwhile
        done.results[inbound_id] = pipeline.stored_result(db, pipeline.read_locked(db, inbound_id))
        return False
    ctx.inbound = ctx.inbound._replace(status=status, attempts=attempts)
    return True


def _decide(one: _Prepared, threads: _Threads) -> pipeline.RouteResult | pipeline.PendingResult:
    """The message's database steps (unless its message steps already stopped it), then its record."""
    ctx, stop = one.ctx, one.stop
    threads.check(ctx)
    if stop is None:
        if one.record is not None:
            ctx.record = one.record
        else:
            pipeline.read_sender(ctx)
        stop = pipeline.run_steps(pipeline.DATABASE_STEPS, ctx)
    result = pipeline.record(ctx, stop)
    ctx.flush()
    threads.routed(ctx)
    return result


def _savepoint(db: Connection, statement: str) -> None:
    """Send a savepoint command (straight to psycopg on PostgreSQL: no SQLAlchemy round of CPU)."""
    if db.dialect.driver == "psycopg":
        db.connection.dbapi_connection.execute(statement)
    else:
        db.exec_driver_sql(statement)
