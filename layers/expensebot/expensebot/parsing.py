"""Reading what users type: an expense is an amount and a description in either order
("250 кофе", "кофе 250", "250,50 такси"); a recurring payment is a day of the month, an amount and a
description ("5 30000 аренда"). Pure functions; the bot turns their errors into replies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MAX_AMOUNT = Decimal("1000000000")
MAX_DESCRIPTION_LENGTH = 200
# Echoed in replies ("The amount «…» does not work"): a 4,000-character word must not make the reply
# longer than Telegram's 4,096 characters.
MAX_ECHOED_VALUE = 40
# Telegram delivers no message text longer than this (https://core.telegram.org/bots/api#sendmessage:
# "1-4096 characters"); anything longer did not come from Telegram and is refused before it is parsed.
MAX_TEXT_LENGTH = 4096

# Amounts are written with the ASCII digits 0-9 only (re.ASCII: `\d` would also take "١٢٣" or "１２３",
# which Decimal reads as 123, so a user's keyboard layout could silently decide what is stored).
_NUMBER_SHAPE = r"^[-+]?\d[\d\s]*(?:[.,]\d+)?$|^[-+]?[.,]\d+$"
_NUMBER_LIKE = re.compile(_NUMBER_SHAPE, re.ASCII)
# The same shape with any script's decimal digits: what is refused with "write it with 0-9" rather than
# "not a number".
_NUMBER_LIKE_ANY_DIGITS = re.compile(_NUMBER_SHAPE)
# "1 000 кофе": Russian writes thousands with spaces, so an amount may span several words.
_LEADING_GROUP = re.compile(r"^[-+]?\d{1,3}$", re.ASCII)
_THOUSANDS_GROUP = re.compile(r"^\d{3}(?:[.,]\d+)?$", re.ASCII)
_WHOLE_NUMBER = re.compile(r"^[+-]?[0-9]+$")


class InvalidInput(ValueError):
    """What the user typed cannot be taken; `reason` names a text key, `value` what was typed."""

    def __init__(self, reason: str, value: str = "") -> None:
        if len(value) > MAX_ECHOED_VALUE:
            value = value[: MAX_ECHOED_VALUE - 1] + "…"
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
        if _NUMBER_LIKE_ANY_DIGITS.match(raw):
            raise InvalidInput("reason_ascii_digits_only", text)
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


def parse_day(text: str) -> int:
    """A day of the month, 1-31: a payment on the 31st falls on a shorter month's last day."""
    raw = text.strip()
    if not _WHOLE_NUMBER.match(raw):
        raise InvalidInput("day_not_a_number", text)
    day = int(raw)
    if not 1 <= day <= 31:
        raise InvalidInput("day_out_of_range", text)
    return day


def parse_id(text: str) -> int | None:
    """A record's id as the bot lists it ("7" or "#7"); None when the text is not one."""
    raw = text.strip().removeprefix("#")
    # Ids are bigserial: anything longer than 18 digits cannot be one and would overflow bigint.
    return int(raw) if _WHOLE_NUMBER.match(raw) and raw[0] not in "+-" and len(raw) <= 18 else None


def looks_like_number(token: str) -> bool:
    return bool(_NUMBER_LIKE.match(token.strip()))


def _refuse_other_digits(word: str) -> None:
    """"١٢٣ кофе" is meant as an expense: say how to write the amount rather than "I did not understand"."""
    if not looks_like_number(word) and _NUMBER_LIKE_ANY_DIGITS.match(word):
        raise InvalidInput("reason_ascii_digits_only", word)


def parse_expense(text: str) -> ExpenseInput | None:
    """None when the text is not an expense at all (no number at either end). Linear in the text's length
    (the webhook has seconds, and a 4,096-character text may hold a thousand words)."""
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput("text_too_long", "")
    words = text.strip().split()
    if len(words) < 2:
        return None
    leading = _amount_words(words)
    trailing = _amount_words(words, from_end=True)
    if leading:
        amount_token, description_words = " ".join(words[:leading]), words[leading:]
    elif trailing:
        amount_token, description_words = " ".join(words[-trailing:]), words[:-trailing]
    else:
        _refuse_other_digits(words[0])
        _refuse_other_digits(words[-1])
        return None
    description = " ".join(description_words)
    if not any(ch.isalpha() for ch in description):
        return None  # "1 000" or "5 10": numbers only, nothing says what was bought
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput("description_too_long", description)
    return ExpenseInput(amount=parse_amount(amount_token), description=description)


@dataclass(frozen=True)
class RecurringInput:
    day: int
    amount: Decimal
    description: str


def parse_recurring(text: str) -> RecurringInput | None:
    """`<day> <amount> <description>`, e.g. "5 30 000 аренда"; None when the shape is not that at all
    (too few words, or nothing says what is paid), so the bot shows how to write it."""
    words = text.strip().split()
    if len(words) < 3:
        return None
    day = parse_day(words[0])
    rest = words[1:]
    if not looks_like_number(rest[0]):
        raise InvalidInput("reason_not_a_number", rest[0])
    count = _amount_words(rest)
    description = " ".join(rest[count:])
    if not any(ch.isalpha() for ch in description):
        return None
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput("description_too_long", description)
    return RecurringInput(day=day, amount=parse_amount(" ".join(rest[:count])), description=description)


def _amount_words(words: list[str], *, from_end: bool = False) -> int:
    """How many words at the start (or the end) make the amount, 0 when none do; at least one word is
    always left for the description. "1 000 000 такси" → 3, "кофе 12 500,50" → 3 from the end."""
    edge = words[-1] if from_end else words[0]
    if not looks_like_number(edge):
        return 0
    if from_end:
        # The longest suffix "head group group …" (one word left for the description): find the run of
        # thousands groups at the end in one pass, then the longest head inside or just before it. Trying
        # every suffix length and re-checking its groups each time was quadratic: "x 000 000 … 1".
        run = 0
        while run < len(words) - 1 and _THOUSANDS_GROUP.match(words[-1 - run]):
            run += 1
        for count in range(min(run + 1, len(words) - 1), 1, -1):
            if _LEADING_GROUP.match(words[-count]):
                return count
        return 1
    count = 1
    if _LEADING_GROUP.match(words[0]):
        while count < len(words) - 1 and _THOUSANDS_GROUP.match(words[count]):
            count += 1
    return count
