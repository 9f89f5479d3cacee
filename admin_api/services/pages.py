"""One page of a list: the items and the total count before paging (SPEC §7 list shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    """``items`` of one page and ``total`` matching rows."""

    items: list[T]
    total: int


def paginate(session: Session, query: Select, *, limit: int, offset: int) -> Page:
    """Run ``query`` (ordered) for one page, plus a COUNT of all its rows when the page is full.

    A page that is not full (and not past the end) already tells the total, so the common small
    list costs one query, not two.
    """
    items = list(session.scalars(query.limit(limit).offset(offset)).unique())
    if len(items) < limit and (items or offset == 0):
        return Page(items=items, total=offset + len(items))
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return Page(items=items, total=int(total or 0))
