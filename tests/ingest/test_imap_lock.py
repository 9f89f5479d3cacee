"""One active poller per mailbox: the lease is exclusive and is freed when its holder goes."""

from __future__ import annotations

from ingest.imap_lock import AdvisoryLock, FileLock, lock_for


def test_a_mailbox_lease_is_held_by_one_holder_at_a_time(engine):
    first, second = lock_for(engine, 7), lock_for(engine, 7)
    other_mailbox = lock_for(engine, 8)
    try:
        assert first.acquire() and first.alive()
        assert not second.acquire()
        assert other_mailbox.acquire()
        first.release()
        assert second.acquire()
    finally:
        for lock in (first, second, other_mailbox):
            lock.release()


def test_postgresql_frees_the_lease_when_the_holding_connection_dies(pg_engine):
    holder, standby = AdvisoryLock(pg_engine, 3), AdvisoryLock(pg_engine, 3)
    try:
        assert holder.acquire()
        assert not standby.acquire()
        holder._conn.connection.dbapi_connection.close()  # as if the process was killed
        assert not holder.alive()
        assert standby.acquire()
    finally:
        holder.release()
        standby.release()


def test_sqlite_uses_a_lock_file_beside_the_database(sqlite_engine):
    lock = lock_for(sqlite_engine, 1)
    assert isinstance(lock, FileLock)
    assert lock.path.name.endswith(".imap-1.lock")
