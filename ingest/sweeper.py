"""The sweeper: hands inbound messages that were stored but never routed to the workers again.

The database row is the source of truth and the queue only carries ids, so a hand-over can be
lost (broker down at ``250`` time, the in-process queue forgotten by a crash, a ``kill -9``
between commit and enqueue). Every ``TICKETPOST_SWEEPER_INTERVAL_S`` the sweeper looks for
messages still ``received`` after ``TICKETPOST_SWEEPER_GRACE_S`` and enqueues their ids again,
also while the queue is busy: under sustained load a lost hand-over must not wait for the queue
to drain.

Duplicated hand-overs are harmless (routing is idempotent) but cost a queue slot each, so they are
kept few: an id is re-sent after the grace period, then after twice that, four times, … (up to
``MAX_BACKOFF`` grace periods), so a message that is merely waiting in a long queue is re-sent a
handful of times at most; and while the queue has a ready backlog a round re-sends at most
``busy_batch`` ids (oldest first) and the next round waits the full interval. Several sweepers (one
per process) may run at once for the same reason.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from models import InboundMessage
from models.base import utcnow
from models.db import session_scope

log = logging.getLogger(__name__)

#: The longest wait between two re-sends of one id, in grace periods.
MAX_BACKOFF = 16


def stale_inbound_ids(
    *, grace_s: float, limit: int = 500, engine: Engine | None = None
) -> list[int]:
    """Ids of messages still ``received`` that arrived more than ``grace_s`` seconds ago."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(InboundMessage.id)
                .where(InboundMessage.status == "received", InboundMessage.received_at < cutoff)
                .order_by(InboundMessage.id)
                .limit(limit)
            )
        )


class Sweeper:
    """Runs :meth:`sweep_once` every ``interval_s`` in a background thread until stopped."""

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        interval_s: float | None = None,
        grace_s: float | None = None,
        batch: int = 500,
        busy_batch: int = 50,
    ) -> None:
        from core.settings import get_settings

        settings = get_settings()
        self.engine = engine
        self.interval_s = settings.sweeper_interval_s if interval_s is None else interval_s
        self.grace_s = settings.sweeper_grace_s if grace_s is None else grace_s
        self.batch = batch
        self.busy_batch = busy_batch
        #: id → (times re-sent, when last): the backoff between re-sends of one id
        self._resent: dict[int, tuple[int, float]] = {}
        #: True while the last round left stale messages behind (full batch, or the broker down)
        #: and the queue was not busy: rounds then come every second instead of every interval.
        self.more_waiting = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> list[int]:
        """One round: re-enqueue the stale ids whose backoff has passed; return them."""
        from routing.broker import enqueue_many
        from routing.queues import routing_queue_depth

        try:
            busy = routing_queue_depth().ready > 0
        except Exception:  # noqa: BLE001 - broker down: enqueue below will say so per id
            busy = False
        now = time.monotonic()
        stale = stale_inbound_ids(grace_s=self.grace_s, limit=self.batch, engine=self.engine)
        still = set(stale)
        self._resent = {i: sent for i, sent in self._resent.items() if i in still}
        due = [i for i in stale if self._due(i, now)]
        if busy:
            due = due[: self.busy_batch]
        # in batches (routing.batch); after the first one the broker refuses, the rest wait for
        # the next round
        not_handed = set(enqueue_many(due)) if due else set()
        sent = []
        for inbound_id in due:
            if inbound_id in not_handed:
                break
            times, _ = self._resent.get(inbound_id, (0, now))
            self._resent[inbound_id] = (times + 1, now)
            sent.append(inbound_id)
        self.more_waiting = not busy and (len(stale) >= self.batch or len(sent) < len(due))
        if sent:
            log.info("sweeper handed over unrouted messages",
                     extra={"count": len(sent), "queue_busy": busy})
        return sent

    def _due(self, inbound_id: int, now: float) -> bool:
        """True when ``inbound_id`` was never re-sent, or its backoff since the last time passed."""
        if inbound_id not in self._resent:
            return True
        times, last = self._resent[inbound_id]
        return now - last >= self.grace_s * min(2 ** (times - 1), MAX_BACKOFF)

    def start(self) -> None:
        """Start sweeping in a daemon thread (returns at once)."""
        self._thread = threading.Thread(target=self._run, name="ticketpost-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The first round runs at once: a restarted process hands over what a crash left behind.
        # After a full batch (a long outage left many behind) the next round comes a second later,
        # unless the queue is busy (then the full interval: the workers have enough to do).
        while True:
            try:
                self.sweep_once()
            except Exception:  # noqa: BLE001 - database down: next round
                log.warning("sweep failed; retrying next round", exc_info=True)
            wait = min(self.interval_s, 1.0) if self.more_waiting else self.interval_s
            if self._stop.wait(wait):
                return

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current round (waits up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
