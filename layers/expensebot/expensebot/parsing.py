"""Reading what users type: an expense is an amount and a description in either order
("250 кофе", "кофе 250", "250,50 такси"), the amount with or without its currency before or after it, glued
or not ("$25 обед", "такси 450р", "1 500 ₽ такси", "25 USD обед"); an amount with a "+" is an income
("+50000 зарплата"); a message of several lines is one entry per line; a recurring payment is a day of the
month, an amount and a description ("5 30000 аренда", "10 +50000 зарплата"). Pure functions; the bot turns
their errors into replies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from expensebot.money import CURRENCIES, currency

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

    def __init__(self, reason: str, value: str = "", currency_code: str = "RUB") -> None:
        if len(value) > MAX_ECHOED_VALUE:
            value = value[: MAX_ECHOED_VALUE - 1] + "…"
        super().__init__(f"{reason}: {value}")
        self.reason = reason
        self.value = value
        self.currency = currency_code  # the amount's currency: the reply names its decimals and its maximum


@dataclass(frozen=True)
class ExpenseInput:
    """One entry: an expense, or an income when the amount was written with a "+"."""

    amount: Decimal
    description: str
    currency: str = "RUB"
    income: bool = False


# Amounts are stored as numeric(14, 2): a currency with three decimals (BHD) is kept to two.
STORED_DECIMALS = 2


def parse_amount(text: str, currency_code: str = "RUB") -> Decimal:
    """A positive amount with no more decimals than its currency has (and the storage keeps)."""
    raw = text.strip().replace(" ", "").replace("\u00a0", "")
    code = currency_code

    def refuse(reason: str) -> InvalidInput:
        return InvalidInput(reason, text, code)

    if not _NUMBER_LIKE.match(raw):
        if _NUMBER_LIKE_ANY_DIGITS.match(raw):
            raise refuse("reason_ascii_digits_only")
        raise refuse("reason_not_a_number")
    normalized = raw.replace(",", ".")
    try:
        amount = Decimal(normalized)
    except InvalidOperation as exc:
        raise refuse("reason_not_a_number") from exc
    if not amount.is_finite():
        raise refuse("reason_not_a_number")
    if amount <= 0:
        raise refuse("reason_not_positive")
    if amount > MAX_AMOUNT:
        raise refuse("reason_too_large")
    decimals = min(currency(code).minor_units, STORED_DECIMALS)
    if amount.as_tuple().exponent < -decimals:  # type: ignore[operator]
        # "300,5 ¥": a yen has no fraction; rounding it away would store what the user did not type.
        raise refuse("reason_too_many_decimals" if decimals else "reason_no_decimals")
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


# The words and signs people write for a currency, lower case, without a trailing dot ("руб." → "руб").
# `¥` is CNY: this bot's users are Russian speakers, for whom ¥ is far more often a yuan (trade, travel to
# China) than a yen; "300 JPY" or "300 иен" names the yen. Currency words that are also ordinary words
# ("сом" is a catfish, "сум" a bag in slang) are left out: only the ISO code names those currencies.
_CURRENCY_WORDS: dict[str, str] = {
    **{word: "RUB" for word in ("₽", "р", "руб", "рубль", "рубля", "рублей", "рубли", "rub", "rur", "ruble",
                                "rubles", "rouble", "roubles")},
    **{word: "USD" for word in ("$", "доллар", "доллара", "долларов", "доллары", "бакс", "бакса", "баксов",
                                "баксы", "dollar", "dollars", "bucks")},
    **{word: "EUR" for word in ("€", "евро", "euro", "euros")},
    **{word: "CNY" for word in ("¥", "юань", "юаня", "юаней", "юани", "yuan", "rmb")},
    **{word: "JPY" for word in ("иена", "иены", "иен", "йена", "йены", "йен", "yen")},
    **{word: "KZT" for word in ("₸", "тенге", "tenge")},
    **{word: "UAH" for word in ("₴", "гривна", "гривны", "гривен", "гривня", "гривни", "hryvnia")},
    **{word: "GBP" for word in ("£", "фунт", "фунта", "фунтов", "pound", "pounds")},
    **{word: "BYN" for word in ("br",)},
    **{word: "TRY" for word in ("₺", "лира", "лиры", "лир")},
    **{word: "GEL" for word in ("₾", "лари", "lari")},
    **{word: "AMD" for word in ("֏", "драм", "драма", "драмов")},
    **{word: "KRW" for word in ("₩", "вона", "воны", "вон")},
    **{word: "THB" for word in ("฿", "бат", "бата", "батов", "baht")},
    **{word: "INR" for word in ("₹", "рупия", "рупии", "рупий", "rupee", "rupees")},
    **{word: "ILS" for word in ("₪", "шекель", "шекеля", "шекелей")},
    **{word: "AZN" for word in ("₼", "манат", "маната", "манатов")},
    **{word: "VND" for word in ("₫", "донг", "донга", "донгов")},
}
# ISO codes in any case ("usd", "Eur"), except those that are also common words: "try" is an English word,
# so only "TRY" is the Turkish lira.
_CODES_ONLY_IN_CAPITALS = frozenset({"TRY"})

# A currency glued to the amount: "$25", "€12,50", "+$500" (the sign stays with the number), "25$",
# "450р", "450р.", "1500руб". What is glued is only taken when it is a currency word.
_GLUED_BEFORE = re.compile(r"^([+-]?)([^\d\s.,+-][^\d\s]*?)(\d[\d.,]*)$", re.ASCII)
_GLUED_AFTER = re.compile(r"^([+-]?\d[\d.,]*)([^\d\s.,][^\d\s]*)$", re.ASCII)


def currency_of_word(word: str) -> str | None:
    """The ISO code a word or sign names ("руб." → RUB, "usd" → USD, "¥" → CNY), None when it names none."""
    if word.upper() in CURRENCIES and word.isascii() and word.isalpha():
        if word.upper() not in _CODES_ONLY_IN_CAPITALS or word.isupper():
            return word.upper()
        return None
    folded = word.lower().replace("ё", "е")
    if folded.endswith(".") and len(folded) > 1:
        folded = folded[:-1]
    return _CURRENCY_WORDS.get(folded)


def _split_glued(word: str) -> list[str]:
    """"$25" → ["$", "25"], "450р." → ["450", "р."]; any other word stays whole."""
    before = _GLUED_BEFORE.match(word)
    if before and currency_of_word(before.group(2)):
        return [before.group(2), before.group(1) + before.group(3)]
    after = _GLUED_AFTER.match(word)
    if after and currency_of_word(after.group(2)):
        return [after.group(1), after.group(2)]
    return [word]


def _words(text: str) -> list[str]:
    words: list[str] = []
    for word in text.split():
        words.extend(_split_glued(word))
    return words


def _find_amount(words: list[str]) -> tuple[list[str], str | None, list[str]] | None:
    """The amount's words, the currency word next to it (before or after, or None) and the description's
    words: the amount at the start first ("$25 обед", "25 USD обед"), then at the end ("такси 450 р.")."""
    start = 1 if len(words) > 1 and currency_of_word(words[0]) else 0
    count = _amount_words(words[start:]) if start < len(words) else 0
    if count:
        end = start + count
        word = words[0] if start else None
        if word is None and end < len(words) and currency_of_word(words[end]):
            word, end = words[end], end + 1
        return words[start : start + count], word, words[end:]
    stop = len(words) - 1 if len(words) > 1 and currency_of_word(words[-1]) else len(words)
    count = _amount_words(words[:stop], from_end=True) if stop else 0
    if count:
        begin = stop - count
        word = words[-1] if stop < len(words) else None
        if word is None and begin > 0 and currency_of_word(words[begin - 1]):
            word, begin = words[begin - 1], begin - 1
        return words[stop - count : stop], word, words[:begin]
    return None


def parse_expense(text: str, currency_code: str = "RUB") -> ExpenseInput | None:
    """One line: None when it is not an expense at all (no number at either end). A bare amount is in
    `currency_code` (the user's). Linear in the text's length (the webhook has seconds, and a 4,096-character
    text may hold a thousand words)."""
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput("text_too_long", "")
    stripped = text.strip()
    # "+50000 зарплата", "+ 50000 зарплата": an income.
    income = stripped.startswith("+")
    words = _words(stripped[1:] if income and stripped[1:2].isspace() else stripped)
    if len(words) < 2:
        return None
    found = _find_amount(words)
    if found is None:
        _refuse_other_digits(words[0])
        _refuse_other_digits(words[-1])
        return None
    amount_words, currency_word, description_words = found
    description = " ".join(description_words)
    if not any(ch.isalpha() for ch in description):
        return None  # "1 000" or "5 10" or "25 USD": numbers only, nothing says what was bought
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput("description_too_long", description)
    code = currency_of_word(currency_word) if currency_word else currency_code
    assert code is not None
    amount_text = " ".join(amount_words)
    income = income or amount_text.startswith("+")  # "зарплата +50000"
    return ExpenseInput(amount=parse_amount(amount_text, code), description=description, currency=code,
                        income=income)


@dataclass(frozen=True)
class ParsedLine:
    """One line of a message: what it records, or why not (`entry` None and `error` None: not understood)."""

    number: int  # 1-based, as the user counts the lines
    text: str
    entry: ExpenseInput | None = None
    error: InvalidInput | None = None


# One message records at most this many lines: each gets its own line in the one reply, which must stay
# within Telegram's 4,096 characters.
MAX_LINES = 30


def parse_message(text: str, currency_code: str = "RUB") -> list[ParsedLine]:
    """Every non-empty line of a message, each parsed on its own: "кофе 200\nтакси 450" is two expenses, and
    a line that cannot be read does not cost the others theirs."""
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput("text_too_long", "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_LINES:
        raise InvalidInput("too_many_lines", str(len(lines)))
    results: list[ParsedLine] = []
    for number, line in enumerate(lines, start=1):
        try:
            results.append(ParsedLine(number, line, entry=parse_expense(line, currency_code)))
        except InvalidInput as exc:
            results.append(ParsedLine(number, line, error=exc))
    return results


@dataclass(frozen=True)
class RecurringInput:
    day: int
    amount: Decimal
    description: str
    currency: str = "RUB"
    income: bool = False


def parse_recurring(text: str, currency_code: str = "RUB") -> RecurringInput | None:
    """`<day> <amount> <description>`, e.g. "5 30 000 аренда", "5 $300 аренда", "10 +50000 зарплата" (an
    income); None when the shape is not that at all (too few words, or nothing says what is paid), so the
    bot shows how to write it."""
    words = text.strip().split()
    if len(words) < 3:
        return None
    day = parse_day(words[0])
    rest = _words(" ".join(words[1:]))
    income = rest[0] == "+"
    if income:
        rest = rest[1:]
    start = 1 if len(rest) > 1 and currency_of_word(rest[0]) else 0
    if not looks_like_number(rest[start]):
        raise InvalidInput("reason_not_a_number", rest[start])
    count = _amount_words(rest[start:])
    end = start + count
    currency_word = rest[0] if start else None
    if currency_word is None and end < len(rest) and currency_of_word(rest[end]):
        currency_word, end = rest[end], end + 1
    description = " ".join(rest[end:])
    if not any(ch.isalpha() for ch in description):
        return None
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput("description_too_long", description)
    code = currency_of_word(currency_word) if currency_word else currency_code
    assert code is not None
    amount_text = " ".join(rest[start : start + count])
    return RecurringInput(day=day, amount=parse_amount(amount_text, code), description=description,
                          currency=code, income=income or amount_text.startswith("+"))


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
