"""Step 9, contact: the existing contact, or a new auto-created one when the client is known."""

from __future__ import annotations

import re

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from models import Client, Contact
from routing.context import RoutingContext
from routing.mailparse import clean_text
from routing.outcomes import Ignored
from routing.records import ClientRow, ContactRow, columns

_NAME_SPLIT = re.compile(r"[._\-+]+")


#: The last name of a contact known by one name only (``info@acme.example`` → "Info"): contacts
#: need both names (SPEC §1; the API and the contacts import refuse an empty one), and this one
#: sorts such role mailboxes together and imports back unchanged from an export.
UNKNOWN_LAST_NAME = "(unknown)"


def _finished(first: str, last: str) -> tuple[str, str]:
    """Both names storable (100 characters, no NUL), trimmed, and never empty."""
    first, last = clean_text(first, 100).strip(), clean_text(last, 100).strip()
    return first or "unknown", last or UNKNOWN_LAST_NAME


def names_for(display_name: str, address: str) -> tuple[str, str]:
    """First and last name from the display name (``Last, First`` too), else from the local part.

    A sender known by one name only gets :data:`UNKNOWN_LAST_NAME` as last name.
    """
    name = " ".join(display_name.replace('"', " ").split())
    if name and "@" not in name:
        if "," in name:
            last, _, first = name.partition(",")
            first, last = first.strip(), last.strip()
            if first and last:
                return _finished(first, last)
            name = (first or last)
        parts = name.split(" ")
        if len(parts) == 1:
            return _finished(parts[0], "")
        return _finished(" ".join(parts[:-1]), parts[-1])
    local = address.partition("@")[0].strip('"')
    pieces = [p for p in _NAME_SPLIT.split(local) if p]
    if not pieces:
        return _finished(local[:100], "")
    pieces = [p.capitalize() for p in pieces]
    if len(pieces) == 1:
        return _finished(pieces[0], "")
    return _finished(" ".join(pieces[:-1]), pieces[-1])


def contact(ctx: RoutingContext) -> None:
    """Keep the existing contact or create one; raise Ignored for a muted contact."""
    if ctx.contact is None and ctx.client is not None:
        if not ctx.settings.auto_create_contacts:
            ctx.explain("contact", f"{ctx.sender_email} is not a contact; automatic creation is off")
        else:
            ctx.contact, ctx.contact_created = _get_or_create(ctx)
            c = ctx.contact
            if ctx.contact_created:
                ctx.explain("contact", f"created contact {c.first_name} {c.last_name}".rstrip()
                            + f" <{c.email}> (id {c.id}) for client {ctx.client.name!r}")
            else:
                ctx.explain("contact", f"contact {c.email} (id {c.id}) was created at the same moment by another delivery")
    elif ctx.contact is not None:
        c = ctx.contact
        role = "the primary contact" if c.is_primary else "a contact"
        ctx.explain("contact", f"{c.first_name} {c.last_name} (id {c.id}) is {role} of the client".replace("  ", " "))
    else:
        ctx.explain("contact", "no contact: the sender's client is unknown")
    if ctx.contact is not None and ctx.contact.ignore_email:
        raise Ignored("ignored_contact_muted", f"contact {ctx.contact.email} is set to ignore e-mail")


_CONTACTS, _CLIENTS = Contact.__table__, Client.__table__
_INSERT_CONTACT = insert(_CONTACTS).returning(*columns(ContactRow, _CONTACTS))
_CONTACT_BY_EMAIL = select(*columns(ContactRow, _CONTACTS)).where(_CONTACTS.c.email == bindparam("email"))
_CLIENT_BY_ID = select(*columns(ClientRow, _CLIENTS)).where(_CLIENTS.c.id == bindparam("client_id"))


def _get_or_create(ctx: RoutingContext) -> tuple[ContactRow, bool]:
    """Insert the contact in a savepoint; a concurrent insert of the same e-mail wins, we reuse it."""
    db = ctx.db
    first, last = names_for(ctx.sender_name, ctx.sender_email or "")
    try:
        with db.begin_nested():
            row = db.execute(_INSERT_CONTACT, {
                "client_id": ctx.client.id, "first_name": first, "last_name": last,
                "email": ctx.sender_email, "auto_created": True, "is_primary": False,
                "ignore_email": False,
            }).one()
        return ContactRow._make(row), True
    except IntegrityError:
        row = db.execute(_CONTACT_BY_EMAIL, {"email": ctx.sender_email}).first()
        if row is None:
            raise
        existing = ContactRow._make(row)
        if existing.client_id != ctx.client.id:  # created meanwhile for another client: it decides
            ctx.client = ClientRow._make(db.execute(_CLIENT_BY_ID, {"client_id": existing.client_id}).one())
            ctx.client_terms = None  # its contract and SLA are looked up when the ticket is opened
        return existing, False
