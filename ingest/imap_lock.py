"""The lease that makes one poller, across processes and machines, the active one for a mailbox.

* PostgreSQL: a session-level advisory lock ``pg_try_advisory_lock(NAMESPACE, mailbox_id)`` held
  on a dedicated connection for as long as the poller runs. Every process on every machine that
  shares the database competes for the same lock; when the holder dies (even ``kill -9``), its
  connection closes and PostgreSQL releases the lock, so a standby takes over.
* SQLite (the embedded, single-machine mode): an exclusive ``flock`` on a file beside the database
  (``<db>.imap-<id>.lock``), which also keeps two ``ticketpost imap`` processes on one SQLite file
  apart; an in-memory database falls back to a lock inside this process.

The lock is the first guard. The second is in ``ingest.imap_sync``: the checkpoint is advanced with
a compare-and-set in the same transaction as the stored messages, so even two pollers that both
believed they held the lock could not store the same UID twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

#: First key of our advisory locks: "tkpi" as a signed 32-bit number (second key: mailbox id).
NAMESPACE = int.from_bytes(b"tkpi", "big")

_local_lock = threading.Lock()
_held_in_process: set[tuple[str, int]] = set()
_unpooled_engines: dict[str, Engine] = {}


class MailboxLock:
    """An exclusive, non-blocking lease on one mailbox: ``acquire``, ``alive``, ``release``."""

    def acquire(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def alive(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def release(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def lock_for(engine: Engine, mailbox_id: int) -> MailboxLock:
    """The right kind of lock for the database behind ``engine``."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, mailbox_id)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLock(Path(database).with_name(f"{Path(database).name}.imap-{mailbox_id}.lock"))
    return ProcessLock(str(engine.url), mailbox_id)


class AdvisoryLock(MailboxLock):
    """A PostgreSQL session advisory lock held on its own connection."""

    def __init__(self, engine: Engine, mailbox_id: int) -> None:
        self.engine = _unpooled(engine)
        self.mailbox_id = int(mailbox_id)
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            return self.alive()
        conn = self.engine.connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:ns, :id)"),
                {"ns": NAMESPACE, "id": self.mailbox_id},
            ).scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def alive(self) -> bool:
        """True while our lock connection still answers (a dead connection has lost the lock)."""
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND classid::bigint = :ns "
                    "AND objid::bigint = :id AND objsubid = 2"
                ),
                {"ns": NAMESPACE, "id": self.mailbox_id},
            ).scalar()
            self._conn.commit()
            return bool(held)
        except Exception:  # noqa: BLE001 - a broken connection means the lock is gone
            self._drop()
            return False

    def release(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.execute(
                text("SELECT pg_advisory_unlock(:ns, :id)"),
                {"ns": NAMESPACE, "id": self.mailbox_id},
            )
            conn.commit()
        except Exception:  # noqa: BLE001 - closing the connection releases it anyway
            log.debug("advisory unlock failed; closing the connection releases it", exc_info=True)
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001
                pass


def _unpooled(engine: Engine) -> Engine:
    """An engine for lock connections outside ``engine``'s pool: a poller holds its lock connection
    for hours, and a pool of 10 + 20 would otherwise run dry with many mailboxes."""
    key = engine.url.render_as_string(hide_password=False)
    with _local_lock:
        unpooled = _unpooled_engines.get(key)
        if unpooled is None:
            unpooled = _unpooled_engines[key] = create_engine(engine.url, poolclass=NullPool)
        return unpooled


class FileLock(MailboxLock):
    """An exclusive ``flock`` on a lock file (SQLite: processes on one machine)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def alive(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class ProcessLock(MailboxLock):
    """A lock inside this process only (an in-memory SQLite database has no other process)."""

    def __init__(self, scope: str, mailbox_id: int) -> None:
        self.key = (scope, int(mailbox_id))
        self._held = False

    def acquire(self) -> bool:
        with _local_lock:
            if self._held:
                return True
            if self.key in _held_in_process:
                return False
            _held_in_process.add(self.key)
            self._held = True
            return True

    def alive(self) -> bool:
        return self._held

    def release(self) -> None:
        with _local_lock:
            if self._held:
                _held_in_process.discard(self.key)
                self._held = False
