"""Bulk import of clients and contacts from spreadsheet files: all or nothing (SPEC §8).

One import is one pass over the streamed file, in batches of ``BATCH_SIZE`` records, inside the
caller's transaction. For each batch the importer checks every row, looks up the existing rows
it needs in one query per kind of key, and compares; as long as no row anywhere has failed, the
batch's changes are written at once with bulk statements (COPY on PostgreSQL, else multi-row
INSERT; executemany UPDATE for changed rows; no ORM objects). Once any row has failed, later
batches are still checked, so the report lists every bad row, but nothing more is written, and
at the end the transaction is rolled back: a file with any bad row changes nothing. A dry run
checks and counts without writing.

The caller commits when ``report.applied`` is true (the HTTP route and the CLI do); the service
itself only rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import BinaryIO, Protocol

from sqlalchemy import Integer, String, Table, any_, insert, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from admin_api.services.import_spreadsheet import Record, RowError, Spreadsheet, SpreadsheetError
from admin_api.services.import_templates import Template, get_template, parse_bool

log = logging.getLogger(__name__)

BATCH_SIZE = 1000

Progress = Callable[[int, int], None]
"""Called after each batch with (bytes read so far, file size in bytes)."""


@dataclass
class ImportReport:
    """What an import did or, for a dry run or a file with errors, what it would have done."""

    kind: str
    dry_run: bool
    applied: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged

    def as_dict(self, *, max_errors: int | None = None) -> dict:
        """The report as the API answers it: applied, created, updated, unchanged, errors.

        With ``max_errors``, ``errors`` lists the first that many bad rows and then one entry
        (at the line of the first row not listed, column null) saying how many more there are.
        """
        errors = [e.as_dict() for e in self.errors[:max_errors]]
        if max_errors is not None and len(self.errors) > max_errors:
            more = len(self.errors) - max_errors
            errors.append({"row": self.errors[max_errors].row, "column": None,
                           "message": f"{more} more bad rows from here on are not listed "
                                      f"(an answer lists the first {max_errors})"})
        return {
            "applied": self.applied,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": errors,
        }


@dataclass
class BatchPlan:
    """The checked changes of one batch: its errors and counts; importers add what to write."""

    errors: list[RowError] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def error(self, row: int, column: str | None, message: str) -> None:
        self.errors.append(RowError(row, column, message))


class Importer(Protocol):
    """Checks and writes one template's rows, batch by batch, remembering file-wide keys."""

    def plan(self, records: list[Record]) -> BatchPlan: ...

    def apply(self, plan: BatchPlan) -> None: ...


ImporterFactory = Callable[..., Importer]


def matches_any(connection: Connection, expression, values: list[str] | list[int]):
    """``expression IN values`` for a query; on PostgreSQL ``= ANY(array)``, one parameter.

    A thousand-element IN list costs PostgreSQL (and psycopg) far more to parse and plan than
    one array parameter, and the expression indexes serve both.
    """
    if connection.dialect.name == "postgresql":
        element = Integer if values and isinstance(values[0], int) else String
        return expression == any_(literal(list(values), ARRAY(element)))
    return expression.in_(values)


def name_folder(connection: Connection) -> Callable[[str], str]:
    """Python's twin of the database's ``lower()``, which keys client names (a unique index).

    PostgreSQL's ``lower()`` folds all letters, and models.db gives SQLite connections the same
    Unicode ``lower()``, so ``str.lower`` finds exactly the rows the unique index would clash with.
    """
    return str.lower


def _defaults(table: Table, given: Iterable[str]) -> dict[str, object]:
    """Values of the Python-side column defaults (timestamps, flags) not in ``given``."""
    values: dict[str, object] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or default is None:
            continue
        if default.is_callable:
            values[column.name] = default.arg({})  # SQLAlchemy's wrapper takes a context
        elif default.is_scalar:
            values[column.name] = default.arg
    return values


def bulk_insert(connection: Connection, table: Table, rows: list[dict]) -> None:
    """Insert ``rows`` (dicts with the same keys) at once: COPY on PostgreSQL, else executemany.

    COPY skips SQLAlchemy's per-value processing and PostgreSQL's per-statement work, which is
    most of the cost of inserting tens of thousands of rows; the column defaults are filled in
    here (one timestamp for the whole batch).
    """
    if not rows:
        return
    if connection.dialect.name != "postgresql" or connection.dialect.driver != "psycopg":
        # RETURNING makes SQLAlchemy send multi-row INSERTs ("insertmanyvalues").
        connection.execute(insert(table).returning(table.c.id), rows)
        return
    defaults = _defaults(table, rows[0].keys())
    columns = [*rows[0].keys(), *defaults.keys()]
    extra = list(defaults.values())
    statement = f'COPY "{table.name}" ({", ".join(columns)}) FROM STDIN'
    with connection.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([*row.values(), *extra])


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of at most ``size`` (bounds the number of bind parameters per query)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _factory(kind: str) -> ImporterFactory:
    if kind == "clients":
        from admin_api.services.import_clients import ClientImporter

        return ClientImporter
    from admin_api.services.import_contacts import ContactImporter

    return ContactImporter


def import_file(
    *,
    session: Session,
    kind: str,
    source: BinaryIO,
    dry_run: bool = False,
    allow_public_domains: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``source`` (a CSV file of template ``kind``: clients or contacts) into the database.

    Returns the report; ``report.applied`` is true only when every row was valid and this is not
    a dry run, and then the caller must commit ``session``. ``allow_public_domains`` lets a
    clients file give public mail providers (gmail.com, ...) as client domains, like the API's
    ``allow_public_domain``; without it they are row errors. KeyError is raised for an unknown
    ``kind``.
    """
    template: Template = get_template(kind)
    report = ImportReport(kind=kind, dry_run=dry_run)
    try:
        sheet = Spreadsheet(source, template)
    except SpreadsheetError as exc:
        report.errors = sorted(exc.errors, key=lambda e: e.row)
        return report
    connection: Connection = session.connection()
    importer = _factory(kind)(
        connection, present=sheet.present, allow_public_domains=allow_public_domains
    )
    for batch in chunks(sheet.records(), BATCH_SIZE):
        records = [r for r in batch if isinstance(r, Record)]
        report.errors.extend(r for r in batch if isinstance(r, RowError))
        plan = importer.plan(records)
        report.errors.extend(plan.errors)
        report.created += plan.created
        report.updated += plan.updated
        report.unchanged += plan.unchanged
        if not dry_run and not report.errors:
            try:
                importer.apply(plan)
            except DBAPIError as exc:
                session.rollback()
                first, last = (records[0].line, records[-1].line) if records else (0, 0)
                reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
                report.errors.append(RowError(first, None, (
                    f"the database refused lines {first}-{last}: {reason}; nothing was applied "
                    "(did someone change the same data meanwhile? run the import again)")))
                log.warning("import %s refused by the database", kind, extra={"error": reason})
                break
        if progress is not None:
            progress(sheet.position, sheet.size)
    report.errors.sort(key=lambda e: e.row)
    if report.errors or dry_run:
        session.rollback()
    else:
        report.applied = True
    if progress is not None:
        progress(sheet.size, sheet.size)
    log.info(
        "import of %s finished", kind,
        extra={"import_kind": kind, "dry_run": dry_run, "applied": report.applied,
               "rows_created": report.created, "rows_updated": report.updated,
               "rows_unchanged": report.unchanged, "row_errors": len(report.errors)},
    )
    return report


# --- cell checks shared by the importers ---------------------------------------------------------


def text_cell(plan: BatchPlan, record: Record, template: Template, name: str) -> str | None:
    """The text of column ``name`` (None when empty), or None with an error in ``plan``."""
    column = template.column(name)
    value = record.cells[name]
    if not value:
        if column.required:
            plan.error(record.line, name, f"{name} is required and empty")
        return None
    if "\x00" in value:
        plan.error(record.line, name, f"{name} contains a NUL character")
        return None
    if column.max_length and len(value) > column.max_length:
        plan.error(record.line, name, f"{name} is {len(value)} characters long; "
                                      f"at most {column.max_length} fit")
        return None
    return value


def bool_cell(plan: BatchPlan, record: Record, name: str) -> bool:
    """The yes/no value of column ``name``; an unreadable value is an error in ``plan``."""
    try:
        return parse_bool(record.cells[name])
    except ValueError as exc:
        plan.error(record.line, name, str(exc))
        return False


def same(old: object, new: object) -> bool:
    """Whether a stored value equals an imported one (text compared without surrounding blanks)."""
    if isinstance(new, bool):
        return bool(old) == new
    if new is None or isinstance(new, str):
        return (old or "").strip() == (new or "") if isinstance(old, (str, type(None))) else False
    return old == new
