"""SLA due times: 24x7 and business hours (timezone, weekly windows, overnight, holidays, DST)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from models.business_hours import InvalidBusinessHours, parse_business_hours
from routing.sla import add_business_minutes, due_at

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = {
    "timezone": "Europe/Berlin",
    "windows": [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)],
    "holidays": ["2026-12-24", "2026-12-25"],
}


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def test_without_business_hours_minutes_run_around_the_clock():
    start = datetime(2026, 11, 28, 23, 30, tzinfo=timezone.utc)  # a Saturday night
    assert due_at(start, 90, None) == start + timedelta(minutes=90)


def test_no_target_means_no_due_time():
    assert due_at(datetime(2026, 1, 1, tzinfo=timezone.utc), None, WEEKDAYS_9_TO_5) is None


def test_inside_a_window_the_clock_runs_from_arrival():
    assert add_business_minutes(berlin(2026, 11, 25, 10, 0), 120, WEEKDAYS_9_TO_5) == berlin(2026, 11, 25, 12, 0)


def test_time_left_at_closing_carries_over_to_the_next_morning():
    assert add_business_minutes(berlin(2026, 11, 25, 16, 0), 120, WEEKDAYS_9_TO_5) == berlin(2026, 11, 26, 10, 0)


def test_mail_arriving_overnight_counts_from_opening_time():
    assert add_business_minutes(berlin(2026, 11, 25, 22, 0), 30, WEEKDAYS_9_TO_5) == berlin(2026, 11, 26, 9, 30)
    assert add_business_minutes(berlin(2026, 11, 26, 6, 0), 30, WEEKDAYS_9_TO_5) == berlin(2026, 11, 26, 9, 30)


def test_weekends_are_skipped():
    friday_afternoon = berlin(2026, 11, 27, 16, 30)
    assert add_business_minutes(friday_afternoon, 60, WEEKDAYS_9_TO_5) == berlin(2026, 11, 30, 9, 30)
    saturday = berlin(2026, 11, 28, 12, 0)
    assert add_business_minutes(saturday, 60, WEEKDAYS_9_TO_5) == berlin(2026, 11, 30, 10, 0)


def test_holidays_are_skipped():
    # Wed 23 Dec 16:00 + 2h: Thu 24 and Fri 25 are holidays, then the weekend: Mon 28 Dec 10:00
    assert add_business_minutes(berlin(2026, 12, 23, 16, 0), 120, WEEKDAYS_9_TO_5) == berlin(2026, 12, 28, 10, 0)


def test_several_days_of_business_time():
    # 40 business hours from Monday 9:00 is the next Monday 9:00... minus nothing: end of Friday
    assert add_business_minutes(berlin(2026, 11, 23, 9, 0), 40 * 60, WEEKDAYS_9_TO_5) == berlin(2026, 11, 27, 17, 0)


def test_the_arrival_time_zone_does_not_matter():
    utc_arrival = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)  # 16:00 in Berlin
    assert add_business_minutes(utc_arrival, 120, WEEKDAYS_9_TO_5) == berlin(2026, 11, 26, 10, 0)


def test_windows_are_wall_clock_times_across_daylight_saving_changes():
    hours = {"timezone": "America/New_York",
             "windows": [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)]}
    # DST ends on Sunday 1 Nov 2026 in New York: Friday 16:00 EDT + 2h = Monday 10:00 EST
    due = add_business_minutes(datetime(2026, 10, 30, 16, 0, tzinfo=NEW_YORK), 120, hours)
    assert due == datetime(2026, 11, 2, 10, 0, tzinfo=NEW_YORK)
    assert due == datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)  # EST is UTC-5


def test_a_window_spanning_a_spring_forward_change_is_one_hour_shorter():
    hours = {"timezone": "Europe/Berlin", "windows": [{"day": 6, "start": "00:00", "end": "06:00"}]}
    # Sunday 29 March 2026: 02:00 -> 03:00; the window holds 5 real hours
    start = berlin(2026, 3, 29, 0, 0)
    assert add_business_minutes(start, 5 * 60, hours) == berlin(2026, 3, 29, 6, 0)
    assert add_business_minutes(start, 5 * 60 + 1, hours) == berlin(2026, 4, 5, 0, 1)


def test_overnight_windows_run_into_the_next_day():
    night_shift = {"timezone": "Europe/Berlin", "windows": [{"day": 0, "start": "22:00", "end": "06:00"}]}
    assert add_business_minutes(berlin(2026, 11, 23, 23, 0), 120, night_shift) == berlin(2026, 11, 24, 1, 0)
    # arriving Tuesday 02:00, inside Monday's night window
    assert add_business_minutes(berlin(2026, 11, 24, 2, 0), 60, night_shift) == berlin(2026, 11, 24, 3, 0)


def test_end_of_day_can_be_written_24_00():
    late = {"timezone": "UTC", "windows": [{"day": 2, "start": "20:00", "end": "24:00"}]}
    start = datetime(2026, 11, 25, 23, 0, tzinfo=timezone.utc)  # a Wednesday
    assert add_business_minutes(start, 60, late) == datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)


def test_business_hours_without_windows_are_refused():
    with pytest.raises(InvalidBusinessHours, match="windows"):
        add_business_minutes(berlin(2026, 1, 1), 10, {"timezone": "UTC", "windows": []})


def test_routing_reads_business_hours_with_the_api_rules():
    """One definition (models.business_hours): what the SLA API refuses, routing refuses too."""
    from admin_api.schemas import SlaCreate

    overlapping = {"timezone": "UTC", "windows": [{"day": 0, "start": "09:00", "end": "17:00"},
                                                  {"day": 0, "start": "12:00", "end": "18:00"}]}
    with pytest.raises(ValueError, match="overlap"):
        SlaCreate(name="x", resolution_minutes=60, business_hours=overlapping)
    with pytest.raises(InvalidBusinessHours, match="overlap"):
        parse_business_hours(overlapping)


@pytest.mark.parametrize("bad, words", [
    ({"timezone": "Mars/Olympus", "windows": []}, "unknown timezone"),
    ({"timezone": "UTC", "windows": [{"day": 1, "start": "09:00", "end": "09:00"}]}, "empty"),
    ({"windows": [{"day": 7, "start": "09:00", "end": "17:00"}]}, "windows[0].day"),
    ({"windows": [{"day": 1, "start": "9am", "end": "17:00"}]}, "windows[0].start"),
    ({"windows": [{"day": 1, "start": "09:00", "end": "25:00"}]}, "windows[0].end"),
    ({"windows": [], "holidays": ["christmas"]}, "holidays[0]"),
])
def test_unreadable_business_hours_are_refused_naming_the_problem(bad, words):
    with pytest.raises(InvalidBusinessHours, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_business_hours(bad)
