"""Reading what users type: an expense is an amount and a description in either order
("250 кофе", "кофе 250", "250,50 такси"). Pure functions; the bot turns their errors into replies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MAX_AMOUNT = Decimal("1000000000")
MAX_DESCRIPTION_LENGTH = 200

_NUMBER_LIKE = re.compile(r"^[-+]?\d[\d\s]*(?:[.,]\d+)?$|^[-+]?[.,]\d+$")


class InvalidInput(ValueError):
    """What the user typed cannot be taken; `reason` names a text key, `value` what was typed."""

    def __init__(self, reason: str, value: str = "") -> None:
        super().__init__(f"{reason}: {value}")
        self.reason = reason
        self.value = value


@dataclass(frozen=True)
class ExpenseInput:
    amount: Decimal
    description: str


def parse_amount(text: str) -> Decimal:
    raw = text.strip().replace(" ", "").replace("\u00a0", "")
    if not _NUMBER_LIKE.match(raw):
        raise InvalidInput("reason_not_a_number", text)
    normalized = raw.replace(",", ".")
    try:
        amount = Decimal(normalized)
    except InvalidOperation as exc:
        raise InvalidInput("reason_not_a_number", text) from exc
    if not amount.is_finite():
        raise InvalidInput("reason_not_a_number", text)
    if amount <= 0:
        raise InvalidInput("reason_not_positive", text)
    if amount > MAX_AMOUNT:
        raise InvalidInput("reason_too_large", text)
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidInput("reason_too_many_decimals", text)
    return amount.quantize(Decimal("0.01"))


def looks_like_number(token: str) -> bool:
    return bool(_NUMBER_LIKE.match(token.strip()))


def parse_expense(text: str) -> ExpenseInput | None:
    """None when the text is not an expense at all (no number at either end)."""
    words = text.strip().split()
    if len(words) < 2:
        return None
    if looks_like_number(words[0]):
        amount_token, description_words = words[0], words[1:]
    elif looks_like_number(words[-1]):
        amount_token, description_words = words[-1], words[:-1]
    else:
        return None
    description = " ".join(description_words)
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput("description_too_long", description)
    return ExpenseInput(amount=parse_amount(amount_token), description=description)
