"""SLA due times: minutes added around the clock (24x7) or only inside business hours.

Business hours are ``{"timezone": "Europe/Berlin", "windows": [{"day": 0, "start": "09:00",
"end": "17:00"}, ...], "holidays": ["2026-12-25", ...]}`` (``day`` 0 = Monday). Decisions:

- Times are wall-clock times in the SLA's timezone (``zoneinfo``); durations are real elapsed
  minutes, so a window on a DST change day is as long as the clock says it is in UTC.
- A window whose end is not after its start (``22:00``–``06:00``) runs overnight into the next
  day; ``24:00`` means midnight at the end of the day.
- A holiday cancels the windows that start on that local date.
- A ticket arriving outside business hours starts counting when the next window opens; one
  arriving inside a window counts from its arrival.
- Business hours with no windows at all cannot be met: the due time is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_DAYS = 800  # give up looking for business time after this many days (e.g. all holidays)


class InvalidBusinessHours(ValueError):
    """Raised when a business-hours definition cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Window:
    """One weekly opening window: weekday (0 = Monday), local start and end minute of the day."""

    day: int
    start: int  # minutes after local midnight
    end: int  # minutes after local midnight; <= start means the window ends the next day


@dataclass(frozen=True)
class BusinessHours:
    """A timezone, weekly windows and holiday dates."""

    tz: ZoneInfo
    windows: tuple[Window, ...]
    holidays: frozenset[date]


def _minutes(value: object, what: str) -> int:
    if not isinstance(value, str) or ":" not in value:
        raise InvalidBusinessHours(f"{what} must look like HH:MM, got {value!r}")
    hh, _, mm = value.partition(":")
    try:
        h, m = int(hh), int(mm)
    except ValueError:
        raise InvalidBusinessHours(f"{what} must look like HH:MM, got {value!r}") from None
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise InvalidBusinessHours(f"{what} {value!r} is not a time of day")
    return h * 60 + m


def parse_business_hours(data: dict) -> BusinessHours:
    """Read the JSON form; raise InvalidBusinessHours naming the bad part."""
    if not isinstance(data, dict):
        raise InvalidBusinessHours("business_hours must be an object")
    tzname = data.get("timezone") or "UTC"
    try:
        tz = ZoneInfo(str(tzname))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidBusinessHours(f"unknown timezone {tzname!r}") from None
    windows = []
    for i, w in enumerate(data.get("windows") or []):
        if not isinstance(w, dict):
            raise InvalidBusinessHours(f"windows[{i}] must be an object")
        day = w.get("day")
        if not isinstance(day, int) or not 0 <= day <= 6:
            raise InvalidBusinessHours(f"windows[{i}].day must be 0 (Monday) to 6 (Sunday)")
        start = _minutes(w.get("start"), f"windows[{i}].start")
        end = _minutes(w.get("end"), f"windows[{i}].end")
        if start == 24 * 60:
            raise InvalidBusinessHours(f"windows[{i}].start cannot be 24:00")
        windows.append(Window(day, start, end))
    holidays = set()
    for i, h in enumerate(data.get("holidays") or []):
        try:
            holidays.add(date.fromisoformat(str(h)))
        except ValueError:
            raise InvalidBusinessHours(f"holidays[{i}] must be a date YYYY-MM-DD, got {h!r}") from None
    return BusinessHours(tz, tuple(sorted(windows, key=lambda w: (w.day, w.start))), frozenset(holidays))


def _local(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of local wall time ``minute`` on ``day``.

    A wall time inside a spring-forward gap does not exist; zoneinfo reads it with the offset
    before the change, which lands just after the gap: the moment the clock first shows it.
    """
    wall = datetime.combine(day, time(0)) + timedelta(minutes=minute)
    return wall.replace(tzinfo=tz).astimezone(timezone.utc)


def _intervals(bh: BusinessHours, start_day: date):
    """Business intervals (UTC start, UTC end) for windows starting on or after ``start_day``."""
    for offset in range(MAX_DAYS):
        day = start_day + timedelta(days=offset)
        if day in bh.holidays:
            continue
        weekday = day.weekday()
        for w in bh.windows:
            if w.day != weekday:
                continue
            begin = _local(day, w.start, bh.tz)
            end_day = day if w.end > w.start else day + timedelta(days=1)
            end = _local(end_day, w.end, bh.tz) if w.end != 24 * 60 else _local(
                day + timedelta(days=1), 0, bh.tz
            )
            if end > begin:
                yield begin, end


def add_business_minutes(start: datetime, minutes: int, hours: BusinessHours | dict) -> datetime | None:
    """The instant ``minutes`` of business time after ``start`` (aware), or None if never."""
    bh = hours if isinstance(hours, BusinessHours) else parse_business_hours(hours)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    start = start.astimezone(timezone.utc)
    if not bh.windows:
        return None
    remaining = timedelta(minutes=minutes)
    # start a day early so an overnight window that began yesterday is seen
    first_day = start.astimezone(bh.tz).date() - timedelta(days=1)
    cursor = start  # business time before the cursor is spent (also merges overlapping windows)
    for begin, end in _intervals(bh, first_day):
        begin = max(begin, cursor)
        if end <= begin:
            continue
        available = end - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
        cursor = end
    return None


def due_at(start: datetime, minutes: int | None, business_hours: dict | None) -> datetime | None:
    """Due time of a target: ``start`` + ``minutes`` 24x7, or in business hours when given."""
    if minutes is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    if not business_hours:
        return start + timedelta(minutes=minutes)
    return add_business_minutes(start, minutes, business_hours)
