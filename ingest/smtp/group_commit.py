"""Group commit: one writer thread stores what is waiting with one INSERT and one COMMIT per batch.

Sessions whose DATA ended call :meth:`GroupCommitWriter.store` and wait. Each time the thread is
free it takes everything waiting (no timer: what queued up during the previous COMMIT is the next
batch), INSERTs it with one statement (:func:`ingest.store.insert_inbound`) and COMMITs once; only
then does each session learn its own id, and only then are the ids handed to the routing queue
(:class:`ingest.handover.HandOver`). The event loop never touches the database.

A batch that fails because the database is unreachable fails as a whole (nothing of it is stored:
one transaction); a batch that fails for any other reason is stored again message by message, so
one bad row does not cost the others their ``250``. On SQLite every COMMIT is an fsync
(``synchronous=FULL``, ``models.db``): the batch shares it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ingest.handover import HandOver
from ingest.store import inbound_values, insert_inbound
from models.db import get_engine

log = logging.getLogger(__name__)

#: A batch holds at most this many messages and (beyond its first message) this many raw bytes.
BATCH_MAX_MESSAGES = 200
BATCH_MAX_BYTES = 32 * 1024 * 1024


@dataclass
class _Waiting:
    """A message whose DATA has ended, waiting for the writer; ``future`` gets its id or error."""

    raw: bytes
    mail_from: str
    rcpt_tos: list[str]
    future: asyncio.Future


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached (not that one row was refused)."""
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class GroupCommitWriter:
    """Stores SMTP messages with group commit: one thread, one transaction per batch."""

    def __init__(self, *, engine: Engine | None = None) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._carried: _Waiting | None = None  # taken but over a batch limit: first of the next
        self._thread: threading.Thread | None = None
        self._hand_over: HandOver | None = None
        self._lock = threading.Lock()

    async def store(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> int:
        """The id of the committed message; raises what storing it raised."""
        self._start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put(_Waiting(raw, mail_from, rcpt_tos, future))
        return await future

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batches queued so far and the hand-over, then end both threads."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        if self._hand_over is not None:
            self._hand_over.close(timeout)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._hand_over = HandOver(name="smtp-hand-over")
                self._thread = threading.Thread(target=self._run, name="smtp-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while batch := self._next_batch():
            results = self._store(batch)
            try:
                batch[0].future.get_loop().call_soon_threadsafe(_settle, batch, results)
            except RuntimeError:  # the loop is closed: nobody is waiting for an answer
                log.warning("stored %d messages after the SMTP loop closed", len(batch))
            self._hand_over.put(r for r in results if isinstance(r, int))

    def _next_batch(self) -> list[_Waiting]:
        """Block for the first waiting message, then take what else waits, within the limits."""
        first, self._carried = self._carried or self._queue.get(), None
        if first is None:
            return []
        batch, size = [first], len(first.raw)
        while len(batch) < BATCH_MAX_MESSAGES:
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                break
            if waiting is None:
                self._queue.put(None)  # stop after this batch
                break
            if size + len(waiting.raw) > BATCH_MAX_BYTES:
                self._carried = waiting
                break
            batch.append(waiting)
            size += len(waiting.raw)
        return batch

    def _store(self, batch: list[_Waiting]) -> list[int | BaseException]:
        """One id or one exception per message of ``batch``, in order."""
        try:
            ids = self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - answered per message below
            if len(batch) == 1 or database_unavailable(exc):
                return [exc] * len(batch)
            log.warning("a batch of %d messages failed; storing them one by one", len(batch),
                        extra={"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            return [self._store_alone(waiting) for waiting in batch]
        return list(ids)

    def _store_alone(self, waiting: _Waiting) -> int | BaseException:
        try:
            return self._commit([waiting])[0]
        except Exception as exc:  # noqa: BLE001 - this message's own answer
            return exc

    def _commit(self, batch: list[_Waiting]) -> list[int]:
        rows = [
            inbound_values(raw=w.raw, source="smtp", envelope_from=w.mail_from,
                           envelope_to=w.rcpt_tos)
            for w in batch
        ]
        with (self.engine or get_engine()).begin() as conn:
            return insert_inbound(conn, rows)


def _settle(batch: list[_Waiting], results: list[int | BaseException]) -> None:
    """On the event loop: give each waiting session its id or its error."""
    for waiting, result in zip(batch, results, strict=True):
        if waiting.future.done():  # the session went away meanwhile
            continue
        if isinstance(result, BaseException):
            waiting.future.set_exception(result)
        else:
            waiting.future.set_result(result)
