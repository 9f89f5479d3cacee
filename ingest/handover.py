"""The hand-over: gives committed inbound ids to the routing queue from a thread of its own.

SMTP and IMAP intake both commit first and hand over after: a slow or unreachable broker then
never holds up a COMMIT, a ``250`` or a ``\\Seen``. The ids are committed before they get here; one
the broker refuses, or one lost in a crash (or left when :meth:`HandOver.close` times out), is still
``received`` in the database, and the sweeper (``ingest.sweeper``) hands it over.

The thread takes every id that is ready when it wakes (a group commit's batch, or what several
IMAP batches left meanwhile) and gives them to the queue together: up to
``TICKETPOST_ROUTE_BATCH_SIZE`` ids per queue message, which a worker routes in one transaction
(:func:`routing.broker.enqueue_many`, ``routing.batch``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable

from routing import broker

log = logging.getLogger(__name__)


def enqueue_for_routing(inbound_id: int) -> bool:
    """Give one stored id to the routing queue (:func:`routing.broker.enqueue`; never raises)."""
    return broker.enqueue(inbound_id)


def enqueue_many_for_routing(inbound_ids: list[int]) -> None:
    """Give stored ids to the routing queue in batches (:func:`routing.broker.enqueue_many`)."""
    broker.enqueue_many(inbound_ids)


class HandOver:
    """A thread that passes ids to ``hand_over`` (default: the routing queue) in arrival order."""

    def __init__(
        self,
        hand_over: Callable[[int], object] = enqueue_for_routing,
        *,
        name: str = "hand-over",
    ) -> None:
        self.hand_over = hand_over
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __call__(self, inbound_id: int) -> None:
        """Queue one id (returns at once)."""
        self._queue.put((inbound_id,))

    def put(self, ids: Iterable[int]) -> None:
        """Queue several ids (returns at once)."""
        self._queue.put(tuple(ids))

    def close(self, timeout: float) -> None:
        """Hand over what is queued (up to ``timeout`` seconds), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            ids, closing = self._ready()
            if ids and self.hand_over is enqueue_for_routing:
                try:
                    enqueue_many_for_routing(ids)
                except Exception:  # noqa: BLE001 - the sweeper re-sends what is not handed over
                    log.warning("hand-over failed; the sweeper will re-send them",
                                extra={"inbound_ids": ids}, exc_info=True)
            else:
                for inbound_id in ids:
                    try:
                        self.hand_over(inbound_id)
                    except Exception:  # noqa: BLE001 - the sweeper re-sends what is not handed over
                        log.warning("hand-over failed; the sweeper will re-send it",
                                    extra={"inbound_id": inbound_id}, exc_info=True)
            if closing:
                return

    def _ready(self) -> tuple[list[int], bool]:
        """Wait for ids, then take every id already queued: (ids in arrival order, closing?)."""
        item = self._queue.get()
        ids: list[int] = []
        while item is not None:
            ids += item
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return ids, False
        return ids, True
