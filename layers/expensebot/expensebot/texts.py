"""The words users read. Texts live in locales/<language>/<area>.json (one file per feature, so the bot
and each job keep their own), keyed by name; this module merges a language's files, picks the language
and writes totals per currency (each amount with money.format_money)."""

from __future__ import annotations

import json
from decimal import ROUND_FLOOR, Decimal
from functools import cache
from pathlib import Path
from typing import Any

from expensebot import money
from expensebot.parsing import MAX_AMOUNT, MAX_DESCRIPTION_LENGTH, MAX_LINES, MAX_TEXT_LENGTH, InvalidInput

LOCALES_DIR = Path(__file__).with_name("locales")
DEFAULT_LANGUAGE = "ru"
LANGUAGES = ("ru", "en")


def language_for(language_code: str | None) -> str:
    """Russian for everyone but users whose Telegram client is in English."""
    if language_code and language_code.lower().split("-")[0] == "en":
        return "en"
    return DEFAULT_LANGUAGE


@cache
def catalog(language: str) -> dict[str, Any]:
    """Every text of a language; a key defined in two files is an error, not a silent override."""
    merged: dict[str, Any] = {}
    for path in sorted((LOCALES_DIR / language).glob("*.json")):
        texts = json.loads(path.read_text(encoding="utf-8"))
        repeated = merged.keys() & texts.keys()
        if repeated:
            raise ValueError(f"{path}: keys already defined in another file: {', '.join(sorted(repeated))}")
        merged.update(texts)
    return merged


def t(language: str, key: str, **values: object) -> str:
    template = catalog(language if language in LANGUAGES else DEFAULT_LANGUAGE)[key]
    return str(template).format(**values)


def month_name(language: str, month: int) -> str:
    return catalog(language)["months"][month - 1]


def category_name(language: str, category: str) -> str:
    return str(catalog(language).get(f"category.{category}", category))


def format_percent(value: Decimal) -> str:
    """Whole percent, rounded down: 99.6 % of a budget is not yet "100 %"."""
    return f"{value.quantize(Decimal('1'), rounding=ROUND_FLOOR)}"


def format_totals(totals: list[tuple[str, Decimal]], language: str) -> str:
    """One total per currency, in the order given (the user's own first): "16 500,00 ₽ и 25,00 $"."""
    written = [money.format_money(amount, code, language) for code, amount in totals]
    if not written:
        return money.format_money(Decimal(0), "RUB", language)
    if len(written) == 1:
        return written[0]
    return t(language, "totals_join", head=", ".join(written[:-1]), last=written[-1])


def invalid_reason(language: str, error: InvalidInput) -> str:
    """Why an amount cannot be taken, in the amount's currency: "больше двух знаков после запятой"."""
    return t(language, error.reason, max=money.format_money(MAX_AMOUNT, error.currency, language),
             currency=error.currency)


def explain_invalid_input(language: str, error: InvalidInput) -> str:
    """The reply to something the user typed that cannot be taken, saying what is wrong with it."""
    if error.reason == "description_too_long":
        return t(language, "description_too_long", max=MAX_DESCRIPTION_LENGTH)
    if error.reason == "text_too_long":
        return t(language, "text_too_long", max=MAX_TEXT_LENGTH)
    if error.reason == "too_many_lines":
        return t(language, "too_many_lines", max=MAX_LINES, count=error.value)
    return t(language, "invalid_amount", value=error.value, reason=invalid_reason(language, error))


def plural(language: str, count: int, forms: list[str]) -> str:
    """The form of a noun for a count: Russian has three (1 день, 2 дня, 5 дней; 11-14 take the third),
    English two (1 day, 2 days)."""
    if language != "ru":
        return forms[0] if count == 1 else forms[1]
    if count % 10 == 1 and count % 100 != 11:
        return forms[0]
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return forms[1]
    return forms[2]


def days_count(language: str, days: int) -> str:
    """'3 дня', '1 day'."""
    forms = catalog(language if language in LANGUAGES else DEFAULT_LANGUAGE)["days_forms"]
    return f"{days} {plural(language, days, forms)}"


def budget_label(language: str, period: str, category: str | None) -> str:
    """'на неделю', '«кафе и рестораны» на месяц': which budget a text speaks of."""
    period_name = t(language, f"budget_period.{period}")
    if category is None:
        return t(language, "budget_label_total", period=period_name)
    return t(language, "budget_label_category", category=category_name(language, category), period=period_name)


def days_left_text(language: str, period: str, days_left: int) -> str:
    """How long the period still runs: a day's budget starts again at midnight; a week's or a month's has
    `days_left` days, today included."""
    if period == "day":
        return t(language, "budget_day_resets")
    return t(language, "budget_days_left", period=t(language, f"budget_period_of.{period}"),
             days=days_count(language, days_left))
