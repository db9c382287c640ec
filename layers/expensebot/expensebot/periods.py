"""Calendar arithmetic in the application's time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def month_start(instant: datetime, tz: ZoneInfo) -> datetime:
    """The first instant of the month `instant` falls in, as the zone's calendar has it."""
    local = instant.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
