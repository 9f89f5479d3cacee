"""Counting the SQL statements a benchmark sends, at the driver.

``routing.prepared`` runs routing's statements on the psycopg cursor, past SQLAlchemy's events, so
on PostgreSQL the count hooks ``psycopg.Cursor.execute`` (BEGIN and COMMIT, which psycopg sends
itself, are not counted). SQLite's cursor cannot be patched, and routing.prepared goes through
SQLAlchemy there, so its event counts.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Count:
    """How many statements were sent inside the ``counting`` block(s) that shared it."""

    statements: int = 0


@contextmanager
def counting(engine, count: Count | None = None):
    """Count the statements sent to ``engine``'s database inside the block (add to ``count``)."""
    count = count if count is not None else Count()

    def one_more(*_args) -> None:
        count.statements += 1

    if engine.dialect.name == "postgresql":
        import psycopg

        original = psycopg.Cursor.execute

        def execute(self, *args, **kwargs):
            one_more()
            return original(self, *args, **kwargs)

        psycopg.Cursor.execute = execute
        try:
            yield count
        finally:
            psycopg.Cursor.execute = original
    else:
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", one_more)
        try:
            yield count
        finally:
            event.remove(engine, "before_cursor_execute", one_more)
