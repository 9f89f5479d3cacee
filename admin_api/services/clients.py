"""Clients (customer companies): create, change, find, list with their domains, delete.

Decisions:
- Names are unique case-insensitively; a clash is a Conflict naming the existing client.
- ``domain=`` on the list finds the client that registered exactly that domain (normalised);
  to see where a sender domain routes (subdomains included) use ``route_domain``.
- ``q=`` matches a part of the name or of the business id, case-insensitively.
- A client with tickets is deleted only with ``force``: its tickets then stay, without a client
  (in triage). Contacts, domains and contracts go with the client.
- Listing loads domains and primary contacts for the whole page in a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session, selectinload

from admin_api.services.domains import canonical_domain, set_domains
from admin_api.services.errors import Conflict, Invalid, NotFound, checked_fields
from admin_api.services.pages import Page
from models import Client, ClientDomain, Contact, Sla, ThresholdProfile, Ticket, utcnow

CLIENT_FIELDS = (
    "name", "rank", "business_id", "phone", "fax", "address", "city", "state", "zip_code",
    "country", "notes", "tickets_only_by_primary_contact", "require_authenticated_sender",
    "send_acknowledgements", "sla_id", "threshold_profile_id",
)
_NOT_NULL = ("name", "tickets_only_by_primary_contact", "require_authenticated_sender", "send_acknowledgements")


@dataclass(frozen=True)
class ClientView:
    """A client with what its JSON carries beyond its columns: domains (sorted), primary contact id."""

    client: Client
    primary_contact_id: int | None
    domains: list[str]


def create_client(
    session: Session,
    *,
    name: str,
    domains: Sequence[str] = (),
    allow_public_domain: bool = False,
    **fields: Any,
) -> Client:
    """Create a client with its domains; raises Invalid, Conflict (name or domain taken)."""
    values = _checked(session, {"name": name, **fields}, client_id=None)
    client = Client(**{k: v for k, v in values.items()})
    client.tickets_only_by_primary_contact = bool(values.get("tickets_only_by_primary_contact", False))
    client.require_authenticated_sender = bool(values.get("require_authenticated_sender", False))
    client.send_acknowledgements = bool(values.get("send_acknowledgements", True))
    client.domains = []
    session.add(client)
    session.flush()
    set_domains(session, client=client, domains=domains, allow_public_domain=allow_public_domain)
    return client


def update_client(
    session: Session, *, client_id: int, changes: Mapping[str, Any], allow_public_domain: bool = False
) -> Client:
    """Apply ``changes`` (only the keys given); ``domains`` when given replaces the set."""
    client = get_client(session, client_id=client_id)
    changes = dict(changes)
    domains = changes.pop("domains", None)
    values = _checked(session, changes, client_id=client.id)
    for key, value in values.items():
        setattr(client, key, value)
    if domains is not None:
        set_domains(session, client=client, domains=domains, allow_public_domain=allow_public_domain)
    client.updated_at = utcnow()
    session.flush()
    return client


def delete_client(session: Session, *, client_id: int, force: bool = False) -> None:
    """Delete a client with its domains, contacts and contracts; Conflict if it has tickets."""
    client = get_client(session, client_id=client_id)
    tickets = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.client_id == client.id))
    if tickets and not force:
        raise Conflict(
            f"client {client.name!r} (id {client.id}) has {tickets} ticket(s); delete with "
            "?force=true to keep them without a client (in triage)"
        )
    session.delete(client)
    session.flush()


def get_client(session: Session, *, client_id: int) -> Client:
    """The client with this id, its domains loaded; raises NotFound."""
    client = session.scalar(
        select(Client).options(selectinload(Client.domains)).where(Client.id == client_id)
    )
    if client is None:
        raise NotFound("client", client_id)
    return client


def list_clients(
    session: Session,
    *,
    q: str | None = None,
    domain: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[ClientView]:
    """Clients by name, filtered, with domains and primary contact (no query per client).

    ``domain`` alone (which client registered a sender's domain, asked on every lookup) runs a
    statement built once with its values bound at execution: SQLAlchemy memoizes a statement
    object's cache key, which a statement built per request recomputes.
    """
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if domain is not None and not q:
        params["domain"] = canonical_domain(domain, loc=("query", "domain"))
        query = _BY_DOMAIN
    else:
        query = _views_query().order_by(Client.name, Client.id)
        if q:
            query = query.where(
                or_(
                    Client.name.icontains(q, autoescape=True),
                    Client.business_id.icontains(q, autoescape=True),
                )
            )
        if domain is not None:
            params["domain"] = canonical_domain(domain, loc=("query", "domain"))
            query = query.where(_registered_domain)
    rows = session.execute(_BY_DOMAIN_PAGE if query is _BY_DOMAIN else _page(query), params).all()
    items = [_view(row) for row in rows]
    if len(items) < limit and (items or offset == 0):
        return Page(items=items, total=offset + len(items))
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()), params)
    return Page(items=items, total=int(total or 0))


def get_client_view(session: Session, *, client_id: int) -> ClientView:
    """The client with this id, its domains and primary contact, in two queries; NotFound."""
    row = session.execute(_views_query().where(Client.id == client_id)).first()
    if row is None:
        raise NotFound("client", client_id)
    return _view(row)


def _view(row) -> ClientView:
    return ClientView(
        client=row[0], primary_contact_id=row[1], domains=sorted(row[2].split(",")) if row[2] else []
    )


def _views_query():
    """Clients with their primary contact's id and their domains (comma-joined; a domain name
    has no comma) as correlated subqueries: one statement for any number of clients."""
    primary = (
        select(Contact.id)
        .where(Contact.client_id == Client.id, Contact.is_primary.is_(True))
        .correlate(Client)
        .limit(1)
        .scalar_subquery()
        .label("primary_contact_id")
    )
    domains = (
        select(func.aggregate_strings(ClientDomain.domain, ","))
        .where(ClientDomain.client_id == Client.id)
        .correlate(Client)
        .scalar_subquery()
        .label("domains")
    )
    return select(Client, primary, domains)


def _page(query):
    return query.limit(bindparam("limit")).offset(bindparam("offset"))


# Clients that registered the domain bound as ``domain``.
_registered_domain = Client.id.in_(
    select(ClientDomain.client_id).where(ClientDomain.domain == bindparam("domain"))
)
_BY_DOMAIN = _views_query().where(_registered_domain).order_by(Client.name, Client.id)
_BY_DOMAIN_PAGE = _page(_BY_DOMAIN)


def primary_contact_ids(session: Session, client_ids: Sequence[int]) -> dict[int, int]:
    """client id → id of its primary contact, for all ``client_ids`` in one query."""
    if not client_ids:
        return {}
    rows = session.execute(
        select(Contact.client_id, Contact.id).where(
            Contact.client_id.in_(list(client_ids)), Contact.is_primary.is_(True)
        )
    )
    return {row.client_id: row.id for row in rows}


def views(session: Session, clients: Sequence[Client]) -> list[ClientView]:
    """The clients with their primary contact ids (one extra query for all of them)."""
    primaries = primary_contact_ids(session, [c.id for c in clients])
    return [
        ClientView(
            client=c, primary_contact_id=primaries.get(c.id), domains=sorted(d.domain for d in c.domains)
        )
        for c in clients
    ]


def view(session: Session, client: Client) -> ClientView:
    """One client with its primary contact id."""
    return views(session, [client])[0]


# --- steps ---------------------------------------------------------------------------------------


def _checked(session: Session, values: Mapping[str, Any], *, client_id: int | None) -> dict[str, Any]:
    out = checked_fields(values, allowed=CLIENT_FIELDS, what="a client", not_null=_NOT_NULL)
    if "name" in out:
        name = (out["name"] or "").strip()
        if not name:
            raise Invalid("name", "a client needs a name")
        out["name"] = name
        query = select(Client.id, Client.name).where(func.lower(Client.name) == name.lower())
        if client_id is not None:
            query = query.where(Client.id != client_id)
        other = session.execute(query).first()
        if other is not None:
            raise Conflict(f"a client named {other.name!r} already exists (id {other.id})")
    if out.get("sla_id") is not None and session.get(Sla, out["sla_id"]) is None:
        raise Invalid("sla_id", f"SLA {out['sla_id']} does not exist")
    if out.get("threshold_profile_id") is not None and session.get(
        ThresholdProfile, out["threshold_profile_id"]
    ) is None:
        raise Invalid(
            "threshold_profile_id", f"threshold profile {out['threshold_profile_id']} does not exist"
        )
    return out
