"""Client mail domains (SPEC §2): normalise, refuse public providers, keep each with one client.

Decisions:
- Adding a domain the client already has is not an error: the existing one is returned.
- A subdomain of another client's domain (``eu.acme.com`` while another client has ``acme.com``)
  is allowed: the longest registered match wins when routing, so subsidiaries can be split off.
- ``route_domain`` answers exactly what routing does: both ask routing.domains.longest_match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin_api.services.errors import Conflict, Invalid, NotFound
from models import Client, ClientDomain
from models.domain_names import InvalidDomain, is_public_domain, normalize_domain
from routing.domains import longest_match, match_candidates


@dataclass(frozen=True)
class DomainRoute:
    """Where mail from ``domain`` goes: ``client`` by the registered ``matched_domain``."""

    domain: str
    client_id: int
    client_name: str
    matched_domain: str

    @property
    def exact(self) -> bool:
        return self.domain == self.matched_domain


def canonical_domain(value: str, *, loc: str | Sequence[str] = "domain") -> str:
    """The canonical form of ``value``; raises Invalid (422 naming ``loc``) saying what is wrong."""
    if not isinstance(value, str):
        raise Invalid(loc, "domain must be a string")
    try:
        return normalize_domain(value)
    except InvalidDomain as exc:
        raise Invalid(loc, str(exc)) from None


def checked_domain(
    value: str, *, allow_public_domain: bool, loc: str | Sequence[str] = "domain"
) -> str:
    """Canonical form of ``value``, refusing public providers unless explicitly allowed."""
    domain = canonical_domain(value, loc=loc)
    if is_public_domain(domain) and not allow_public_domain:
        raise Invalid(
            loc,
            f"{domain} is a public mail provider: every sender there would route to this client. "
            "Add contacts by e-mail address instead, or send allow_public_domain: true",
        )
    return domain


def owner_conflict(session: Session, *, domain: str, client_id: int | None) -> Conflict | None:
    """A Conflict naming the other client that owns ``domain``, or None when it is free."""
    row = session.execute(
        select(ClientDomain.client_id, Client.name)
        .join(Client, Client.id == ClientDomain.client_id)
        .where(ClientDomain.domain == domain)
    ).first()
    if row is None or row.client_id == client_id:
        return None
    return Conflict(f"domain {domain} already belongs to client {row.name!r} (id {row.client_id})")


def set_domains(
    session: Session,
    *,
    client: Client,
    domains: Iterable[str],
    allow_public_domain: bool = False,
    loc: str = "domains",
) -> None:
    """Make ``client``'s domains exactly ``domains`` (normalised, duplicates folded)."""
    wanted: list[str] = []
    for i, value in enumerate(domains):
        domain = checked_domain(value, allow_public_domain=allow_public_domain, loc=(loc, i))
        if domain not in wanted:
            wanted.append(domain)
    for domain in wanted:
        conflict = owner_conflict(session, domain=domain, client_id=client.id)
        if conflict is not None:
            raise conflict
    current = {d.domain: d for d in client.domains}
    for domain, row in current.items():
        if domain not in wanted:
            client.domains.remove(row)
    for domain in wanted:
        if domain not in current:
            client.domains.append(ClientDomain(domain=domain))
    _flush(session, wanted)


def add_domain(
    session: Session, *, client_id: int, domain: str, allow_public_domain: bool = False
) -> tuple[ClientDomain, bool]:
    """Register ``domain`` for the client; returns (row, created). Raises Invalid, Conflict, NotFound."""
    client = _client(session, client_id)
    canonical = checked_domain(domain, allow_public_domain=allow_public_domain)
    existing = session.scalar(select(ClientDomain).where(ClientDomain.domain == canonical))
    if existing is not None and existing.client_id == client.id:
        return existing, False
    conflict = owner_conflict(session, domain=canonical, client_id=client.id)
    if conflict is not None:
        raise conflict
    row = ClientDomain(client_id=client.id, domain=canonical)
    session.add(row)
    _flush(session, [canonical])
    return row, True


def remove_domain(session: Session, *, client_id: int, domain: str) -> None:
    """Remove one of the client's domains; NotFound when the client does not have it."""
    client = _client(session, client_id)
    canonical = canonical_domain(domain, loc=("path", "domain"))
    row = session.scalar(
        select(ClientDomain).where(
            ClientDomain.client_id == client.id, ClientDomain.domain == canonical
        )
    )
    if row is None:
        raise NotFound(
            "domain", canonical, message=f"client {client.name!r} (id {client.id}) has no domain {canonical}"
        )
    session.delete(row)
    session.flush()


# routing's rule with only the client's name (SQLAlchemy memoizes a statement object's cache key)
_ROUTE = longest_match(Client.name)


def route_domain(session: Session, *, domain: str) -> DomainRoute:
    """Which client mail from ``domain`` routes to and by which registered domain; NotFound if none.

    The rule of routing.domains (the longest registered suffix of the canonical name), asked
    with three columns: this answers every sender lookup of the API.
    """
    canonical = canonical_domain(domain, loc=("path", "domain"))
    candidates = match_candidates(canonical)
    row = session.execute(_ROUTE, {"candidates": candidates}).first() if candidates else None
    if row is None:
        raise NotFound(
            "domain",
            canonical,
            message=f"no client domain matches {canonical}: its mail goes to the unmatched policy "
            "(triage or reject)",
        )
    return DomainRoute(
        domain=canonical, client_id=row.client_id, client_name=row.name, matched_domain=row.domain
    )


def _client(session: Session, client_id: int) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise NotFound("client", client_id)
    return client


def _flush(session: Session, domains: list[str]) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(
            f"domain {', '.join(domains)} was registered by another client at the same time; retry"
        ) from None
