"""Calendar arithmetic in the application's time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def month_start(instant: datetime, tz: ZoneInfo) -> datetime:
    """The first instant of the month `instant` falls in, as the zone's calendar has it."""
    local = instant.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# A budget's period: a calendar day, a week from Monday, or a calendar month, all in the application's zone.
PERIODS = ("day", "week", "month")

# The three periods that contain the instant %(as_of)s, as the calendar of the zone %(tz)s has them: each
# one's first instant (timestamptz), its first day (the key alerts are remembered under) and the days left in
# it counting today. PostgreSQL's date_trunc starts weeks on Monday (ISO 8601). The truncation and the
# arithmetic are done on the zone's wall clock (timestamp without time zone) and converted back only at the
# end, so a day or a month across a DST change still starts at its local midnight. A subquery for the
# statements that check budgets: every caller computes the periods the same way, in SQL, from one `as_of`.
PERIOD_BOUNDS_SQL = """
SELECT p.period,
       date_trunc(p.period, local.wall) AT TIME ZONE %(tz)s AS starts_at,
       date_trunc(p.period, local.wall)::date AS period_start,
       (date_trunc(p.period, local.wall) + ('1 ' || p.period)::interval)::date - local.wall::date AS days_left
  FROM (VALUES ('day'), ('week'), ('month')) AS p (period)
 CROSS JOIN (SELECT %(as_of)s::timestamptz AT TIME ZONE %(tz)s AS wall) AS local
"""
