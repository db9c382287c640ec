"""Which category an expense lands in, guessed from its description."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import expensebot
from expensebot.categories import CATEGORIES, INCOME_CATEGORIES, guess_category, guess_income_category
from expensebot.texts import LANGUAGES, category_name

LOCALES_DIR = Path(expensebot.__file__).parent / "locales"


@pytest.mark.parametrize(
    ("description", "category"),
    [
        ("кофе", "cafe"),
        ("Кофе с собой", "cafe"),
        ("обед в кафе", "cafe"),
        ("coffee", "cafe"),
        ("lunch", "cafe"),
        ("такси", "transport"),
        ("Такси до дома", "transport"),
        ("метро", "transport"),
        ("taxi", "transport"),
        ("продукты", "groceries"),
        ("пятерочка", "groceries"),
        ("Пятерочка у дома", "groceries"),
        ("groceries", "groceries"),
        ("аптека", "health"),
        ("лекарства", "health"),
        ("pharmacy", "health"),
        ("кино", "entertainment"),
        ("билеты в кино", "entertainment"),
        ("cinema", "entertainment"),
        ("куртка", "clothing"),
        ("jacket", "clothing"),
        ("интернет", "communication"),
        ("мобильная связь", "communication"),
        ("internet", "communication"),
        ("аренда квартиры", "housing"),
        ("коммуналка", "housing"),
        ("rent", "housing"),
    ],
)
def test_a_common_description_lands_in_the_right_category(description: str, category: str) -> None:
    assert guess_category(description) == category


@pytest.mark.parametrize(
    ("description", "category"),
    [("Пятёрочка", "groceries"), ("перекрёсток", "groceries")],
)
def test_a_store_name_spelled_with_yo_lands_where_its_spelling_with_ye_does(description: str, category: str) -> None:
    # Russian writes ё as е interchangeably; "Пятёрочка" is the chain's own spelling.
    assert guess_category(description) == category


@pytest.mark.parametrize("description", ["подарок маме", "something", "", "123", "???"])
def test_an_unknown_description_lands_in_other(description: str) -> None:
    assert guess_category(description) == "other"


def test_every_guessed_category_is_a_known_category() -> None:
    for description in ["кофе", "такси", "продукты", "аптека", "кино", "куртка", "интернет", "аренда", "x"]:
        assert guess_category(description) in CATEGORIES


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("category", [c for c in CATEGORIES if c != "other"])
def test_every_category_has_a_name_in_every_locale_file(category: str, language: str) -> None:
    # category_name falls back to the bare key, so look in the file itself.
    locale = json.loads((LOCALES_DIR / language / "bot.json").read_text(encoding="utf-8"))

    assert locale.get(f"category.{category}"), f"{language}/bot.json has no name for {category!r}"
    assert category_name(language, category) == locale[f"category.{category}"]


def test_category_names_differ_between_russian_and_english() -> None:
    for category in CATEGORIES:
        assert category_name("ru", category) != category_name("en", category)


@pytest.mark.parametrize(
    ("description", "category"),
    [("зарплата", "salary"), ("ЗП", "salary"), ("аванс за март", "salary"), ("фриланс", "freelance"),
     ("гонорар за статью", "freelance"), ("подарок от бабушки", "gift"), ("проценты по вкладу", "interest"),
     ("кэшбэк", "interest"), ("salary", "salary"), ("dividends", "interest"), ("продал велосипед", "other")],
)
def test_an_incomes_category_is_guessed_from_its_own_list(description: str, category: str) -> None:
    assert guess_income_category(description) == category
    assert category in INCOME_CATEGORIES


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_income_category_has_a_name_in_every_language(language: str) -> None:
    for category in INCOME_CATEGORIES:
        assert f"category.{category}" in json.loads(
            (Path(expensebot.__file__).parent / "locales" / language / "bot.json").read_text(encoding="utf-8"))
