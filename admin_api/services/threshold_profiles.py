"""Alert threshold profiles: named numeric limits (cpu_percent, disk_free_percent, ...).

A profile assigned to clients cannot be deleted (Conflict naming a client).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin_api.services.errors import Conflict, Invalid, NotFound, checked_fields
from admin_api.services.pages import Page, paginate
from models import Client, ThresholdProfile, utcnow

PROFILE_FIELDS = ("name", "description", "thresholds")


def create_threshold_profile(
    session: Session, *, name: str, description: str | None = None, thresholds: Mapping[str, float] | None = None
) -> ThresholdProfile:
    """Create a profile; raises Invalid or Conflict (name taken)."""
    profile = ThresholdProfile(thresholds={})
    _apply(session, profile, {"name": name, "description": description, "thresholds": thresholds or {}})
    session.add(profile)
    session.flush()
    return profile


def update_threshold_profile(
    session: Session, *, profile_id: int, changes: Mapping[str, Any]
) -> ThresholdProfile:
    """Apply ``changes``; ``thresholds`` when given replaces the whole set."""
    profile = get_threshold_profile(session, profile_id=profile_id)
    _apply(session, profile, changes)
    profile.updated_at = utcnow()
    session.flush()
    return profile


def delete_threshold_profile(session: Session, *, profile_id: int) -> None:
    """Delete a profile no client uses; Conflict naming a client that uses it."""
    profile = get_threshold_profile(session, profile_id=profile_id)
    users = session.execute(
        select(Client.id, Client.name, func.count().over().label("n"))
        .where(Client.threshold_profile_id == profile.id)
        .order_by(Client.name)
        .limit(1)
    ).first()
    if users is not None:
        raise Conflict(
            f"threshold profile {profile.name!r} is assigned to {users.n} client(s), e.g. "
            f"{users.name!r} (id {users.id}); assign them another profile first"
        )
    session.delete(profile)
    session.flush()


def get_threshold_profile(session: Session, *, profile_id: int) -> ThresholdProfile:
    """The profile with this id; raises NotFound."""
    profile = session.get(ThresholdProfile, profile_id)
    if profile is None:
        raise NotFound("threshold profile", profile_id)
    return profile


def list_threshold_profiles(session: Session, *, limit: int = 50, offset: int = 0) -> Page[ThresholdProfile]:
    """Profiles by name."""
    query = select(ThresholdProfile).order_by(ThresholdProfile.name, ThresholdProfile.id)
    return paginate(session, query, limit=limit, offset=offset)


def _apply(session: Session, profile: ThresholdProfile, changes: Mapping[str, Any]) -> None:
    checked_fields(changes, allowed=PROFILE_FIELDS, what="a threshold profile")
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise Invalid("name", "a threshold profile needs a name")
        other = session.execute(
            select(ThresholdProfile.id, ThresholdProfile.name).where(
                func.lower(ThresholdProfile.name) == name.lower(),
                ThresholdProfile.id != (profile.id or 0),
            )
        ).first()
        if other is not None:
            raise Conflict(f"a threshold profile named {other.name!r} already exists (id {other.id})")
        profile.name = name
    if "description" in changes:
        profile.description = changes["description"]
    if "thresholds" in changes:
        thresholds = changes["thresholds"]
        if thresholds is None:
            raise Invalid("thresholds", "thresholds cannot be null; send {} for none")
        clean: dict[str, float] = {}
        for key, value in thresholds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise Invalid(("thresholds", key), "a threshold must be a finite number")
            clean[str(key)] = float(value)
        profile.thresholds = clean
