"""The dispatcher: sends due outbox rows, with retries and exponential backoff, at least once.

The row is the source of truth; the queue carries only which rows to look at. One round
(:func:`dispatch`) *claims* rows in one statement: still ``pending``, due (``next_attempt_at`` has
passed), counted as an attempt, and hidden for ``TICKETPOST_OUTBOX_LEASE_S`` by moving
``next_attempt_at`` forward. It then hands each kind's rows to its handler (:data:`HANDLERS`) and
records every result in one transaction:

* sent: ``status=sent``, ``sent_at``;
* failed, retrying can help and attempts are left: still ``pending``, ``next_attempt_at`` after
  an exponential backoff (:class:`RetryPolicy` of the kind), ``reason`` says why;
* failed for good (a permanent refusal such as SMTP 5xx, or the last attempt): ``status=failed``
  with the reason; :data:`FAILED_HOOKS` run in that transaction (webhooks' ``outbox.failed``).

A dispatcher killed mid-send leaves its rows claimed; once the lease has passed they are due
again and sent again with the same Message-ID (the row keeps it): delivery is at least once.

Where it runs: the dramatiq actor :data:`send_outbox` on the queue :data:`QUEUE_NAME` of the
process's broker (Redis, or the in-process one under ``ticketpost up``). Routing sends it the id
of an inbound message that was answered, right after its commit; :class:`OutboxPoller` (a thread
in every worker process) sends it a drain request whenever rows are due, which covers retries,
hand-overs lost to a broker outage or a crash, and ``POST /api/v1/outbox/{id}/retry``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from email.utils import parseaddr

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection, Engine

from models import OutboxItem, utcnow
from models.base import UTCDateTime
from routing.broker import get_broker
from routing.outbox.compose import compose, load_values
from routing.outbox.transport import SendFailed, get_transport

log = logging.getLogger("ticketpost.outbox")

#: The queue outbound work travels on (its own, so a routing backlog never delays answers).
QUEUE_NAME = "outbox"
#: Rows claimed per round.
BATCH = 50

_OUTBOX = OutboxItem.__table__


@dataclass(frozen=True)
class Result:
    """How one send ended: ``error`` None means sent; ``permanent`` means do not retry."""

    row_id: int
    error: str | None = None
    code: int | None = None
    permanent: bool = False
    retry_after_s: float | None = None  # the server's own "try again in" (at least the backoff)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a kind is retried (delay doubles from ``min`` to ``max``)."""

    max_attempts: int
    min_backoff_s: float
    max_backoff_s: float

    def backoff_s(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        return min(self.max_backoff_s, self.min_backoff_s * 2 ** max(0, attempts - 1))


def _mail_policy(settings) -> RetryPolicy:
    return RetryPolicy(settings.outbox_max_attempts, settings.outbox_min_backoff_s, settings.outbox_max_backoff_s)


Handler = Callable[[list, Engine, object], list[Result]]

#: kind -> the function that sends a batch of claimed rows of that kind and returns a Result each.
HANDLERS: dict[str, Handler] = {}
#: kind -> its retry policy, from the settings.
RETRY_POLICIES: dict[str, Callable[[object], RetryPolicy]] = {
    "acknowledgement": _mail_policy,
    "notice": _mail_policy,
}
#: Called with (connection, rows that just failed for good), in the transaction that records it.
FAILED_HOOKS: list[Callable[[Connection, list], None]] = []


def send_mail_rows(rows: list, engine: Engine, settings) -> list[Result]:
    """The handler of the mail kinds: compose each row, hand them to the outbound transport.

    The mails of a batch go out over up to ``TICKETPOST_OUTBOX_CONNECTIONS`` connections at once
    (threads of one pool per process, each keeping its connection open): a send is mostly
    waiting for the server's four replies, so one connection at a time left the dispatcher idle.
    """
    transport = get_transport(settings)
    if transport is None:
        return [Result(r.id, "TICKETPOST_OUTBOUND_URL is not set: nothing can be sent") for r in rows]
    with engine.connect() as db:
        values = load_values(db, rows)
    sender = settings.reply_address
    envelope_from = parseaddr(sender)[1]
    results: dict[int, Result] = {}
    ready = []
    for row in rows:
        try:
            ready.append((row, compose(row, values[row.id], reply_address=sender)))
        except Exception as exc:  # noqa: BLE001 - a row that cannot be built must not stop the others
            log.exception("cannot build the mail of outbox row %s", row.id)
            results[row.id] = Result(row.id, f"cannot build the mail: {type(exc).__name__}: {exc}", permanent=True)

    def send(item) -> Result:
        row, data = item
        try:
            code = transport.send(sender=envelope_from, recipients=[row.recipient], data=data)
        except SendFailed as exc:
            return Result(row.id, exc.reason, exc.code, exc.permanent, exc.retry_after_s)
        return Result(row.id, None, code)

    pool = _send_pool(settings.outbox_connections)
    sent = pool.map(send, ready) if pool is not None and len(ready) > 1 else map(send, ready)
    for result in sent:
        results[result.row_id] = result
    return [results[r.id] for r in rows]


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _send_pool(size: int) -> ThreadPoolExecutor | None:
    """The process's pool of ``size`` sending threads (None: send in the calling thread)."""
    if size <= 1:
        return None
    with _pools_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="ticketpost-outbox-send")
        return pool


HANDLERS["acknowledgement"] = send_mail_rows
HANDLERS["notice"] = send_mail_rows


# --- claiming and recording ----------------------------------------------------------------------


def _claim_statement(where, now, lease_s: float):
    return (
        update(_OUTBOX)
        .where(where)
        .values(attempts=_OUTBOX.c.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s), updated_at=now)
        .returning(*_OUTBOX.c)
    )


def claim(engine: Engine, *, ids: list[int] | None = None, inbound_id: int | None = None,
          limit: int = BATCH, lease_s: float = 120.0) -> list:
    """Take due pending rows (these ``ids``, this inbound message's, or the most overdue ``limit``)."""
    now = utcnow()
    due = (_OUTBOX.c.status == "pending") & (_OUTBOX.c.next_attempt_at <= now)
    if ids is not None:
        where = due & _OUTBOX.c.id.in_(list(ids))
    elif inbound_id is not None:
        where = due & (_OUTBOX.c.inbound_id == inbound_id)
    else:
        pick = select(_OUTBOX.c.id).where(due).order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id).limit(limit)
        if engine.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        where = _OUTBOX.c.id.in_(pick.scalar_subquery())
    with engine.begin() as db:
        return list(db.execute(_claim_statement(where, now, lease_s)))


_RECORD = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("r_id"), _OUTBOX.c.status == "pending")
    .values(status=bindparam("r_status"), next_attempt_at=bindparam("r_next", type_=UTCDateTime()),
            reason=bindparam("r_reason"), last_status_code=bindparam("r_code"),
            sent_at=bindparam("r_sent_at", type_=UTCDateTime()), updated_at=bindparam("r_now", type_=UTCDateTime()))
)


def record(engine: Engine, rows: list, results: list[Result], settings) -> dict[str, int]:
    """Write each result on its row (one transaction); return how many were sent/retrying/failed."""
    now = utcnow()
    by_id = {r.id: r for r in rows}
    params, failed, counts = [], [], {"sent": 0, "retrying": 0, "failed": 0}
    for result in results:
        row = by_id[result.row_id]
        p = {"r_id": row.id, "r_now": now, "r_code": result.code, "r_next": row.next_attempt_at,
             "r_sent_at": None, "r_reason": None}
        if result.error is None:
            p.update(r_status="sent", r_sent_at=now)
            counts["sent"] += 1
        else:
            policy = RETRY_POLICIES.get(row.kind, _mail_policy)(settings)
            if result.permanent or row.attempts >= policy.max_attempts:
                why = "refused for good" if result.permanent else f"gave up after {row.attempts} attempts"
                p.update(r_status="failed", r_reason=f"{why}: {result.error}"[:4000])
                failed.append(row)
                counts["failed"] += 1
            else:
                wait = max(policy.backoff_s(row.attempts), result.retry_after_s or 0.0)
                p.update(r_status="pending", r_reason=result.error[:4000], r_next=now + timedelta(seconds=wait))
                counts["retrying"] += 1
        params.append(p)
    if params:
        with engine.begin() as db:
            db.execute(_RECORD, params)
            if failed:
                for hook in FAILED_HOOKS:
                    hook(db, failed)
    for result in results:
        if result.error is not None:
            log.warning("outbox %s not sent: %s", result.row_id, result.error,
                        extra={"outbox_id": result.row_id, "kind": by_id[result.row_id].kind})
    return counts


def dispatch(*, engine: Engine, settings, ids: list[int] | None = None, inbound_id: int | None = None,
             limit: int = BATCH) -> dict[str, int]:
    """One round: claim due rows, send them by kind, record the results; return the counts."""
    rows = claim(engine, ids=ids, inbound_id=inbound_id, limit=limit, lease_s=settings.outbox_lease_s)
    if not rows:
        return {"sent": 0, "retrying": 0, "failed": 0}
    results: list[Result] = []
    by_kind: dict[str, list] = {}
    for row in rows:
        by_kind.setdefault(row.kind, []).append(row)
    for kind, batch in by_kind.items():
        handler = HANDLERS.get(kind)
        if handler is None:
            results += [Result(r.id, f"no sender for outbox kind {kind!r} in this build") for r in batch]
            continue
        try:
            results += handler(batch, engine, settings)
        except Exception as exc:  # noqa: BLE001 - recorded on the rows, retried by policy
            log.exception("the %s handler failed", kind)
            done = {r.row_id for r in results}
            results += [Result(r.id, f"{type(exc).__name__}: {exc}") for r in batch if r.id not in done]
    return record(engine, rows, results, settings)


def due_count(engine: Engine) -> int:
    """How many pending rows are due now."""
    with engine.connect() as db:
        return int(db.scalar(select(func.count()).select_from(_OUTBOX).where(
            _OUTBOX.c.status == "pending", _OUTBOX.c.next_attempt_at <= utcnow())) or 0)


# --- the actor, the hand-over and the poller -------------------------------------------------------


def _send_outbox(ids: list[int] | None = None, inbound_id: int | None = None) -> None:
    """Send the given rows (or an inbound message's answers, or whatever is due) that are due."""
    from core.settings import get_settings
    from models.db import get_engine

    settings = get_settings()
    engine = get_engine(settings.database_url)
    while True:
        counts = dispatch(engine=engine, settings=settings, ids=ids, inbound_id=inbound_id)
        # a drain request keeps going while full batches come back
        if ids is not None or inbound_id is not None or sum(counts.values()) < BATCH:
            return


# Declared on a throwaway broker; routing.actors.bind_actors rebinds it with the routing actor.
send_outbox = dramatiq.actor(
    _send_outbox, actor_name="send_outbox", queue_name=QUEUE_NAME, broker=StubBroker(),
    max_retries=0,  # the rows carry the retry state; the poller picks up what a failed run left
)


def hand_over(*, inbound_id: int | None = None, ids: list[int] | None = None) -> bool:
    """Ask the dispatcher to send now (after the commit that wrote the rows); never raises."""
    try:
        get_broker()  # set up (and bind the actors) in a process that has not yet
        send_outbox.send(ids, inbound_id)
        return True
    except Exception as exc:  # noqa: BLE001 - the poller sends them later
        log.warning("queue broker unavailable; the outbox poller will send the answer later",
                    extra={"inbound_id": inbound_id, "error": f"{type(exc).__name__}: {exc}"})
        return False


class OutboxPoller:
    """Every ``TICKETPOST_OUTBOX_POLL_INTERVAL_S``, hands due rows to the dispatcher (a thread)."""

    def __init__(self, *, engine: Engine, settings, drains: int | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.drains = drains or max(1, settings.worker_threads)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """Send drain requests for the due rows; return how many rows were due."""
        due = due_count(self.engine)
        for _ in range(min(self.drains, -(-due // BATCH))):
            if not hand_over():
                break
        return due

    def _run(self) -> None:
        while not self._stop.wait(self.settings.outbox_poll_interval_s):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the database may be down; try again next round
                log.warning("outbox poll failed", exc_info=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ticketpost-outbox-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
