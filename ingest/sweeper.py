"""The sweeper: hands inbound messages that were stored but never routed to the workers again.

The database row is the source of truth and the queue only carries ids, so a hand-over can be
lost (broker down at ``250`` time, the in-process queue forgotten by a crash, a ``kill -9``
between commit and enqueue). Every ``TICKETPOST_SWEEPER_INTERVAL_S`` the sweeper looks for
messages still ``received`` after ``TICKETPOST_SWEEPER_GRACE_S`` and enqueues their ids again.

Duplicated hand-overs are harmless (routing is idempotent); to keep them rare the sweeper
re-sends one id at most once per grace period, and skips a round while the queue has a ready
backlog (those messages are on their way; the ids it would re-send are most likely among them).
Several sweepers (one per process) may run at once for the same reason.
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
    ) -> None:
        from core.settings import get_settings

        settings = get_settings()
        self.engine = engine
        self.interval_s = settings.sweeper_interval_s if interval_s is None else interval_s
        self.grace_s = settings.sweeper_grace_s if grace_s is None else grace_s
        self.batch = batch
        self._recently_sent: dict[int, float] = {}
        #: True while the last round left stale messages behind (full batch, or the broker down):
        #: rounds then come every second instead of every interval.
        self.more_waiting = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> list[int]:
        """One round: re-enqueue stale ids not re-sent within the grace period; return them."""
        from routing.broker import enqueue
        from routing.queues import routing_queue_depth

        try:
            if routing_queue_depth().ready > 0:
                return []
        except Exception:  # noqa: BLE001 - broker down: enqueue below will say so per id
            pass
        self.more_waiting = False
        now = time.monotonic()
        self._recently_sent = {
            i: t for i, t in self._recently_sent.items() if now - t < self.grace_s
        }
        ids = [
            i for i in stale_inbound_ids(grace_s=self.grace_s, limit=self.batch, engine=self.engine)
            if i not in self._recently_sent
        ]
        sent = []
        for inbound_id in ids:
            if not enqueue(inbound_id):
                break  # broker still down: try again next round
            self._recently_sent[inbound_id] = now
            sent.append(inbound_id)
        self.more_waiting = len(ids) >= self.batch or len(sent) < len(ids)
        if sent:
            log.info("sweeper handed over unrouted messages", extra={"count": len(sent)})
        return sent

    def start(self) -> None:
        """Start sweeping in a daemon thread (returns at once)."""
        self._thread = threading.Thread(target=self._run, name="ticketpost-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The first round runs at once: a restarted process hands over what a crash left behind.
        # After a full batch (a long outage left many behind) the next round comes as soon as the
        # workers have taken it (the ready-queue check holds it back until then).
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
