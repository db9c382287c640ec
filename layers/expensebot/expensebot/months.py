"""A month named in a command's argument (`/export 2026-03`): parsed strictly, with the reason when it is not
one, so the reply can say what is wrong instead of silently using another month."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import AfterValidator

_YEAR_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
# With `other_forms`, what people also write: 2026.11, 2026/11, 11.2026, 11/2026.
_YEAR_FIRST = re.compile(r"(\d{4})[-./](\d{1,2})")
_MONTH_FIRST = re.compile(r"(\d{1,2})[-./](\d{4})")


class NotAMonth(ValueError):
    """`text` is not YYYY-MM (`reason` "format"), or its month is not 1 to 12 (`reason` "month")."""

    def __init__(self, text: str, reason: str, year: int | None = None) -> None:
        super().__init__(f"not a month ({reason}): {text!r}")
        self.text = text
        self.reason = reason
        self.year = year


def parse_month(text: str, *, other_forms: bool = False) -> date:
    """The first day of the month a command's argument names: `2026-03` (also `2026-3`); with `other_forms`,
    `2026.03`, `2026/03`, `03.2026` and `03/2026` too (/report takes them; /export asks for the hyphen)."""
    text = text.strip()
    if match := (_YEAR_FIRST if other_forms else _YEAR_MONTH).fullmatch(text):
        year, month = int(match[1]), int(match[2])
    elif other_forms and (match := _MONTH_FIRST.fullmatch(text)):
        month, year = int(match[1]), int(match[2])
    else:
        raise NotAMonth(text, "format")
    if not 1 <= month <= 12:
        raise NotAMonth(text, "month", year)
    if year < 1970:
        # date() would take it, but no expense of this bot is that old: a typo, said as one.
        raise NotAMonth(text, "format")
    return date(year, month, 1)


def _first_of_month(month: date) -> date:
    if month.day != 1:
        raise ValueError(f"month must be given by its first day, not {month.isoformat()}")
    return month


# A task's `month` argument: a month travels on a queue as its first day, and any other day is refused.
FirstOfMonth = Annotated[date, AfterValidator(_first_of_month)]
