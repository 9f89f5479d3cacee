"""Contacts of clients: unique e-mail (case-insensitive, stored lower-case), one primary per client.

Decisions:
- E-mail addresses are stored lower-case with the domain in IDNA A-label form, the same form
  routing compares senders in; ``Bob@ACME.com`` and ``bob@acme.com`` are one contact.
- Making a contact primary demotes the client's previous primary in the same transaction; the
  client row is locked first and the contact re-read after it, so concurrent switches run one
  after another and exactly one primary remains (a lost race is a 409, never a broken state).
- Moving a contact to another client drops its primary flag unless ``is_primary`` is given too.
- The e-mail domain need not be one of the client's domains (people use private addresses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin_api.services.errors import Conflict, Invalid, NotFound, checked_fields
from admin_api.services.pages import Page, paginate
from models import Client, Contact, utcnow
from models.addresses import InvalidAddress, parse_address

CONTACT_FIELDS = (
    "first_name", "last_name", "email", "phone", "mobile_phone", "job_title", "is_primary",
    "ignore_email", "client_id",
)
_NOT_NULL = ("first_name", "last_name", "email", "is_primary", "ignore_email", "client_id")


def normalize_email(value: str, *, loc: Any = "email") -> str:
    """``value`` as stored (models.addresses); Invalid at ``loc`` saying what is wrong."""
    try:
        return parse_address(value or "").key
    except InvalidAddress as exc:
        raise Invalid(loc, str(exc)) from None


def create_contact(
    session: Session,
    *,
    client_id: int,
    first_name: str,
    last_name: str,
    email: str,
    is_primary: bool = False,
    **fields: Any,
) -> Contact:
    """Add a contact to a client; ``is_primary`` demotes the previous primary. Raises NotFound,
    Invalid or Conflict (the e-mail belongs to another contact)."""
    client = _client(session, client_id, loc=None)
    values = _checked(
        session,
        {"first_name": first_name, "last_name": last_name, "email": email, **fields},
        contact_id=None,
    )
    values.setdefault("ignore_email", False)
    contact = Contact(client_id=client.id, is_primary=False, auto_created=False, **values)
    session.add(contact)
    _flush(session, contact.email)
    if is_primary:
        make_primary(session, contact=contact)
    return contact


def update_contact(session: Session, *, contact_id: int, changes: Mapping[str, Any]) -> Contact:
    """Apply ``changes`` (only the keys given); ``is_primary: true`` switches the primary atomically."""
    changes = dict(changes)
    for key in ("is_primary", "client_id"):
        if key in changes and changes[key] is None:
            raise Invalid(key, f"{key} cannot be null")
    is_primary = changes.pop("is_primary", None)
    new_client = changes.pop("client_id", None)
    contact = get_contact(session, contact_id=contact_id)
    if new_client is not None and new_client != contact.client_id:
        _client(session, new_client, loc="client_id")
    if is_primary is not None or (new_client is not None and new_client != contact.client_id):
        contact = _locked_with_its_clients(session, contact, new_client)
    values = _checked(session, changes, contact_id=contact.id)
    for key, value in values.items():
        setattr(contact, key, value)
    if new_client is not None and new_client != contact.client_id:
        contact.is_primary = False
        _flush(session, contact.email)
        contact.client_id = new_client
    contact.updated_at = utcnow()
    _flush(session, contact.email)
    if is_primary is True:
        make_primary(session, contact=contact)
    elif is_primary is False and contact.is_primary:
        contact.is_primary = False
        session.flush()
    return contact


def lock_clients(session: Session | Connection, client_ids) -> None:
    """Lock these clients' rows (in id order) for a change of their primary contact.

    Every change of a primary contact takes this lock first, so the switches of one client run
    one after another and each sees the previous one's result. ``FOR NO KEY UPDATE`` does not
    conflict with the key-share lock an INSERT of a contact takes on its client (foreign key),
    so creating contacts does not deadlock with it. SQLite: ``BEGIN IMMEDIATE`` serialises anyway.
    """
    ids = sorted({int(i) for i in client_ids if i is not None})
    if ids:
        session.execute(
            select(Client.id).where(Client.id.in_(ids)).order_by(Client.id).with_for_update(key_share=True)
        ).all()


def _locked_with_its_clients(session: Session, contact: Contact, new_client: int | None) -> Contact:
    """``contact`` re-read after its client (and ``new_client``) are locked; NotFound when gone.

    The contact was loaded before the lock, so a concurrent switch may have changed its primary
    flag meanwhile: writing from that stale state is how a client ended up with no primary.
    A contact moved to another client between the read and the lock is locked again.
    """
    for _ in range(3):
        client_id = contact.client_id
        lock_clients(session, (client_id, new_client))
        fresh = session.scalar(
            select(Contact).where(Contact.id == contact.id)
            .with_for_update(key_share=True).execution_options(populate_existing=True)
        )
        if fresh is None:
            raise NotFound("contact", contact.id)
        if fresh.client_id == client_id:
            return fresh
        contact = fresh
    raise Conflict(f"contact {contact.id} is being moved between clients right now; retry")


def make_primary(session: Session, *, contact: Contact) -> Contact:
    """Make ``contact`` its client's primary contact, demoting the previous one (same transaction)."""
    lock_clients(session, (contact.client_id,))
    session.execute(
        update(Contact)
        .where(
            Contact.client_id == contact.client_id,
            Contact.is_primary.is_(True),
            Contact.id != contact.id,
        )
        .values(is_primary=False, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    try:
        # Written whatever the session believes the flag is (it may have been loaded before the lock).
        session.execute(
            update(Contact).where(Contact.id == contact.id).values(is_primary=True)
            .execution_options(synchronize_session="fetch")
        )
    except IntegrityError:
        raise Conflict(
            f"another contact of client {contact.client_id} was made primary at the same time; retry"
        ) from None
    return contact


def delete_contact(session: Session, *, contact_id: int) -> None:
    """Delete a contact; its tickets stay (without a contact)."""
    session.delete(get_contact(session, contact_id=contact_id))
    session.flush()


def get_contact(session: Session, *, contact_id: int) -> Contact:
    """The contact with this id; raises NotFound."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("contact", contact_id)
    return contact


def list_contacts(
    session: Session,
    *,
    client_id: int | None = None,
    email: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[Contact]:
    """Contacts by last and first name; filters by client, exact e-mail (any case), name part."""
    query = select(Contact).order_by(Contact.last_name, Contact.first_name, Contact.id)
    if client_id is not None:
        _client(session, client_id, loc=None)
        query = query.where(Contact.client_id == client_id)
    if email is not None:
        query = query.where(Contact.email == _email_filter(email))
    if q:
        query = query.where(
            (Contact.first_name + " " + Contact.last_name).icontains(q, autoescape=True)
            | Contact.email.icontains(q, autoescape=True)
        )
    return paginate(session, query, limit=limit, offset=offset)


# --- steps ---------------------------------------------------------------------------------------


def _email_filter(value: str) -> str:
    try:
        return normalize_email(value, loc=("query", "email"))
    except Invalid:
        return value.strip().lower()  # not an address: matches nothing, which is the answer


def _client(session: Session, client_id: int, *, loc: str | None) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        if loc is None:
            raise NotFound("client", client_id)
        raise Invalid(loc, f"client {client_id} does not exist")
    return client


def _checked(session: Session, values: Mapping[str, Any], *, contact_id: int | None) -> dict[str, Any]:
    out = checked_fields(values, allowed=CONTACT_FIELDS, what="a contact", not_null=_NOT_NULL)
    for key in ("first_name", "last_name"):
        if key in out:
            out[key] = out[key].strip()
            if not out[key]:
                raise Invalid(key, f"{key} cannot be empty")
    if "email" in out:
        out["email"] = normalize_email(out["email"])
        query = select(Contact.id, Contact.client_id, Client.name).join(
            Client, Client.id == Contact.client_id
        ).where(Contact.email == out["email"])
        if contact_id is not None:
            query = query.where(Contact.id != contact_id)
        other = session.execute(query).first()
        if other is not None:
            raise Conflict(
                f"e-mail {out['email']} already belongs to contact {other.id} of client "
                f"{other.name!r} (id {other.client_id})"
            )
    if "ignore_email" in out:
        out["ignore_email"] = bool(out["ignore_email"])
    return out


def _flush(session: Session, email: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"e-mail {email} was taken by another contact at the same time; retry") from None
