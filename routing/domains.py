"""Which client a sender domain routes to: the longest registered suffix match (SPEC §2)."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from models import Client, ClientDomain, Sla, utcnow
from models.domain_names import InvalidDomain, normalize_domain, suffixes
from routing.records import ClientRow, SlaRow, columns, take
from routing.tickets import ACTIVE_CONTRACT_OF_CLIENT


class DomainMatch(NamedTuple):
    """The registered domain a sender domain matched, with what routing needs of its client."""

    domain: str
    client_id: int
    client: ClientRow
    sla: SlaRow | None  # the client's SLA
    active_contract_id: int | None  # the client's active contract on the day asked about


def longest_match(*extra_columns) -> Select:
    """The rule of SPEC §2 as a statement: the longest registered domain among ``candidates``.

    Selects that domain, its client id and ``extra_columns``; ``Client`` is joined. Bind
    ``candidates`` with :func:`match_candidates` of the sender domain. The admin API's
    route lookup and routing's match below are both this statement.
    """
    return (
        select(ClientDomain.domain, ClientDomain.client_id, *extra_columns)
        .join(Client, Client.id == ClientDomain.client_id)
        .where(ClientDomain.domain.in_(bindparam("candidates", expanding=True)))
        .order_by(func.length(ClientDomain.domain).desc())
        .limit(1)
    )


def match_candidates(domain: str) -> list[str]:
    """The registered domains ``domain`` could match, longest first; raise InvalidDomain.

    ``Mail.EU.acme.com`` → ``mail.eu.acme.com``, ``eu.acme.com``, ``acme.com`` (canonical form,
    label boundaries only: ``notacme.com`` never matches ``acme.com``).
    """
    return suffixes(normalize_domain(domain))


_MATCH = (
    longest_match(ACTIVE_CONTRACT_OF_CLIENT, *columns(ClientRow, Client.__table__, "client_"),
                  *columns(SlaRow, Sla.__table__, "sla_"))
    .outerjoin(Sla, Sla.id == Client.sla_id)
)
_CLIENT_AT = 3
_SLA_AT = _CLIENT_AT + len(ClientRow._fields)


def match_domain(db: Connection | Session, domain: str, *, on: date | None = None) -> DomainMatch | None:
    """The registered domain ``domain`` routes to, or None.

    ``mail.eu.acme.com`` matches ``eu.acme.com`` before ``acme.com`` (:func:`longest_match`);
    ``domain`` may be in any case or a U-label; an unusable name matches nothing. One query, which also reads the client, its SLA
    and its active contract on ``on`` (default: today).
    """
    try:
        candidates = match_candidates(domain)
    except InvalidDomain:
        return None
    if not candidates:
        return None
    row = db.execute(_MATCH, {"candidates": candidates, "day": on or utcnow().date()}).first()
    if row is None:
        return None
    return DomainMatch(row[0], row[1], take(ClientRow, row, _CLIENT_AT), take(SlaRow, row, _SLA_AT), row[2])
