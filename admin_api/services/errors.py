"""The errors service functions raise; the HTTP layer maps each to one status code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class ServiceError(Exception):
    """Base of every error a service function raises on purpose."""


class NotFound(ServiceError):
    """Raised when an id (or key) names no row; HTTP 404."""

    def __init__(
        self, entity: str, key: object, *, field: str = "id", message: str | None = None
    ) -> None:
        self.entity, self.key, self.field = entity, key, field
        super().__init__(message or f"{entity} {field} {key!r} does not exist")


class Conflict(ServiceError):
    """Raised when a change would break a uniqueness or ownership rule; HTTP 409, saying with what."""


class Invalid(ServiceError):
    """Raised when a value is unacceptable; HTTP 422 naming the field (``loc``) like FastAPI does."""

    def __init__(self, loc: str | Sequence[str | int], message: str) -> None:
        self.loc = (loc,) if isinstance(loc, str) else tuple(loc)
        self.message = message
        super().__init__(f"{'.'.join(str(p) for p in self.loc)}: {message}")


def checked_fields(
    values: Mapping[str, Any], *, allowed: Iterable[str], what: str, not_null: Iterable[str] = ()
) -> dict[str, Any]:
    """A copy of ``values`` once no key is outside ``allowed`` and no ``not_null`` key is None.

    ``what`` names the thing in the message: "is not a field of {what}".
    """
    unknown = set(values) - set(allowed)
    if unknown:
        raise Invalid(min(unknown), f"is not a field of {what}")
    for key in not_null:
        if key in values and values[key] is None:
            raise Invalid(key, f"{key} cannot be null")
    return dict(values)
