"""Times as operators type them: `24h`, `7d`, `30m` back from now, or an ISO date and time (without a zone, in
the application's zone), and `YYYY-MM` months, all read in the application's zone like the ledger's slots."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from expensebot_tools.console import CliError

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*")


def parse_duration(text: str, option: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d`, `2w`."""
    match = _DURATION.fullmatch(text)
    if not match or int(match.group(1)) == 0:
        raise CliError(f"{option} {text!r} is not a duration such as 30m, 24h, 7d or 2w")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def parse_moment(text: str, tz: Any, now: datetime, option: str) -> datetime:
    """A duration back from now (`24h`: a day ago), or an ISO date or date and time."""
    if _DURATION.fullmatch(text):
        return now - parse_duration(text, option)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r} is neither a duration back from now (24h, 7d) nor an ISO date "
                       "and time (2026-11-30, 2026-11-30T20:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def parse_month(text: str, tz: Any, option: str = "--month") -> tuple[datetime, datetime]:
    """`2026-11` → [its first instant, the next month's first instant) in the zone."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise CliError(f"{option} {text!r} is not a month such as 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return start, end
