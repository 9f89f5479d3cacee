"""Service level agreements: response and resolution targets, 24x7 or in business hours.

Decisions:
- At least one of first_response_minutes and resolution_minutes, also after a change.
- Business hours are checked by the same reader routing uses (routing.sla), so an SLA the API
  accepts is one routing can compute due times with.
- An SLA assigned to clients cannot be deleted (Conflict naming a client); tickets keep their
  own snapshot of the SLA anyway, so editing one never moves existing due times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin_api.services.errors import Conflict, Invalid, NotFound, checked_fields
from admin_api.services.pages import Page, paginate
from models import Client, Sla, utcnow
from models.business_hours import InvalidBusinessHours, parse_business_hours

SLA_FIELDS = ("name", "first_response_minutes", "resolution_minutes", "business_hours")


def create_sla(
    session: Session,
    *,
    name: str,
    first_response_minutes: int | None = None,
    resolution_minutes: int | None = None,
    business_hours: dict | None = None,
) -> Sla:
    """Create an SLA; raises Invalid or Conflict (name taken)."""
    sla = Sla()
    _apply(
        session,
        sla,
        {
            "name": name,
            "first_response_minutes": first_response_minutes,
            "resolution_minutes": resolution_minutes,
            "business_hours": business_hours,
        },
    )
    session.add(sla)
    session.flush()
    return sla


def update_sla(session: Session, *, sla_id: int, changes: Mapping[str, Any]) -> Sla:
    """Apply ``changes`` (only the keys given); ``business_hours: null`` makes it 24x7."""
    sla = get_sla(session, sla_id=sla_id)
    _apply(session, sla, changes)
    sla.updated_at = utcnow()
    session.flush()
    return sla


def delete_sla(session: Session, *, sla_id: int) -> None:
    """Delete an SLA no client uses; Conflict naming a client that uses it."""
    sla = get_sla(session, sla_id=sla_id)
    users = session.execute(
        select(Client.id, Client.name, func.count().over().label("n"))
        .where(Client.sla_id == sla.id)
        .order_by(Client.name)
        .limit(1)
    ).first()
    if users is not None:
        raise Conflict(
            f"SLA {sla.name!r} is assigned to {users.n} client(s), e.g. {users.name!r} "
            f"(id {users.id}); assign them another SLA first"
        )
    session.delete(sla)
    session.flush()


def get_sla(session: Session, *, sla_id: int) -> Sla:
    """The SLA with this id; raises NotFound."""
    sla = session.get(Sla, sla_id)
    if sla is None:
        raise NotFound("SLA", sla_id)
    return sla


def list_slas(session: Session, *, limit: int = 50, offset: int = 0) -> Page[Sla]:
    """SLAs by name."""
    return paginate(session, select(Sla).order_by(Sla.name, Sla.id), limit=limit, offset=offset)


def _apply(session: Session, sla: Sla, changes: Mapping[str, Any]) -> None:
    checked_fields(changes, allowed=SLA_FIELDS, what="an SLA")
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise Invalid("name", "an SLA needs a name")
        other = session.execute(
            select(Sla.id, Sla.name).where(func.lower(Sla.name) == name.lower(), Sla.id != (sla.id or 0))
        ).first()
        if other is not None:
            raise Conflict(f"an SLA named {other.name!r} already exists (id {other.id})")
        sla.name = name
    for key in ("first_response_minutes", "resolution_minutes"):
        if key in changes:
            value = changes[key]
            if value is not None and (not isinstance(value, int) or value < 1):
                raise Invalid(key, f"{key} must be a positive number of minutes")
            setattr(sla, key, value)
    if sla.first_response_minutes is None and sla.resolution_minutes is None:
        raise Invalid(
            "first_response_minutes",
            "an SLA needs first_response_minutes, resolution_minutes or both",
        )
    if "business_hours" in changes:
        sla.business_hours = checked_business_hours(changes["business_hours"])


def checked_business_hours(value: dict | None) -> dict | None:
    """``value`` when routing can compute due times with it (None = 24x7); else Invalid."""
    if value is None:
        return None
    try:
        parse_business_hours(value)
    except InvalidBusinessHours as exc:
        raise Invalid("business_hours", str(exc)) from None
    return value
