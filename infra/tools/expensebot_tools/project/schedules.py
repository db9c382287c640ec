"""When EventBridge Scheduler fires a schedule: every fire time of a `cron(...)` or `rate(...)` expression in a
window, as timezone-aware datetimes.

The rule, as AWS documents it for Scheduler:
- `cron(minutes hours day-of-month month day-of-week year)` is read in the schedule's
  ScheduleExpressionTimezone (UTC when none). Fields take `*`, lists `a,b`, ranges `a-b`, steps `a/n` and
  `a-b/n`; months JAN-DEC or 1-12; day-of-week SUN-SAT or 1-7 (SUN = 1). One of day-of-month and day-of-week
  must be `?`. Day-of-month also takes `L` (last day), `L-n` (n days before it) and `nW` (the weekday nearest
  day n, within the month); day-of-week takes `nL` (the last such weekday of the month) and `n#k` (the k-th).
- Daylight saving: a local time skipped by the spring change does not fire; a local time repeated by the
  autumn change fires once, at its first occurrence.
- `rate(n minute|minutes|hour|hours|day|days)` fires every n units from its start, which for a simulation is
  the window's start (a deployed rate schedule counts from its creation); rates ignore the time zone.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

MONTHS = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
WEEKDAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


class ScheduleExpressionError(ValueError):
    """An expression Scheduler would reject."""


def _number(text: str, names: dict[str, int], low: int, high: int, expression: str) -> int:
    value = names.get(text.upper()) if names else None
    if value is None:
        if not text.isdigit():
            raise ScheduleExpressionError(f"{expression}: {text!r} is not a value in {low}-{high}")
        value = int(text)
    if not low <= value <= high:
        raise ScheduleExpressionError(f"{expression}: {value} is outside {low}-{high}")
    return value


def _values(field: str, low: int, high: int, expression: str, names: dict[str, int] | None = None) -> frozenset[int]:
    """The set of values a plain field (no L, W, #) allows."""
    found: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleExpressionError(f"{expression}: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            left, right = base.split("-", 1)
            first = _number(left, names or {}, low, high, expression)
            last = _number(right, names or {}, low, high, expression)
            if last < first:
                raise ScheduleExpressionError(f"{expression}: range {base!r} runs backwards")
        else:
            first = _number(base, names or {}, low, high, expression)
            last = high if step_text else first
        found.update(range(first, last + 1, step))
    return frozenset(found)


def _aws_weekday(day: date) -> int:
    return day.isoweekday() % 7 + 1  # SUN=1 ... SAT=7


@dataclass(frozen=True)
class CronExpression:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    day_of_month: str
    months: frozenset[int]
    day_of_week: str
    years: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronExpression:
        match = re.fullmatch(r"\s*cron\((.*)\)\s*", expression)
        if not match:
            raise ScheduleExpressionError(f"{expression}: not a cron(...) expression")
        fields = match.group(1).split()
        if len(fields) != 6:
            raise ScheduleExpressionError(f"{expression}: cron needs 6 fields, got {len(fields)}")
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise ScheduleExpressionError(f"{expression}: exactly one of day-of-month and day-of-week must be '?'")
        parsed = cls(
            expression=expression,
            minutes=_values(minute, 0, 59, expression),
            hours=_values(hour, 0, 23, expression),
            day_of_month=dom.upper(),
            months=_values(month, 1, 12, expression, MONTHS),
            day_of_week=dow.upper(),
            years=_values(year, 1970, 2199, expression),
        )
        parsed.matches_day(date(2000, 1, 1))  # rejects a malformed day field now rather than mid-run
        return parsed

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months or day.year not in self.years:
            return False
        if self.day_of_month != "?":
            return self._day_of_month_matches(day)
        return self._day_of_week_matches(day)

    def _day_of_month_matches(self, day: date) -> bool:
        field = self.day_of_month
        last = calendar.monthrange(day.year, day.month)[1]
        if field == "L":
            return day.day == last
        if m := re.fullmatch(r"L-(\d+)", field):
            return day.day == last - int(m.group(1))
        if field == "LW":
            return day == _nearest_weekday(day.year, day.month, last)
        if m := re.fullmatch(r"(\d+)W", field):
            wanted = _number(m.group(1), {}, 1, 31, self.expression)
            return wanted <= last and day == _nearest_weekday(day.year, day.month, wanted)
        return day.day in _values(field, 1, 31, self.expression)

    def _day_of_week_matches(self, day: date) -> bool:
        field = self.day_of_week
        weekday = _aws_weekday(day)
        last = calendar.monthrange(day.year, day.month)[1]
        if field == "L":
            return weekday == 7
        if m := re.fullmatch(r"(\w+)L", field):
            return weekday == _number(m.group(1), WEEKDAYS, 1, 7, self.expression) and day.day + 7 > last
        if m := re.fullmatch(r"(\w+)#(\d)", field):
            nth = _number(m.group(2), {}, 1, 5, self.expression)
            return weekday == _number(m.group(1), WEEKDAYS, 1, 7, self.expression) and (day.day - 1) // 7 + 1 == nth
        return weekday in _values(field, 1, 7, self.expression, WEEKDAYS)

    def local_times(self, first_day: date, last_day: date) -> Iterator[datetime]:
        """Naive local times the expression names, day by day from first_day to last_day inclusive."""
        day = first_day
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        while day <= last_day:
            if self.matches_day(day):
                for hour in hours:
                    for minute in minutes:
                        yield datetime(day.year, day.month, day.day, hour, minute)
            day += timedelta(days=1)


def _nearest_weekday(year: int, month: int, day_number: int) -> date:
    """`nW`: the weekday (Mon-Fri) nearest the given day, never crossing into another month."""
    day = date(year, month, day_number)
    if day.weekday() == 5:  # Saturday → Friday, unless that leaves the month
        return day - timedelta(days=1) if day_number > 1 else day + timedelta(days=2)
    if day.weekday() == 6:  # Sunday → Monday, unless that leaves the month
        last = calendar.monthrange(year, month)[1]
        return day + timedelta(days=1) if day_number < last else day - timedelta(days=2)
    return day


def _existing_instant(local: datetime, zone: tzinfo) -> datetime | None:
    """The instant a naive local time names in the zone: None if the spring change skips it, the first
    occurrence if the autumn change repeats it."""
    aware = local.replace(tzinfo=zone, fold=0)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        return None
    return aware


def fire_times(expression: str, timezone: str | tzinfo | None, start: datetime, end: datetime) -> list[datetime]:
    """Every time Scheduler fires the expression in [start, end), ascending, aware in the schedule's zone."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("fire_times needs timezone-aware start and end")
    zone = ZoneInfo(timezone) if isinstance(timezone, str) else (timezone or UTC)
    text = expression.strip()
    if text.startswith("rate("):
        return _rate_times(text, start, end, zone)
    if text.startswith("at("):
        return _at_times(text, start, end, zone)
    cron = CronExpression.parse(text)
    if end <= start:
        return []
    # A day of margin on each side: the window's ends may fall on other local dates than in UTC.
    first_day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    found = []
    for local in cron.local_times(first_day, last_day):
        instant = _existing_instant(local, zone)
        if instant is not None and start <= instant < end:
            found.append(instant)
    return found


def _rate_times(text: str, start: datetime, end: datetime, zone: tzinfo) -> list[datetime]:
    match = re.fullmatch(r"rate\(\s*(\d+)\s+(\w+)\s*\)", text)
    if not match or match.group(2) not in RATE_UNITS or int(match.group(1)) < 1:
        raise ScheduleExpressionError(f"{text}: expected rate(<n> minute(s)|hour(s)|day(s))")
    value, unit = int(match.group(1)), match.group(2)
    if (value == 1) != (not unit.endswith("s")):
        raise ScheduleExpressionError(f"{text}: use '{unit.rstrip('s')}' with 1 and '{unit.rstrip('s')}s' otherwise")
    step = timedelta(seconds=value * RATE_UNITS[unit])
    found = []
    moment = start.astimezone(UTC)
    while moment < end:
        found.append(moment.astimezone(zone))
        moment += step
    return found


def _at_times(text: str, start: datetime, end: datetime, zone: tzinfo) -> list[datetime]:
    match = re.fullmatch(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)", text)
    if not match:
        raise ScheduleExpressionError(f"{text}: expected at(yyyy-mm-ddThh:mm:ss)")
    instant = _existing_instant(datetime.fromisoformat(match.group(1)), zone)
    return [instant] if instant is not None and start <= instant < end else []
