"""Counting the SQL statements a benchmark sends, at the driver, transaction control included.

``routing.prepared`` runs routing's statements on the psycopg cursor, past SQLAlchemy's events, so
on PostgreSQL the count hooks psycopg itself: ``Cursor.execute``/``executemany`` for statements,
and ``BaseConnection._exec_command``, through which psycopg sends the ``BEGIN`` it opens a
transaction with, ``COMMIT`` and ``ROLLBACK`` (each a round trip of its own). The same hook counts
Django's statements in the django-helpdesk benchmark (``engine=None``), which runs on psycopg too.

A *durable commit* is a ``COMMIT`` sent, or a writing statement (INSERT/UPDATE/DELETE) run on a
connection in autocommit mode, which PostgreSQL commits, and flushes to the WAL, on its own.

SQLite's cursor cannot be patched, and routing.prepared goes through SQLAlchemy there, so
SQLAlchemy's events count (the engine's ``BEGIN IMMEDIATE`` is a statement those events see;
``COMMIT``/``ROLLBACK`` come from the ``commit``/``rollback`` events).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START TRANSACTION", "END")
_WRITES = ("INSERT", "UPDATE", "DELETE", "WITH", "MERGE")  # WITH: ours are data-modifying CTEs


@dataclass
class Count:
    """What was sent inside the ``counting`` block(s) that shared this object."""

    #: every statement sent, BEGIN / COMMIT / ROLLBACK / SAVEPOINT included (each a round trip,
    #: except in psycopg's pipeline mode, where several travel together)
    statements: int = 0
    #: of those, transaction control: BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE
    transaction_control: int = 0
    #: COMMITs sent plus writing statements autocommitted one by one
    durable_commits: int = 0
    #: give a list to keep the SQL text of every statement sent (for tests asking which were sent)
    texts: list[str] | None = field(default=None, repr=False)

    @property
    def queries(self) -> int:
        """Statements other than transaction control (what earlier benchmark rows counted)."""
        return self.statements - self.transaction_control


def _text(query) -> str:
    if isinstance(query, bytes | bytearray | memoryview):
        return bytes(query[:24]).decode("ascii", "replace")
    if isinstance(query, str):
        return query[:24]
    try:  # psycopg.sql.Composable and the like
        return str(query)[:24]
    except Exception:  # noqa: BLE001 - classification only
        return ""


def _keep(count: Count, query) -> None:
    if count.texts is not None:
        count.texts.append(bytes(query).decode() if isinstance(query, bytes | bytearray | memoryview) else str(query))


def _is(prefixes: tuple[str, ...], query) -> bool:
    return _text(query).lstrip(" (\n\t").upper().startswith(prefixes)


@contextmanager
def counting(engine=None, count: Count | None = None):
    """Count what is sent to ``engine``'s database inside the block (psycopg when ``engine`` is None)."""
    count = count if count is not None else Count()
    if engine is None or engine.dialect.name == "postgresql":
        with _counting_psycopg(count):
            yield count
        return
    from sqlalchemy import event

    def statement(_conn, _cursor, sql, *_args) -> None:
        count.statements += 1
        _keep(count, sql)
        if _is(_CONTROL, sql):
            count.transaction_control += 1

    def commit(_conn) -> None:
        count.statements += 1
        count.transaction_control += 1
        count.durable_commits += 1

    def rollback(_conn) -> None:
        count.statements += 1
        count.transaction_control += 1

    listeners = (("before_cursor_execute", statement), ("commit", commit), ("rollback", rollback))
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield count
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


@contextmanager
def _counting_psycopg(count: Count):
    import psycopg
    from psycopg._connection_base import BaseConnection

    execute, executemany, command = psycopg.Cursor.execute, psycopg.Cursor.executemany, BaseConnection._exec_command

    def one(cursor, query, n: int = 1) -> None:
        count.statements += n
        _keep(count, query)
        if _is(_CONTROL, query):
            count.transaction_control += n
        elif cursor.connection.autocommit and _is(_WRITES, query):
            count.durable_commits += n

    def counted_execute(self, query, *args, **kwargs):
        one(self, query)
        return execute(self, query, *args, **kwargs)

    def counted_executemany(self, query, params_seq, *args, **kwargs):
        params_seq = list(params_seq)
        one(self, query, len(params_seq))  # psycopg pipelines them, but each is a statement
        return executemany(self, query, params_seq, *args, **kwargs)

    def counted_command(self, cmd, *args, **kwargs):
        # Called when psycopg is about to send the command (BEGIN, COMMIT, ROLLBACK, ...).
        count.statements += 1
        if _is(_CONTROL, cmd):
            count.transaction_control += 1
            if _is(("COMMIT",), cmd):
                count.durable_commits += 1
        return command(self, cmd, *args, **kwargs)

    psycopg.Cursor.execute, psycopg.Cursor.executemany = counted_execute, counted_executemany
    BaseConnection._exec_command = counted_command
    try:
        yield count
    finally:
        psycopg.Cursor.execute, psycopg.Cursor.executemany = execute, executemany
        BaseConnection._exec_command = command
