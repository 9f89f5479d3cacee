"""Exports of clients and contacts in template form (SPEC §8), safe to open in a spreadsheet.

An export is what the import reads back: the same columns in template order, comma separated,
UTF-8 without a byte order mark, CRLF line ends, booleans as TRUE/FALSE, domains joined with
``;``, SLA, threshold profile and client by name. No cell starts with ``=``, ``+``, ``-``, ``@``,
tab or carriage return: such a cell gets a ``'`` prefix (OWASP's advice against formula
injection), which the import removes again, so export → import changes nothing.

Rows are read in keyset-paged chunks and written as they come: memory stays flat however many
clients there are. Clients are ordered by name, contacts by client name, then e-mail.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import TextIO

from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import Connection, Engine

from admin_api.services.import_templates import (
    CLIENTS,
    CONTACTS,
    escape_cell,
    format_bool,
    get_template,
)
from models import Client, ClientDomain, Contact, Sla, ThresholdProfile
from models.db import read_snapshot

clients = Client.__table__
client_domains = ClientDomain.__table__
contacts = Contact.__table__
slas = Sla.__table__
profiles = ThresholdProfile.__table__

EXPORT_CHUNK = 1000
DOMAIN_SEPARATOR = ";"


def cell(value: object) -> str:
    """One value as an export cell: booleans as TRUE/FALSE, None as empty, text escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return format_bool(value)
    return escape_cell(str(value))


def _csv_lines(rows: Iterable[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def _client_rows(conn: Connection) -> Iterator[list[list[object]]]:
    sort_key = func.lower(clients.c.name)
    last = None
    while True:
        query = (
            select(clients, sort_key.label("sort_key"), slas.c.name.label("sla_name"),
                   profiles.c.name.label("profile_name"))
            .outerjoin(slas, slas.c.id == clients.c.sla_id)
            .outerjoin(profiles, profiles.c.id == clients.c.threshold_profile_id)
            .order_by(sort_key)
            .limit(EXPORT_CHUNK)
        )
        if last is not None:
            query = query.where(sort_key > last)
        batch = conn.execute(query).all()
        if not batch:
            return
        domains: dict[int, list[str]] = {}
        ids = [row.id for row in batch]
        for row in conn.execute(select(client_domains.c.client_id, client_domains.c.domain)
                                .where(client_domains.c.client_id.in_(ids))
                                .order_by(client_domains.c.domain)):
            domains.setdefault(row.client_id, []).append(row.domain)
        rows = []
        for row in batch:
            values = row._mapping
            by_column = {
                **{c: values[c] for c in CLIENTS.names if c in values},
                "domains": DOMAIN_SEPARATOR.join(domains.get(row.id, [])),
                "tickets_only_by_primary_contact": bool(row.tickets_only_by_primary_contact),
                "sla": row.sla_name,
                "threshold_profile": row.profile_name,
            }
            rows.append([by_column[c] for c in CLIENTS.names])
        yield rows
        last = batch[-1].sort_key


def _contact_rows(conn: Connection) -> Iterator[list[list[object]]]:
    sort_key = func.lower(clients.c.name)
    last = None
    while True:
        query = (
            select(contacts, clients.c.name.label("client"), sort_key.label("sort_key"))
            .join(clients, clients.c.id == contacts.c.client_id)
            .order_by(sort_key, contacts.c.email)
            .limit(EXPORT_CHUNK)
        )
        if last is not None:
            query = query.where(tuple_(sort_key, contacts.c.email) > tuple_(*last))
        batch = conn.execute(query).all()
        if not batch:
            return
        rows = []
        for row in batch:
            values = row._mapping
            rows.append([bool(values[c]) if c in ("is_primary", "ignore_email") else values[c]
                         for c in CONTACTS.names])
        yield rows
        last = (batch[-1].sort_key, batch[-1].email)


def export_csv(*, engine: Engine, kind: str) -> Iterator[str]:
    """The ``kind`` export (clients or contacts) as CSV text, chunk by chunk, header first.

    The rows come from one read-only snapshot (``models.db.read_snapshot``): an export never
    takes SQLite's write lock, so mail keeps being stored while it runs, and on PostgreSQL all
    chunks see the same moment. The generator opens its own connection (so it can outlive a
    request's session); KeyError is raised for an unknown ``kind`` before anything is read.
    """
    template = get_template(kind)
    pages = _client_rows if kind == "clients" else _contact_rows

    def generate() -> Iterator[str]:
        yield _csv_lines([list(template.names)])
        with read_snapshot(engine) as conn:
            for rows in pages(conn):
                yield _csv_lines(rows)

    return generate()


def write_export(*, engine: Engine, kind: str, out: TextIO) -> None:
    """Write the whole ``kind`` export to ``out``; raises (and ``out`` is incomplete) on failure.

    The HTTP route writes it to a spooled file first and answers only once it is complete, so a
    failed export is an error answer, never a 200 with a cut-off file.
    """
    for chunk in export_csv(engine=engine, kind=kind):
        out.write(chunk)

