"""Routing's hot-path statements, compiled once and run straight on the PostgreSQL driver.

SQLAlchemy spends about 250 µs of CPU per execution of a cached Core statement here (cache key,
parameter processing, result set-up), against about 50 µs for psycopg itself; routing runs four
to five statements per message, so that overhead alone was a third of routing's CPU. A
:class:`Prepared` statement is still written as a Core statement (one source of truth, checked
on both databases): it is compiled once per dialect, its bind and result type processors are
resolved once, and on PostgreSQL each execution is one ``cursor.execute`` of the compiled SQL
(psycopg prepares it server-side after a few runs). On SQLite, the embedded default where this
overhead does not matter (and with any other driver), it runs through SQLAlchemy as usual.

:meth:`Prepared.send` returns the rows as a :class:`Pending`: in psycopg's pipeline mode
(routing.batch) the statement is only queued and the caller reads its rows when it needs them,
so PostgreSQL runs it while the caller goes on.

The statements run inside the caller's transaction: the caller must have begun it on the
SQLAlchemy Connection (``db.begin()``), so SQLAlchemy commits or rolls back what ran here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection


class Pending:
    """A statement's rows: already read, or (pipeline mode) read from the driver when first asked for."""

    __slots__ = ("_cursor", "_results", "_rows")

    def __init__(self, cursor=None, results=(), *, rows: list[tuple] | None = None) -> None:
        self._cursor, self._results, self._rows = cursor, results, rows

    @property
    def arrived(self) -> bool:
        """Whether the rows have been read (reading them in pipeline mode waits for the server)."""
        return self._rows is not None

    def rows(self) -> list[tuple]:
        """Every row, as tuples (waiting for them in pipeline mode)."""
        if self._rows is None:
            try:
                rows = self._cursor.fetchall()
            finally:
                self._cursor.close()
            results = self._results
            self._rows = rows if not results else [
                tuple(process(value) if process else value for process, value in zip(results, row))
                for row in rows]
        return self._rows

    def first(self) -> tuple | None:
        """The first row, or None."""
        rows = self.rows()
        return rows[0] if rows else None


class Prepared:
    """A Core statement run on the DBAPI cursor on PostgreSQL; ``rows()`` and ``first()`` run it."""

    __slots__ = ("statement", "postgresql", "server_prepare", "_compiled")

    def __init__(self, statement, *, postgresql=None, server_prepare: bool | None = None) -> None:
        self.statement = statement
        #: psycopg's ``prepare``: None = server-side after a few runs; False = planned on every run
        #: with its values (for a statement whose generic plan is bad, e.g. ``= ANY(array)``)
        self.server_prepare = server_prepare
        #: the same question in PostgreSQL's words, when the portable form cannot be compiled once
        #: (an expanding IN list becomes ``= ANY(array)``)
        self.postgresql = postgresql if postgresql is not None else statement
        self._compiled: tuple | None = None  # (compiled, bind and result processors, returns rows?)

    def rows(self, db: Connection, params: dict[str, Any]) -> list[tuple]:
        """Every row the statement returns (none for DML without RETURNING), as tuples."""
        if db.dialect.driver != "psycopg":  # SQLite (or another driver): SQLAlchemy runs it
            statement = self.postgresql if db.dialect.name == "postgresql" else self.statement
            result = db.execute(statement, params)
            return [tuple(row) for row in result] if result.returns_rows else []
        return self._sent(db, params).rows()

    def send(self, db: Connection, params: dict[str, Any]) -> Pending:
        """Run the statement; its rows as a :class:`Pending`. In psycopg's pipeline mode
        (routing.batch) the statement is only queued and its rows are read when first asked for;
        otherwise they are already there."""
        if db.dialect.driver != "psycopg":
            return Pending(rows=self.rows(db, params))
        return self._sent(db, params)

    def _sent(self, db: Connection, params: dict[str, Any]) -> Pending:
        compiled, binds, results, returns_rows = self._compiled or self._compile(db)
        values = compiled.construct_params(params)
        for name, process in binds:
            values[name] = process(values[name])
        # Results in binary: a bytea (the raw message) then arrives as it is, not hex-encoded at
        # twice its size and decoded again (a third of the fetch's time for 28 KB).
        driver = db.connection.dbapi_connection
        cursor = driver.cursor(binary=True)
        try:
            cursor.execute(compiled.string, values, prepare=self.server_prepare)
        except BaseException:
            cursor.close()
            raise
        if not returns_rows:  # (reading cursor.description would build its column objects)
            cursor.close()  # in pipeline mode its result (or error) still arrives at the next sync
            return Pending(rows=[])
        pending = Pending(cursor, results)
        if not driver.pgconn.pipeline_status:
            pending.rows()
        return pending

    def rows_autocommit(self, db: Connection, params: dict[str, Any]) -> list[tuple]:
        """:meth:`rows`, run outside any transaction (autocommit): it takes no lock, on SQLite
        not even the write lock every transaction there takes (models.db). ``db`` must have no
        transaction open. On psycopg the driver's autocommit is switched directly (9 µs against
        60 µs through SQLAlchemy's isolation level)."""
        if db.dialect.driver == "psycopg":
            driver = db.connection.dbapi_connection
            driver.autocommit = True
            try:
                return self.rows(db, params)
            finally:
                driver.autocommit = False
        db.execution_options(isolation_level="AUTOCOMMIT")
        try:
            rows = self.rows(db, params)
            db.rollback()  # ends SQLAlchemy's autobegun (empty) transaction
        finally:
            db.execution_options(isolation_level=db.default_isolation_level)
        return rows

    def first(self, db: Connection, params: dict[str, Any]) -> tuple | None:
        """The first row, or None."""
        rows = self.rows(db, params)
        return rows[0] if rows else None

    def _compile(self, db: Connection) -> tuple:
        dialect = db.dialect
        compiled = self.postgresql.compile(dialect=dialect)
        binds = []
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binds.append((name, process))
        columns = self.postgresql.exported_columns
        results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self._compiled = (compiled, tuple(binds), results if any(results) else [], len(columns) > 0)
        return self._compiled
