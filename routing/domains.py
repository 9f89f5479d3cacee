"""Which client a sender domain routes to: the longest registered suffix match (SPEC §2)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from models import ClientDomain
from models.domain_names import InvalidDomain, normalize_domain, suffixes


def match_domain(session: Session, domain: str) -> ClientDomain | None:
    """The registered domain ``domain`` routes to, or None.

    ``mail.eu.acme.com`` matches ``eu.acme.com`` before ``acme.com``; the match is exact or on a
    label boundary (``notacme.com`` never matches ``acme.com``). ``domain`` may be in any case or
    a U-label; an unusable name matches nothing. One query, which also loads ``.client``.
    """
    try:
        canonical = normalize_domain(domain)
    except InvalidDomain:
        return None
    candidates = suffixes(canonical)
    if not candidates:
        return None
    return session.scalars(
        select(ClientDomain)
        .options(joinedload(ClientDomain.client))
        .where(ClientDomain.domain.in_(candidates))
        .order_by(func.length(ClientDomain.domain).desc())
        .limit(1)
    ).first()
