"""The two spreadsheet templates of SPEC §8 (clients.csv, contacts.csv) and their cell escaping.

The same column lists serve the empty templates, the importer and the exports, so the three
cannot drift apart.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from sqlalchemy import Table

from models import Client, Contact

ColumnKind = Literal["text", "bool", "domains", "ref"]

# Characters a spreadsheet program reads as the start of a formula (OWASP "CSV injection"):
# = + - @, and tab / carriage return, which some programs strip before looking at the rest.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class TemplateColumn:
    """One column of a template: its header name, what its cells hold and their longest length."""

    name: str
    kind: ColumnKind = "text"
    required: bool = False
    max_length: int | None = None


@dataclass(frozen=True)
class Template:
    """A spreadsheet template: the file name and its columns in template order."""

    kind: Literal["clients", "contacts"]
    columns: tuple[TemplateColumn, ...]

    @property
    def filename(self) -> str:
        return f"{self.kind}.csv"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> TemplateColumn:
        return self._by_name[name]

    @cached_property
    def _by_name(self) -> dict[str, TemplateColumn]:
        return {c.name: c for c in self.columns}


def _length(table: Table, column: str) -> int | None:
    return getattr(table.c[column].type, "length", None)


def _text(table: Table, name: str, *, required: bool = False) -> TemplateColumn:
    return TemplateColumn(name, "text", required, _length(table, name))


_clients = Client.__table__
_contacts = Contact.__table__

CLIENTS = Template(
    "clients",
    (
        _text(_clients, "name", required=True),
        _text(_clients, "rank"),
        TemplateColumn("domains", "domains"),
        _text(_clients, "business_id"),
        _text(_clients, "phone"),
        _text(_clients, "fax"),
        _text(_clients, "address"),
        _text(_clients, "city"),
        _text(_clients, "state"),
        _text(_clients, "zip_code"),
        _text(_clients, "country"),
        _text(_clients, "notes"),
        TemplateColumn("tickets_only_by_primary_contact", "bool"),
        TemplateColumn("sla", "ref"),
        TemplateColumn("threshold_profile", "ref"),
    ),
)

CONTACTS = Template(
    "contacts",
    (
        TemplateColumn("client", "ref", required=True),
        _text(_contacts, "first_name", required=True),
        _text(_contacts, "last_name", required=True),
        _text(_contacts, "email", required=True),
        _text(_contacts, "phone"),
        _text(_contacts, "mobile_phone"),
        _text(_contacts, "job_title"),
        TemplateColumn("is_primary", "bool"),
        TemplateColumn("ignore_email", "bool"),
    ),
)

TEMPLATES: dict[str, Template] = {"clients": CLIENTS, "contacts": CONTACTS}

# How booleans are written (spreadsheet programs show TRUE/FALSE as their own booleans) and read.
TRUE_TEXT, FALSE_TEXT = "TRUE", "FALSE"
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on", "x"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off", ""})


def get_template(kind: str) -> Template:
    """The template called ``kind`` (``clients`` or ``contacts``); KeyError for any other name."""
    try:
        return TEMPLATES[kind]
    except KeyError:
        raise KeyError(f"no template {kind!r}; choose clients or contacts") from None


def template_csv(kind: str) -> str:
    """The empty template: just the header line, comma separated, CRLF-terminated (RFC 4180)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(get_template(kind).names)
    return buffer.getvalue()


def _needs_escape(value: str) -> bool:
    return value.lstrip("'").startswith(FORMULA_STARTS)


def escape_cell(value: str) -> str:
    """``value`` made safe for a spreadsheet: a leading formula character gets a ``'`` prefix.

    A value that already starts with ``'`` before such a character gets one more, so that
    ``unescape_cell(escape_cell(v)) == v`` for every string (the round-trip of exports).
    """
    return "'" + value if _needs_escape(value) else value


def unescape_cell(value: str) -> str:
    """Undo ``escape_cell``: drop the ``'`` that protects a leading formula character."""
    if value.startswith("'") and _needs_escape(value[1:]):
        return value[1:]
    return value


def format_bool(value: bool | None) -> str:
    """A boolean as the templates write it."""
    return TRUE_TEXT if value else FALSE_TEXT


def parse_bool(value: str) -> bool:
    """A yes/no cell: TRUE/yes/y/1/on/x, or FALSE/no/n/0/off/empty (any case).

    ValueError is raised when the cell is anything else; its message says what is accepted.
    """
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a yes/no value; write TRUE or FALSE (yes/no, 1/0, or empty)")
