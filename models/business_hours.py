"""Business hours of an SLA: the one definition the API validates and routing computes with.

Stored on ``slas.business_hours`` as JSON: ``{"timezone": "Europe/Berlin", "windows": [{"day": 0,
"start": "09:00", "end": "17:00"}, ...], "holidays": ["2026-12-25", ...]}`` (``day`` 0 = Monday;
the API also takes a weekday name, ``mon`` or ``Monday``, and stores its number).
The admin API takes :class:`BusinessHours` as its request schema; routing reads the stored JSON
with :func:`parse_business_hours` (cached) and computes due times with it (routing.sla).

Decisions: ``end`` may be ``24:00``; an end before the start runs overnight into the next day; a
window whose start equals its end is refused; same-day windows of one weekday must not overlap;
at least one window.
"""

from __future__ import annotations

import json
import zoneinfo
from datetime import date
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

HHMM = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
HHMM_END = Annotated[str, StringConstraints(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
DAY_MINUTES = 24 * 60


class InvalidBusinessHours(ValueError):
    """Raised when a business-hours definition cannot be read; the message says what is wrong."""


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(name: str) -> str:
    if name not in _timezones():
        raise ValueError(f"unknown timezone {name!r}: not an IANA time zone (e.g. Europe/Berlin)")
    return name


#: Weekday names a window's ``day`` may be given as (English, any case); stored as 0 = Monday.
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(value: Any) -> Any:
    """Turn a weekday name (``mon``, ``Monday``) into its number; numbers pass through."""
    if not isinstance(value, str) or value.strip().lstrip("-").isdigit():
        return value
    name = value.strip().lower()
    for number, weekday in enumerate(WEEKDAYS):
        if len(name) >= 3 and weekday.startswith(name):
            return number
    raise ValueError(f"unknown weekday {value!r}: give 0 (Monday) to 6 (Sunday) or a name such as mon")


def _minute(text: str) -> int:
    hours, _, minutes = text.partition(":")
    return int(hours) * 60 + int(minutes)


class Window(BaseModel):
    """Opening hours on one weekday (0 = Monday) in the SLA's time zone.

    ``end`` may be ``24:00``; an end before the start runs overnight into the next day.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    day: Annotated[int, BeforeValidator(_weekday)] = Field(
        ge=0, le=6, description="0 = Monday … 6 = Sunday; a name (mon, Monday) is accepted too"
    )
    start: HHMM
    end: HHMM_END

    @model_validator(mode="after")
    def _not_empty(self):
        if self.end == self.start:
            raise ValueError(f"window start and end are both {self.start}: the window is empty")
        return self

    @cached_property
    def start_minute(self) -> int:
        """Minutes after local midnight the window opens."""
        return _minute(self.start)

    @cached_property
    def end_minute(self) -> int:
        """Minutes after local midnight it closes; not after the start means the next day."""
        return _minute(self.end)


class BusinessHours(BaseModel):
    """Business hours: a time zone, weekly windows and holiday dates (closed all day)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00]*$"),
        AfterValidator(_timezone),
    ]
    windows: list[Window] = Field(min_length=1, max_length=100)
    holidays: list[date] = Field(default_factory=list, max_length=1000)

    @field_validator("windows")
    @classmethod
    def _no_overlap(cls, windows: list[Window]) -> list[Window]:
        by_day: dict[int, list[Window]] = {}
        for w in windows:
            if w.end > w.start:  # same-day windows; overnight ones are left as given
                by_day.setdefault(w.day, []).append(w)
        for day, items in by_day.items():
            items.sort(key=lambda w: w.start)
            for a, b in pairwise(items):
                if b.start < a.end:
                    raise ValueError(
                        f"windows on day {day} overlap ({a.start}-{a.end}, {b.start}-{b.end})"
                    )
        return windows

    @cached_property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The time zone the windows are wall-clock times in."""
        return zoneinfo.ZoneInfo(self.timezone)

    @cached_property
    def holiday_dates(self) -> frozenset[date]:
        """Local dates whose windows are cancelled."""
        return frozenset(self.holidays)

    @cached_property
    def ordered_windows(self) -> tuple[Window, ...]:
        """The windows by weekday and opening time."""
        return tuple(sorted(self.windows, key=lambda w: (w.day, w.start_minute)))


def parse_business_hours(data: Any) -> BusinessHours:
    """Read the stored JSON form; raise InvalidBusinessHours naming each bad part.

    Cached by content: routing reads the same few SLAs for every new ticket.
    """
    if isinstance(data, BusinessHours):
        return data
    if not isinstance(data, dict):
        raise InvalidBusinessHours("business_hours must be an object")
    try:
        key = json.dumps(data, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise InvalidBusinessHours(f"business_hours is not JSON: {exc}") from None
    return _parse(key)


@lru_cache(maxsize=256)
def _parse(key: str) -> BusinessHours:
    try:
        return BusinessHours.model_validate_json(key)
    except ValidationError as exc:
        raise InvalidBusinessHours("; ".join(_describe(e) for e in exc.errors())) from None


def _describe(error: dict) -> str:
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
