"""SLA due times: minutes added around the clock (24x7) or only inside business hours.

Business hours are defined (and read) in models.business_hours. Decisions:

- Times are wall-clock times in the SLA's timezone (``zoneinfo``); durations are real elapsed
  minutes, so a window on a DST change day is as long as the clock says it is in UTC.
- A window whose end is not after its start (``22:00``–``06:00``) runs overnight into the next
  day; ``24:00`` means midnight at the end of the day.
- A holiday cancels the windows that start on that local date.
- A ticket arriving outside business hours starts counting when the next window opens; one
  arriving inside a window counts from its arrival.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from models.business_hours import DAY_MINUTES, BusinessHours, parse_business_hours

MAX_DAYS = 800  # give up looking for business time after this many days (e.g. all holidays)


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
        if day in bh.holiday_dates:
            continue
        weekday = day.weekday()
        for w in bh.ordered_windows:
            if w.day != weekday:
                continue
            start, stop = w.start_minute, w.end_minute
            begin = _local(day, start, bh.zone)
            end_day = day if stop > start else day + timedelta(days=1)
            end = _local(end_day, stop, bh.zone) if stop != DAY_MINUTES else _local(
                day + timedelta(days=1), 0, bh.zone
            )
            if end > begin:
                yield begin, end


def add_business_minutes(start: datetime, minutes: int, hours: BusinessHours | dict) -> datetime | None:
    """The instant ``minutes`` of business time after ``start`` (aware), or None if never.

    Raises models.business_hours.InvalidBusinessHours when ``hours`` cannot be read.
    """
    bh = parse_business_hours(hours)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    start = start.astimezone(timezone.utc)
    remaining = timedelta(minutes=minutes)
    # start a day early so an overnight window that began yesterday is seen
    first_day = start.astimezone(bh.zone).date() - timedelta(days=1)
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


def due_at(start: datetime, minutes: int | None, business_hours: BusinessHours | dict | None) -> datetime | None:
    """Due time of a target: ``start`` + ``minutes`` 24x7, or in business hours when given."""
    if minutes is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    if not business_hours:
        return start + timedelta(minutes=minutes)
    return add_business_minutes(start, minutes, business_hours)
