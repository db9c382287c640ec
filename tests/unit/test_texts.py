"""The words users read: languages, money, and the two locale files kept in step."""

from __future__ import annotations

import json
import string
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import expensebot
from expensebot.money import format_money
from expensebot.texts import category_name, format_totals, language_for, month_name, t

LOCALES_DIR = Path(expensebot.__file__).parent / "locales"
NBSP = "\u00a0"


def load_locale(language: str) -> dict[str, Any]:
    """The language's files merged, read here rather than through texts.catalog (which is under test)."""
    merged: dict[str, Any] = {}
    for path in sorted((LOCALES_DIR / language).glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


RU = load_locale("ru")
EN = load_locale("en")


def placeholders(template: Any) -> set[str]:
    texts = template if isinstance(template, list) else [template]
    return {name for text in texts for _, name, _, _ in string.Formatter().parse(str(text)) if name is not None}


@pytest.mark.parametrize(
    ("amount", "russian", "english"),
    [
        (Decimal("1234567.5"), f"1{NBSP}234{NBSP}567,50{NBSP}₽", "1,234,567.50 ₽"),
        (Decimal("0"), f"0,00{NBSP}₽", "0.00 ₽"),
        (Decimal("0.01"), f"0,01{NBSP}₽", "0.01 ₽"),
        (Decimal("999.99"), f"999,99{NBSP}₽", "999.99 ₽"),
        (Decimal("1000"), f"1{NBSP}000,00{NBSP}₽", "1,000.00 ₽"),
        (Decimal("100000"), f"100{NBSP}000,00{NBSP}₽", "100,000.00 ₽"),
        (Decimal("1000000000"), f"1{NBSP}000{NBSP}000{NBSP}000,00{NBSP}₽", "1,000,000,000.00 ₽"),
        (Decimal("250.5"), f"250,50{NBSP}₽", "250.50 ₽"),
    ],
)
def test_money_is_written_to_the_kopeck_the_way_each_language_writes_it(
    amount: Decimal, russian: str, english: str
) -> None:
    assert format_money(amount, "RUB", "ru") == russian
    assert format_money(amount, "RUB", "en") == english


def test_a_sum_too_precise_for_a_float_is_still_written_exactly() -> None:
    assert format_money(Decimal("12345678901234567.89"), "RUB", "en") == "12,345,678,901,234,567.89 ₽"


@pytest.mark.parametrize(
    ("amount", "russian", "english"),
    [
        (Decimal("-1234.5"), f"-1{NBSP}234,50{NBSP}₽", "-1,234.50 ₽"),
        (Decimal("-0.01"), f"-0,01{NBSP}₽", "-0.01 ₽"),
        (Decimal("-1000000"), f"-1{NBSP}000{NBSP}000,00{NBSP}₽", "-1,000,000.00 ₽"),
    ],
)
def test_a_negative_sum_keeps_its_minus_sign_in_front(amount: Decimal, russian: str, english: str) -> None:
    assert format_money(amount, "RUB", "ru") == russian
    assert format_money(amount, "RUB", "en") == english


def test_a_sum_that_rounds_to_zero_has_no_minus_sign() -> None:
    assert format_money(Decimal("-0.001"), "RUB", "en") == "0.00 ₽"
    assert format_money(Decimal("-0.001"), "RUB", "ru") == f"0,00{NBSP}₽"


def test_money_can_be_written_with_another_currency_symbol() -> None:
    assert format_money(Decimal("5"), "USD", "en") == "5.00 $"
    assert format_money(Decimal("5"), "EUR", "ru") == f"5,00{NBSP}€"


@pytest.mark.parametrize("language_code", [None, "", "ru", "RU", "uk", "de", "ru-RU"])
def test_everyone_whose_client_is_not_in_english_reads_russian(language_code: str | None) -> None:
    assert language_for(language_code) == "ru"


@pytest.mark.parametrize("language_code", ["en", "EN", "en-GB", "en-US"])
def test_a_user_whose_client_is_in_english_reads_english(language_code: str) -> None:
    assert language_for(language_code) == "en"


def test_every_russian_text_has_an_english_one() -> None:
    assert sorted(set(RU) - set(EN)) == []


def test_every_english_text_has_a_russian_one() -> None:
    assert sorted(set(EN) - set(RU)) == []


@pytest.mark.parametrize("key", sorted(set(RU) & set(EN)))
def test_each_text_takes_the_same_placeholders_in_both_languages(key: str) -> None:
    assert placeholders(RU[key]) == placeholders(EN[key])


def test_both_languages_name_all_twelve_months() -> None:
    assert len(RU["months"]) == len(EN["months"]) == 12
    assert month_name("ru", 3) == "март"
    assert month_name("en", 12) == "December"


def test_a_text_is_filled_in_with_its_values() -> None:
    assert t("en", "budget_set", period="month", amount="5.00 ₽") == "Budget for the month: 5.00 ₽."
    assert t("ru", "budget_set", period="месяц", amount="5,00 ₽") == "Бюджет на месяц: 5,00 ₽."


def test_an_unknown_language_falls_back_to_russian() -> None:
    assert t("de", "budget_total_label") == RU["budget_total_label"]


def test_an_unknown_category_is_named_by_its_key() -> None:
    assert category_name("ru", "pets") == "pets"


def test_totals_in_several_currencies_are_listed_never_added() -> None:
    totals = [("RUB", Decimal("1500")), ("EUR", Decimal("12.5")), ("USD", Decimal("25"))]
    assert format_totals(totals, "ru") == f"1{NBSP}500,00{NBSP}₽, 12,50{NBSP}€ и 25,00{NBSP}$"
    assert format_totals(totals[:2], "en") == "1,500.00 ₽ and 12.50 €"
    assert format_totals(totals[:1], "en") == "1,500.00 ₽"
