"""Guessing an expense's or an income's category from its description: a keyword table, first match wins."""

from __future__ import annotations

import re

CATEGORIES = (
    "groceries", "cafe", "transport", "housing", "health",
    "entertainment", "clothing", "communication", "other",
)

# Stems, so that "кофе", "кофейня" and "кофемашина" all match "коф"; checked against each word's start.
# A stem ending in "$" must be the whole word: "бар" is a bar, "барбершоп" is not.
_KEYWORDS: dict[str, tuple[str, ...]] = {
    "cafe": ("коф", "кафе", "ресторан", "бар$", "обед", "ужин", "завтрак", "пицц", "суши", "шаурм",
             "бургер", "макдон", "вкусно", "ланч", "чай$", "coffee", "cafe", "café", "restaurant", "lunch",
             "dinner", "breakfast", "pizza", "burger", "bar$"),
    "groceries": ("продукт", "магазин", "пятероч", "перекрест", "ашан", "лента", "магнит", "вкусвилл",
                  "хлеб", "молок", "овощ", "фрукт", "мясо", "grocer", "supermarket", "food", "milk", "bread"),
    "transport": ("такси", "метро", "автобус", "бензин", "топлив", "парков", "каршер", "электрич",
                  "поезд", "трамва", "самолет", "самолёт", "авиа", "taxi", "uber", "metro", "bus$", "fuel",
                  "petrol", "gas$", "train", "parking", "flight"),
    "housing": ("квартир", "аренд", "жкх", "коммунал", "свет$", "электроэнерг", "газ$", "газоснаб", "вода$",
                "водоснаб", "ремонт", "rent", "utilit", "electric", "water", "repair"),
    "health": ("аптек", "лекарств", "врач", "стомат", "клиник", "анализ", "больниц", "таблет", "pharma",
               "doctor", "dentist", "clinic", "medicine", "drug"),
    "entertainment": ("кино", "театр", "концерт", "игр", "музей", "клуб", "подписк", "netflix", "spotify",
                      "книг", "cinema", "movie", "theatre", "theater", "concert", "game", "museum", "book"),
    "clothing": ("одежд", "обув", "куртк", "джинс", "кроссов", "футболк", "плать", "clothes", "shoes",
                 "jacket", "jeans", "sneakers", "shirt", "dress"),
    "communication": ("связь", "телефон", "мобил", "интернет", "мтс", "билайн", "мегафон", "теле2",
                      "phone", "mobile", "internet"),
}

_WORD = re.compile(r"[\wё]+", re.IGNORECASE)


def _fold(text: str) -> str:
    # "Пятёрочка" and "Пятерочка" are the same shop: most people type е for ё.
    return text.lower().replace("ё", "е")


def _matches(word: str, stem: str) -> bool:
    return word == stem[:-1] if stem.endswith("$") else word.startswith(stem)


_FOLDED = {category: tuple(_fold(stem) for stem in stems) for category, stems in _KEYWORDS.items()}


def guess_category(description: str) -> str:
    words = [_fold(word) for word in _WORD.findall(description)]
    for category, stems in _FOLDED.items():
        if any(_matches(word, stem) for word in words for stem in stems):
            return category
    return "other"


# Incomes have their own, shorter list, guessed the same way ("+50000 зарплата" → salary).
INCOME_CATEGORIES = ("salary", "freelance", "gift", "interest", "other")

_INCOME_KEYWORDS: dict[str, tuple[str, ...]] = {
    "salary": ("зарплат", "зп$", "оклад", "аванс", "преми", "отпускн", "salary", "wage", "payroll", "paycheck",
               "bonus"),
    "freelance": ("фриланс", "подработ", "заказ", "гонорар", "проект", "freelance", "client", "gig", "project",
                  "fee"),
    "gift": ("подар", "gift", "present"),
    "interest": ("процент", "вклад", "депозит", "дивиденд", "кэшб", "кешб", "купон", "interest", "dividend",
                 "cashback", "deposit"),
}
_INCOME_FOLDED = {category: tuple(_fold(stem) for stem in stems) for category, stems in _INCOME_KEYWORDS.items()}


def guess_income_category(description: str) -> str:
    words = [_fold(word) for word in _WORD.findall(description)]
    for category, stems in _INCOME_FOLDED.items():
        if any(_matches(word, stem) for word in words for stem in stems):
            return category
    return "other"
