"""The schedule engine against Scheduler's documented rules, including daylight-saving changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from expensebot_tools.project.schedules import ScheduleExpressionError, fire_times
from expensebot_tools.project.template import Template

MOSCOW = ZoneInfo("Europe/Moscow")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
BERLIN = ZoneInfo("Europe/Berlin")


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


def stamps(times: list[datetime]) -> list[str]:
    return [t.strftime("%Y-%m-%d %H:%M %z") for t in times]


def test_every_half_hour_over_a_march_in_moscow_fires_1488_times_on_the_hour_and_half_hour():
    times = fire_times("cron(0/30 * * * ? *)", "Europe/Moscow", local(MOSCOW, 2026, 3, 1), local(MOSCOW, 2026, 4, 1))
    assert len(times) == 31 * 48
    assert times[0] == local(MOSCOW, 2026, 3, 1, 0, 0)
    assert times[-1] == local(MOSCOW, 2026, 3, 31, 23, 30)
    assert all(t.minute in (0, 30) for t in times)
    assert times == sorted(times)


def test_the_window_is_half_open_and_fire_times_carry_the_schedules_zone():
    times = fire_times("cron(0 20 * * ? *)", "Europe/Moscow", local(MOSCOW, 2026, 3, 1, 20),
                       local(MOSCOW, 2026, 3, 3, 20))
    assert stamps(times) == ["2026-03-01 20:00 +0300", "2026-03-02 20:00 +0300"]


def test_a_window_given_in_utc_is_read_against_the_schedules_own_zone():
    times = fire_times("cron(0 3 * * ? *)", "Europe/Moscow", datetime(2026, 3, 1, 23, tzinfo=UTC),
                       datetime(2026, 3, 2, 1, tzinfo=UTC))
    assert stamps(times) == ["2026-03-02 03:00 +0300"]


def test_sundays_by_name_and_by_number_are_the_same_days():
    window = (local(MOSCOW, 2026, 3, 1), local(MOSCOW, 2026, 4, 1))
    by_name = fire_times("cron(0 3 ? * SUN *)", "Europe/Moscow", *window)
    assert by_name == fire_times("cron(0 3 ? * 1 *)", "Europe/Moscow", *window)
    assert [t.day for t in by_name] == [1, 8, 15, 22, 29]
    assert all(t.weekday() == 6 for t in by_name)


def test_weekday_ranges_lists_and_month_names():
    window = (local(UTC, 2026, 3, 1), local(UTC, 2026, 3, 15))
    weekdays = fire_times("cron(0 9 ? MAR MON-FRI *)", "UTC", *window)
    assert [t.day for t in weekdays] == [2, 3, 4, 5, 6, 9, 10, 11, 12, 13]
    assert [t.day for t in fire_times("cron(0 9 ? * 2,4,6 *)", "UTC", *window)] == [2, 4, 6, 9, 11, 13]
    assert fire_times("cron(0 9 * APR ? *)", "UTC", *window) == []


def test_minute_and_hour_lists_ranges_and_steps():
    window = (local(UTC, 2026, 3, 2), local(UTC, 2026, 3, 3))
    assert [(t.hour, t.minute) for t in fire_times("cron(15,45 8-9 * * ? *)", "UTC", *window)] == [
        (8, 15), (8, 45), (9, 15), (9, 45)]
    assert [t.hour for t in fire_times("cron(0 8-20/4 * * ? *)", "UTC", *window)] == [8, 12, 16, 20]
    assert [t.minute for t in fire_times("cron(10/20 0 * * ? *)", "UTC", *window)] == [10, 30, 50]
    assert [t.hour for t in fire_times("cron(0 */6 * * ? *)", "UTC", *window)] == [0, 6, 12, 18]


def test_last_day_of_month_in_a_leap_and_a_common_february_and_in_a_31_day_month():
    assert stamps(fire_times("cron(0 20 L * ? *)", "Europe/Moscow", local(MOSCOW, 2027, 12, 1),
                             local(MOSCOW, 2028, 4, 1))) == [
        "2027-12-31 20:00 +0300", "2028-01-31 20:00 +0300", "2028-02-29 20:00 +0300", "2028-03-31 20:00 +0300"]
    assert [t.day for t in fire_times("cron(0 20 L 2 ? *)", "UTC", local(UTC, 2026, 1, 1), local(UTC, 2027, 1, 1))] == [
        28]


def test_last_weekday_nth_weekday_and_nearest_weekday():
    window = (local(UTC, 2026, 5, 1), local(UTC, 2026, 6, 1))
    assert [t.day for t in fire_times("cron(0 9 ? * 6L *)", "UTC", *window)] == [29]  # last Friday of May 2026
    assert [t.day for t in fire_times("cron(0 9 ? * MON#2 *)", "UTC", *window)] == [11]
    assert [t.day for t in fire_times("cron(0 9 16W * ? *)", "UTC", *window)] == [15]  # the 16th is a Saturday
    assert [t.day for t in fire_times("cron(0 9 LW * ? *)", "UTC", *window)] == [29]  # the 31st is a Sunday
    assert [t.day for t in fire_times("cron(0 9 1W * ? *)", "UTC", local(UTC, 2026, 8, 1), local(UTC, 2026, 9, 1))] == [
        3]  # 1 August 2026 is a Saturday: the nearest weekday inside the month is Monday the 3rd


def test_a_year_field_limits_the_years():
    times = fire_times("cron(0 12 1 1 ? 2027-2028)", "UTC", local(UTC, 2026, 1, 1), local(UTC, 2030, 1, 1))
    assert [t.year for t in times] == [2027, 2028]


def test_new_york_spring_change_skips_the_local_hour_that_does_not_exist():
    # 8 March 2026: clocks go from 02:00 to 03:00.
    times = fire_times("cron(0/30 * * * ? *)", "America/New_York", local(NEW_YORK, 2026, 3, 8, 1),
                       local(NEW_YORK, 2026, 3, 8, 4))
    assert stamps(times) == ["2026-03-08 01:00 -0500", "2026-03-08 01:30 -0500",
                             "2026-03-08 03:00 -0400", "2026-03-08 03:30 -0400"]
    daily = fire_times("cron(30 2 * * ? *)", "America/New_York", local(NEW_YORK, 2026, 3, 7),
                       local(NEW_YORK, 2026, 3, 10))
    assert [t.day for t in daily] == [7, 9]


def test_new_york_autumn_change_fires_a_repeated_local_time_once():
    # 1 November 2026: 01:00-02:00 happens twice (EDT, then EST).
    start, end = datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 8, tzinfo=UTC)
    times = fire_times("cron(0/30 * * * ? *)", "America/New_York", start, end)
    assert stamps(times) == ["2026-11-01 00:00 -0400", "2026-11-01 00:30 -0400", "2026-11-01 01:00 -0400",
                             "2026-11-01 01:30 -0400", "2026-11-01 02:00 -0500", "2026-11-01 02:30 -0500"]
    daily = fire_times("cron(30 1 * * ? *)", "America/New_York", local(NEW_YORK, 2026, 10, 31),
                       local(NEW_YORK, 2026, 11, 3))
    assert stamps(daily) == ["2026-10-31 01:30 -0400", "2026-11-01 01:30 -0400", "2026-11-02 01:30 -0500"]


def test_london_and_berlin_spring_and_autumn_changes():
    london_spring = fire_times("cron(30 1 * * ? *)", "Europe/London", local(LONDON, 2026, 3, 28),
                               local(LONDON, 2026, 3, 31))
    assert stamps(london_spring) == ["2026-03-28 01:30 +0000", "2026-03-30 01:30 +0100"]
    london_autumn = fire_times("cron(30 1 * * ? *)", "Europe/London", local(LONDON, 2026, 10, 24),
                               local(LONDON, 2026, 10, 27))
    assert stamps(london_autumn) == ["2026-10-24 01:30 +0100", "2026-10-25 01:30 +0100", "2026-10-26 01:30 +0000"]
    berlin_day = fire_times("cron(0 * * * ? *)", "Europe/Berlin", local(BERLIN, 2026, 3, 29),
                            local(BERLIN, 2026, 3, 30))
    assert len(berlin_day) == 23 and 2 not in [t.hour for t in berlin_day]
    berlin_autumn_day = fire_times("cron(0 * * * ? *)", "Europe/Berlin", local(BERLIN, 2026, 10, 25),
                                   local(BERLIN, 2026, 10, 26))
    assert len(berlin_autumn_day) == 24  # 25 hours long, yet 02:00 fires once


def test_fire_times_are_strictly_increasing_across_a_whole_year_with_both_changes():
    times = fire_times("cron(0/30 * * * ? *)", "Europe/Berlin", local(BERLIN, 2026, 1, 1), local(BERLIN, 2027, 1, 1))
    assert all(b > a for a, b in itertools.pairwise(times))
    assert len(times) == 365 * 48 - 2  # spring loses two half-hours; autumn adds none
    assert len({t.astimezone(UTC) for t in times}) == len(times)


def test_rate_expressions_count_from_the_window_start():
    start = local(MOSCOW, 2026, 3, 1, 0, 7)
    times = fire_times("rate(20 minutes)", "Europe/Moscow", start, start + timedelta(hours=1))
    assert [t - start for t in times] == [timedelta(0), timedelta(minutes=20), timedelta(minutes=40)]
    assert len(fire_times("rate(1 day)", "UTC", start, start + timedelta(days=3))) == 3
    assert len(fire_times("rate(2 hours)", None, start, start + timedelta(hours=5))) == 3


def test_a_one_time_at_expression_fires_once_inside_the_window():
    window = (local(MOSCOW, 2026, 3, 1), local(MOSCOW, 2026, 4, 1))
    assert stamps(fire_times("at(2026-03-10T09:15:00)", "Europe/Moscow", *window)) == ["2026-03-10 09:15 +0300"]
    assert fire_times("at(2026-05-10T09:15:00)", "Europe/Moscow", *window) == []


def test_an_empty_or_reversed_window_fires_nothing():
    start = local(MOSCOW, 2026, 3, 1)
    assert fire_times("cron(0/30 * * * ? *)", "Europe/Moscow", start, start) == []
    assert fire_times("cron(0/30 * * * ? *)", "Europe/Moscow", start, start - timedelta(days=1)) == []


@pytest.mark.parametrize("expression", [
    "cron(0 12 * * * *)",         # both day fields given
    "cron(0 12 ? * ? *)",         # neither
    "cron(0 12 * * ?)",           # five fields
    "cron(60 12 * * ? *)",        # minute out of range
    "cron(0 24 * * ? *)",
    "cron(0 12 ? * MOO *)",
    "cron(0 12 ? * 8 *)",
    "cron(0 12 32 * ? *)",
    "cron(0 12 * 13 ? *)",
    "cron(0/0 12 * * ? *)",
    "cron(0 20-10 * * ? *)",
    "cron(0 12 ? * MON#6 *)",
    "rate(0 minutes)",
    "rate(1 minutes)",
    "rate(5 minute)",
    "rate(5 weeks)",
    "every day",
])
def test_expressions_scheduler_would_reject_are_rejected(expression):
    with pytest.raises(ScheduleExpressionError):
        fire_times(expression, "UTC", local(UTC, 2026, 3, 1), local(UTC, 2026, 3, 2))


def test_a_naive_window_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        fire_times("cron(0 12 * * ? *)", "UTC", datetime(2026, 3, 1), local(UTC, 2026, 3, 2))


def test_every_schedule_of_the_template_parses_and_fires_as_its_description_says():
    template = Template()
    zone = template.parameter_defaults()["TimeZone"]
    window = (local(MOSCOW, 2026, 3, 1), local(MOSCOW, 2026, 4, 1))
    counts = {s.function_id: len(fire_times(s.expression, zone, *window)) for s in template.schedules()}
    assert counts["CheckBudgetLimitsFunction"] == 31 * 48
    assert counts["CleanupOldExpensesFunction"] == 5  # the Sundays of March 2026
    assert counts["SendDailyAdminReportFunction"] == 31


def test_the_simulation_plans_every_enabled_schedule_of_the_template_in_its_time_zone():
    from expensebot_tools.local.simulate import plan_schedules

    planned = plan_schedules(Template(), "Europe/Berlin", local(BERLIN, 2026, 3, 29), local(BERLIN, 2026, 3, 30))
    by_function: dict[str, list[datetime]] = {}
    for happening in planned:
        by_function.setdefault(happening.function_id, []).append(happening.at)
    assert len(by_function["CheckBudgetLimitsFunction"]) == 46  # the 23-hour day of the spring change
    assert stamps(by_function["CleanupOldExpensesFunction"]) == ["2026-03-29 03:00 +0200"]
    assert stamps(by_function["SendMonthlyReportsFunction"]) == ["2026-03-29 20:00 +0200"]
