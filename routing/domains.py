"""Which client a sender domain routes to: the longest registered suffix match (SPEC §2)."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from sqlalchemy import bindparam, func, select
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


_MATCH = (
    select(ClientDomain.domain, ClientDomain.client_id, ACTIVE_CONTRACT_OF_CLIENT,
           *columns(ClientRow, Client.__table__, "client_"), *columns(SlaRow, Sla.__table__, "sla_"))
    .join(Client, Client.id == ClientDomain.client_id)
    .outerjoin(Sla, Sla.id == Client.sla_id)
    .where(ClientDomain.domain.in_(bindparam("candidates", expanding=True)))
    .order_by(func.length(ClientDomain.domain).desc())
    .limit(1)
)
_CLIENT_AT = 3
_SLA_AT = _CLIENT_AT + len(ClientRow._fields)


def match_domain(db: Connection | Session, domain: str, *, on: date | None = None) -> DomainMatch | None:
    """The registered domain ``domain`` routes to, or None.

    ``mail.eu.acme.com`` matches ``eu.acme.com`` before ``acme.com``; the match is exact or on a
    label boundary (``notacme.com`` never matches ``acme.com``). ``domain`` may be in any case or
    a U-label; an unusable name matches nothing. One query, which also reads the client, its SLA
    and its active contract on ``on`` (default: today).
    """
    try:
        canonical = normalize_domain(domain)
    except InvalidDomain:
        return None
    candidates = suffixes(canonical)
    if not candidates:
        return None
    row = db.execute(_MATCH, {"candidates": candidates, "day": on or utcnow().date()}).first()
    if row is None:
        return None
    return DomainMatch(row[0], row[1], take(ClientRow, row, _CLIENT_AT), take(SlaRow, row, _SLA_AT), row[2])
