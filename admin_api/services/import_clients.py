"""Importing clients.csv: clients keyed by name (case-insensitive) with their domains (SPEC §8).

Decisions where the SPEC is silent:

- The file is the truth for the columns it has: an empty cell clears that field (an empty
  ``domains`` cell removes the client's domains, an empty ``sla`` detaches the SLA), and a
  ``domains`` cell lists *all* the client's domains, so domains missing from it are removed.
  Columns the file does not have are left alone; new clients get the defaults for them.
- Domains in a cell may be separated by ``;``, ``,``, blanks or line breaks; each is normalised
  like the API does (``@ACME.com.`` → ``acme.com``); one repeated within a cell counts once.
- A domain owned by another client, or given on two rows of the file, is a row error naming the
  other client or line: moving a domain between clients is done in two steps on purpose.
- A public mail provider (gmail.com, ...) is a row error, as the API's 422, unless the import is
  run with ``allow_public_domains`` (the API's ``allow_public_domain``); a public domain the client
  already has is kept without it, so exports always import back.
- ``sla`` and ``threshold_profile`` are names, matched exactly, else case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from admin_api.services.import_spreadsheet import Record
from admin_api.services.import_templates import CLIENTS
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
from models import Client, ClientDomain, Sla, ThresholdProfile
from models.domain_names import InvalidDomain, is_public_domain, normalize_domain

clients = Client.__table__
client_domains = ClientDomain.__table__

TEXT_COLUMNS = ("name", "rank", "business_id", "phone", "fax", "address", "city", "state",
                "zip_code", "country", "notes")
REFERENCES = {"sla": ("sla_id", Sla.__table__, "SLA"),
              "threshold_profile": ("threshold_profile_id", ThresholdProfile.__table__,
                                    "threshold profile")}
DOMAIN_SEPARATORS = re.compile(r"[;,\s]+")
QUERY_CHUNK = 1000


@dataclass
class ClientRow:
    """One checked row: its line, key (name as the database folds it), values, domains (None: absent)."""

    line: int
    key: str
    values: dict[str, object]
    domains: list[str] | None
    valid: bool = True


@dataclass
class ClientPlan(BatchPlan):
    """A batch's writes: new clients, changed clients (by id), domains to add and to remove."""

    inserts: list[ClientRow] = field(default_factory=list)
    updates: list[tuple[int, ClientRow]] = field(default_factory=list)
    domain_adds: list[tuple[int, str]] = field(default_factory=list)
    domain_removals: list[int] = field(default_factory=list)


def _names(connection: Connection, table) -> tuple[dict[str, int], dict[str, int | None]]:
    exact: dict[str, int] = {}
    folded: dict[str, int | None] = {}
    for row in connection.execute(select(table.c.id, table.c.name)):
        exact[row.name] = row.id
        key = row.name.lower()
        folded[key] = None if key in folded else row.id  # None: ambiguous when folded
    return exact, folded


class ClientImporter:
    """Checks and writes clients.csv rows, one batch at a time; remembers names and domains seen."""

    template = CLIENTS

    def __init__(self, connection: Connection, *, present: frozenset[str],
                 allow_public_domains: bool = False) -> None:
        self.connection = connection
        self.present = present
        self.allow_public_domains = allow_public_domains
        self.references = {column: _names(connection, table)
                           for column, (_, table, _) in REFERENCES.items() if column in present}
        self.seen_names: dict[str, int] = {}
        self.fold = name_folder(connection)
        self.seen_domains: dict[str, int] = {}

    # --- checking ------------------------------------------------------------------------------

    def _reference(self, plan: BatchPlan, record: Record, column: str) -> int | None:
        name = record.cells[column]
        if not name:
            return None
        exact, folded = self.references[column]
        if name in exact:
            return exact[name]
        found = folded.get(name.lower())
        if found is None:
            label = REFERENCES[column][2]
            known = ", ".join(sorted(exact)[:10]) or "none yet"
            plan.error(record.line, column, f"unknown {label} {name!r} (known: {known})")
        return found

    def _domains(self, plan: BatchPlan, record: Record) -> list[str]:
        result: list[str] = []
        problems: list[str] = []
        for part in DOMAIN_SEPARATORS.split(record.cells["domains"]):
            if not part:
                continue
            try:
                domain = normalize_domain(part)
            except InvalidDomain as exc:
                problems.append(str(exc))
                continue
            if domain not in result:
                result.append(domain)
        if problems:
            plan.error(record.line, "domains", "; ".join(problems))
        return result

    def _check_row(self, plan: BatchPlan, record: Record) -> ClientRow | None:
        errors_before = len(plan.errors)
        values: dict[str, object] = {}
        for column in TEXT_COLUMNS:
            if column in self.present:
                values[column] = text_cell(plan, record, self.template, column)
        if "tickets_only_by_primary_contact" in self.present:
            values["tickets_only_by_primary_contact"] = bool_cell(
                plan, record, "tickets_only_by_primary_contact")
        for column, (db_column, _, _) in REFERENCES.items():
            if column in self.present:
                values[db_column] = self._reference(plan, record, column)
        domains = self._domains(plan, record) if "domains" in self.present else None
        name = values["name"]
        if not isinstance(name, str):
            return None
        key = self.fold(name)
        first = self.seen_names.get(key)
        if first is not None:
            plan.error(record.line, "name", f"client {name!r} is already on line {first} of this file")
            return None
        self.seen_names[key] = record.line
        return ClientRow(record.line, key, values, domains, valid=len(plan.errors) == errors_before)

    def _existing(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        compared = [clients.c[c] for c in (*TEXT_COLUMNS, "tickets_only_by_primary_contact",
                                           "sla_id", "threshold_profile_id")]
        for chunk in chunks(keys, QUERY_CHUNK):
            query = select(clients.c.id, *compared).where(
                matches_any(self.connection, func.lower(clients.c.name), chunk))
            for row in self.connection.execute(query):
                found[self.fold(row.name)] = row
        return found

    def _owners(self, domains: Iterable[str]) -> dict[str, tuple[int, str]]:
        owners: dict[str, tuple[int, str]] = {}
        for chunk in chunks(domains, QUERY_CHUNK):
            query = (select(client_domains.c.domain, clients.c.id, clients.c.name)
                     .join(clients, clients.c.id == client_domains.c.client_id)
                     .where(matches_any(self.connection, client_domains.c.domain, chunk)))
            for row in self.connection.execute(query):
                owners[row.domain] = (row.id, row.name)
        return owners

    def _current_domains(self, client_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        current: dict[int, dict[str, int]] = {}
        for chunk in chunks(client_ids, QUERY_CHUNK):
            query = select(client_domains.c.id, client_domains.c.client_id,
                           client_domains.c.domain).where(
                matches_any(self.connection, client_domains.c.client_id, chunk))
            for row in self.connection.execute(query):
                current.setdefault(row.client_id, {})[row.domain] = row.id
        return current

    def _check_domains(self, plan: BatchPlan, row: ClientRow, existing, owners) -> None:
        for domain in row.domains or ():
            first = self.seen_domains.get(domain)
            if first is not None:
                plan.error(row.line, "domains", f"domain {domain} is already listed on line "
                                                f"{first} of this file")
                row.valid = False
                continue
            self.seen_domains[domain] = row.line
            owner = owners.get(domain)
            own = owner is not None and existing is not None and owner[0] == existing.id
            if owner is not None and not own:
                plan.error(row.line, "domains", f"domain {domain} belongs to client {owner[1]!r}")
                row.valid = False
            elif is_public_domain(domain) and not own and not self.allow_public_domains:
                plan.error(row.line, "domains", f"{domain} is a public mail provider: everyone "
                           "could mail in as this client (import with ?allow_public_domain=true, "
                           "or ticketpost import --allow-public-domain, to add it anyway)")
                row.valid = False

    def plan(self, records: list[Record]) -> ClientPlan:
        """Check ``records`` against the file so far and the database; count and plan changes."""
        plan = ClientPlan()
        rows = [row for record in records if (row := self._check_row(plan, record)) is not None]
        existing = self._existing([row.key for row in rows])
        with_domains = [row for row in rows if row.domains is not None]
        owners = self._owners({d for row in with_domains for d in row.domains or ()})
        current = self._current_domains(
            existing[row.key].id for row in with_domains if row.key in existing)
        for row in rows:
            old = existing.get(row.key)
            self._check_domains(plan, row, old, owners)
            if not row.valid:
                continue
            if old is None:
                plan.inserts.append(row)
                plan.created += 1
                continue
            changed = any(not same(getattr(old, column), value)
                          for column, value in row.values.items())
            if row.domains is not None:
                have = current.get(old.id, {})
                adds = [d for d in row.domains if d not in have]
                removals = [domain_id for d, domain_id in have.items() if d not in row.domains]
                plan.domain_adds.extend((old.id, d) for d in adds)
                plan.domain_removals.extend(removals)
                changed = changed or bool(adds or removals)
            if changed:
                plan.updates.append((old.id, row))
                plan.updated += 1
            else:
                plan.unchanged += 1
        return plan

    # --- writing -------------------------------------------------------------------------------

    def apply(self, plan: ClientPlan) -> None:
        """Write one checked batch with bulk statements."""
        conn = self.connection
        if plan.updates:
            conn.execute(update(clients).where(clients.c.id == bindparam("row_id")),
                         [{"row_id": client_id, **row.values} for client_id, row in plan.updates])
        adds = list(plan.domain_adds)
        if plan.inserts:
            result = conn.execute(
                insert(clients).returning(clients.c.id, sort_by_parameter_order=True),
                [row.values for row in plan.inserts])
            for client_id, row in zip(result.scalars(), plan.inserts):
                adds.extend((client_id, d) for d in row.domains or ())
        if plan.domain_removals:
            for chunk in chunks(plan.domain_removals, QUERY_CHUNK):
                conn.execute(delete(client_domains).where(client_domains.c.id.in_(chunk)))
        if adds:
            bulk_insert(conn, client_domains,
                        [{"client_id": client_id, "domain": d} for client_id, d in adds])
