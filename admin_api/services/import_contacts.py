"""Importing contacts.csv: contacts keyed by e-mail (stored lower-case) at clients named (SPEC §8).

Decisions where the SPEC is silent:

- The file is the truth for the columns it has (an empty ``phone`` clears the phone); columns it
  does not have are left alone. ``client`` names an existing client (case-insensitive): import
  clients.csv first. A contact whose row names another client moves to that client (and stops
  being a primary contact, unless its row says ``is_primary`` TRUE).
- ``is_primary``: at most one TRUE per client in one file (a second one is a row error). A row
  making a contact primary demotes the client's current primary contact in the same
  transaction, like ``PATCH /contacts/{id} {"is_primary": true}``: the file wins.
- E-mail addresses are checked and stored exactly as the contacts API and routing do
  (models.addresses: email-validator without DNS; lower-case local part @ canonical IDNA domain).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection

from admin_api.services.contacts import lock_clients
from admin_api.services.import_spreadsheet import Record
from admin_api.services.import_templates import CONTACTS
from admin_api.services.imports import (
    BatchPlan,
    bool_cell,
    bulk_insert,
    chunks,
    matches_any,
    name_folder,
    same,
    text_cell,
)
from models import Client, Contact
from models.addresses import normalize_email

clients = Client.__table__
contacts = Contact.__table__

TEXT_COLUMNS = ("first_name", "last_name", "phone", "mobile_phone", "job_title")
BOOL_COLUMNS = ("is_primary", "ignore_email")
QUERY_CHUNK = 1000


@dataclass
class ContactRow:
    """One checked row: its line, e-mail, client name and column values."""

    line: int
    email: str
    client: str
    values: dict[str, object]


@dataclass
class ContactPlan(BatchPlan):
    """A batch's writes: new contacts, changed ones (by id), clients that get a new primary."""

    inserts: list[dict] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    new_primaries: dict[int, int | None] = field(default_factory=dict)  # client id → contact id


class ContactImporter:
    """Checks and writes contacts.csv rows, one batch at a time; remembers e-mails and primaries."""

    template = CONTACTS

    def __init__(self, connection: Connection, *, present: frozenset[str],
                 allow_public_domains: bool = False) -> None:
        self.connection = connection
        self.present = present
        self.seen_emails: dict[str, int] = {}
        self.primary_lines: dict[int, int] = {}
        self.client_ids: dict[str, tuple[int, str] | None] = {}
        self.demoted: set[int] = set()
        self.fold = name_folder(connection)

    # --- checking ------------------------------------------------------------------------------

    def _check_row(self, plan: BatchPlan, record: Record) -> ContactRow | None:
        errors_before = len(plan.errors)
        values: dict[str, object] = {}
        for column in TEXT_COLUMNS:
            if column in self.present:
                values[column] = text_cell(plan, record, self.template, column)
        for column in BOOL_COLUMNS:
            if column in self.present:
                values[column] = bool_cell(plan, record, column)
        client = text_cell(plan, record, self.template, "client")
        email = text_cell(plan, record, self.template, "email")
        if email is not None:
            try:
                email = normalize_email(email)
            except ValueError as exc:
                plan.error(record.line, "email", str(exc))
                email = None
        if email is not None:
            first = self.seen_emails.get(email)
            if first is not None:
                plan.error(record.line, "email", f"{email} is already on line {first} of this file")
                return None
            self.seen_emails[email] = record.line
        if len(plan.errors) > errors_before or client is None or email is None:
            return None
        return ContactRow(record.line, email, client, values)

    def _resolve_clients(self, names: Iterable[str]) -> None:
        missing = {self.fold(name) for name in names} - self.client_ids.keys()
        for chunk in chunks(missing, QUERY_CHUNK):
            query = select(clients.c.id, clients.c.name).where(
                matches_any(self.connection, func.lower(clients.c.name), chunk))
            for row in self.connection.execute(query):
                self.client_ids[self.fold(row.name)] = (row.id, row.name)
        for key in missing:
            self.client_ids.setdefault(key, None)

    def _existing(self, emails: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        compared = [contacts.c[c] for c in (*TEXT_COLUMNS, *BOOL_COLUMNS)]
        query = select(contacts.c.id, contacts.c.email, contacts.c.client_id, *compared)
        for chunk in chunks(emails, QUERY_CHUNK):
            for row in self.connection.execute(query.where(
                    matches_any(self.connection, contacts.c.email, chunk))):
                found[row.email] = row
        return found

    def plan(self, records: list[Record]) -> ContactPlan:
        """Check ``records`` against the file so far and the database; count and plan changes."""
        plan = ContactPlan()
        checked = [(record, self._check_row(plan, record)) for record in records]
        self._resolve_clients(record.cells["client"] for record, _ in checked
                              if record.cells["client"])
        for record, _ in checked:
            name = record.cells["client"]
            if name and self.client_ids.get(self.fold(name)) is None:
                plan.error(record.line, "client", f"unknown client {name!r}; "
                                                  "import it with clients.csv first")
        rows = [row for _, row in checked
                if row is not None and self.client_ids.get(self.fold(row.client)) is not None]
        existing = self._existing([row.email for row in rows])
        for row in rows:
            client_id, client_name = self.client_ids[self.fold(row.client)]
            if row.values.get("is_primary"):
                first = self.primary_lines.get(client_id)
                if first is not None:
                    plan.error(row.line, "is_primary", f"client {client_name!r} already gets its "
                               f"primary contact on line {first} of this file; a client has at "
                               "most one primary contact")
                    continue
                self.primary_lines[client_id] = row.line
            values = {"client_id": client_id, **row.values}
            old = existing.get(row.email)
            if old is None:
                plan.inserts.append({"email": row.email, **values})
                plan.created += 1
                if values.get("is_primary"):
                    plan.new_primaries[client_id] = None
                continue
            was_primary = old.is_primary or old.id in self.demoted
            if "is_primary" not in self.present:
                # Without the column, a contact that moves to another client is not its primary
                # (as with the API's PATCH client_id); every other contact keeps its flag.
                values["is_primary"] = old.is_primary and old.client_id == client_id
            changed = any(
                not same(was_primary if column == "is_primary" else getattr(old, column), value)
                for column, value in values.items())
            if values.get("is_primary") and not (old.is_primary and old.client_id == client_id):
                plan.new_primaries[client_id] = old.id
            if changed:
                plan.updates.append({"row_id": old.id, **values})
                plan.updated += 1
            else:
                plan.unchanged += 1
        return plan

    # --- writing -------------------------------------------------------------------------------

    def apply(self, plan: ContactPlan) -> None:
        """Write one checked batch: demote replaced primaries first, then update, then insert."""
        conn = self.connection
        if plan.new_primaries:
            promoted = set(plan.new_primaries.values())
            demote: list[int] = []
            for chunk in chunks(sorted(plan.new_primaries), QUERY_CHUNK):
                lock_clients(conn, chunk)  # like every primary switch: the client row first
            for chunk in chunks(plan.new_primaries, QUERY_CHUNK):
                query = select(contacts.c.id).where(contacts.c.is_primary,
                                                    contacts.c.client_id.in_(chunk))
                demote.extend(i for i in conn.execute(query).scalars() if i not in promoted)
            for chunk in chunks(demote, QUERY_CHUNK):
                conn.execute(update(contacts).where(contacts.c.id.in_(chunk))
                             .values(is_primary=False))
            self.demoted.update(demote)
        if plan.updates:
            primaries_last = sorted(plan.updates, key=lambda u: bool(u.get("is_primary")))
            conn.execute(update(contacts).where(contacts.c.id == bindparam("row_id")),
                         primaries_last)
        if plan.inserts:
            bulk_insert(conn, contacts, plan.inserts)
