"""Killing a worker process (-9) while it holds an outbox row, and letting a second one finish the row.

Shared by the crash tests of the outbox (``tests/outbox/test_crash.py``) and of webhooks
(``tests/webhooks/test_crash.py``): both rows are ``OutboxItem``s that a ``ticketpost worker``
claims, and both must be sent again, once the lease runs out, by the next worker.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from models import OutboxItem
from models.db import session_scope
from tests.ingest.smtp_fixtures import stop_process, ticketpost_process, wait_until


def kill_9_in_flight(engine: Engine, row_id: int, env: dict, log: Path, *, threads: int,
                     in_flight: Callable[[], object]) -> None:
    """Start a worker, wait for ``in_flight()`` (it returns once the row is mid-send), check the
    row is claimed (pending, attempt 1) and kill the worker with SIGKILL."""
    worker = ticketpost_process(["worker", "--threads", str(threads)], env, log)
    try:
        in_flight()
        with session_scope(engine) as s:
            claimed = s.get(OutboxItem, row_id)
            assert (claimed.status, claimed.attempts) == ("pending", 1)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            stop_process(worker, signal.SIGKILL)


def sent_by_next_worker(engine: Engine, row_id: int, env: dict, log: Path, *, threads: int,
                        what: str) -> None:
    """Start a worker and wait until the row is ``sent`` (fails the test after 60 s); stop it."""
    worker = ticketpost_process(["worker", "--threads", str(threads)], env, log)
    try:
        def sent() -> bool:
            with session_scope(engine) as s:
                return s.scalar(select(OutboxItem.status).where(OutboxItem.id == row_id)) == "sent"

        wait_until(sent, timeout=60, what=what)
    finally:
        stop_process(worker)
