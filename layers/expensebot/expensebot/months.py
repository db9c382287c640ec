"""A month named in a command's argument (`/export 2026-03`): parsed strictly, with the reason when it is not
one, so the reply can say what is wrong instead of silently using another month."""

from __future__ import annotations

import re
from datetime import date

_YEAR_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


class NotAMonth(ValueError):
    """`text` is not YYYY-MM (`reason` "format"), or its month is not 1 to 12 (`reason` "month")."""

    def __init__(self, text: str, reason: str, year: int | None = None) -> None:
        super().__init__(f"not a month ({reason}): {text!r}")
        self.text = text
        self.reason = reason
        self.year = year


def parse_month(text: str) -> date:
    """The first day of the month `YYYY-MM` names (`2026-03`, also `2026-3`)."""
    match = _YEAR_MONTH.fullmatch(text.strip())
    if match is None:
        raise NotAMonth(text.strip(), "format")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        raise NotAMonth(text.strip(), "month", year)
    if year < 1970:
        # date() would take it, but no expense of this bot is that old: a typo, said as one.
        raise NotAMonth(text.strip(), "format")
    return date(year, month, 1)
