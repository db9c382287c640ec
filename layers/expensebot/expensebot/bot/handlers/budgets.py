"""/budget: set, list and remove budgets per period.

    /budget 30000               the month's budget (as before periods existed)
    /budget week 3000           a week's, Monday to Sunday
    /budget day 1000 кафе       a day's, for one category (the amount and the category in either order)
    /budget off [period] [cat]  removes one (the month's when no period is named)
    /budget                     every budget with what is spent of it in its period so far

Periods are named in English or Russian (day/день, week/неделя, month/месяц). A budget is in the user's
currency (users.currency) and counts only the expenses in it."""

from __future__ import annotations

import re
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import Message

from expensebot.bookkeeping import budget_usage, remove_budget, set_budget
from expensebot.bootstrap import Runtime
from expensebot.categories import CATEGORIES, guess_category
from expensebot.money import format_money
from expensebot.parsing import InvalidInput, parse_amount
from expensebot.texts import (
    budget_label,
    category_name,
    days_count,
    explain_invalid_input,
    format_percent,
    t,
)

router = Router(name="budgets")

# The words for each period, in the forms people type after "/budget" ("неделю" as in "на неделю").
PERIOD_WORDS: dict[str, str] = {
    **dict.fromkeys(("day", "daily", "день", "дневной", "сутки"), "day"),
    **dict.fromkeys(("week", "weekly", "неделя", "неделю", "недельный"), "week"),
    **dict.fromkeys(("month", "monthly", "месяц", "месячный"), "month"),
}
OFF_WORDS = frozenset(("off", "remove", "delete", "выкл", "убрать", "удалить", "отключить"))
# What an amount starts with: a sign, a digit (of any script, so that "٥٠٠٠" is explained as an amount
# written in other digits), or a decimal separator.
_AMOUNT_LIKE = re.compile(r"^[-+]?[\d.,]")


def _category_from(word: str, lang: str) -> str | None:
    """A category named by its key, its name in the user's language, or a word that guesses it."""
    lowered = word.lower()
    for category in CATEGORIES:
        if lowered in (category, category_name(lang, category).lower()):
            return category
    guessed = guess_category(lowered)
    return guessed if guessed != "other" else None


def _take_period(words: list[str]) -> tuple[str | None, list[str]]:
    """The first word naming a period, and the other words."""
    for index, word in enumerate(words):
        period = PERIOD_WORDS.get(word.lower())
        if period is not None:
            return period, words[:index] + words[index + 1:]
    return None, words


def _off_command(period: str, category: str | None, lang: str) -> str:
    """How to remove this budget, as the user would type it."""
    parts = ["/budget off"]
    if period != "month":
        parts.append(period)
    if category is not None:
        # The category's first word when it names the category back ("кафе"), its key otherwise.
        word = category_name(lang, category).split()[0]
        parts.append(word if _category_from(word, lang) == category else category)
    return " ".join(parts)


@router.message(Command("budget"))
async def cmd_budget(
    message: Message, command: CommandObject, cur: Any, runtime: Runtime, lang: str, currency: str
) -> SendMessage:
    assert message.from_user is not None
    user_id = message.from_user.id
    words = (command.args or "").split()
    if not words:
        return message.answer(_list_budgets(cur, user_id, message, runtime, lang))
    if words[0].lower() in OFF_WORDS:
        return message.answer(_remove(cur, user_id, words[1:], lang))

    period, rest = _take_period(words)
    period = period or "month"
    if not rest or len(rest) > 2:
        return message.answer(t(lang, "budget_usage"))
    category = None
    amount_word = rest[-1]
    if len(rest) == 2:
        # "/budget кафе 5000" and "/budget day 1000 кафе": the amount is the word that looks like one.
        category_word, amount_word = rest
        if _AMOUNT_LIKE.match(category_word) and not _AMOUNT_LIKE.match(amount_word):
            category_word, amount_word = amount_word, category_word
        category = _category_from(category_word, lang)
        if category is None:
            return message.answer(t(lang, "budget_usage"))
    try:
        amount = parse_amount(amount_word, currency)
    except InvalidInput as exc:
        reply = explain_invalid_input(lang, exc)
        if exc.reason == "reason_not_positive":
            # Zero was how people tried to turn a budget off: say how it is done.
            reply += "\n" + t(lang, "budget_how_to_remove", command=_off_command(period, category, lang))
        return message.answer(reply)
    currency = set_budget(cur, user_id=user_id, amount=amount, category=category, period=period,
                          now=runtime.clock.now())
    amount_text = format_money(amount, currency, lang)
    if category is None:
        return message.answer(t(lang, "budget_set", period=t(lang, f"budget_period.{period}"), amount=amount_text))
    return message.answer(t(lang, "budget_set_category", category=category_name(lang, category),
                            amount=amount_text, per=t(lang, f"budget_per.{period}")))


def _remove(cur: Any, user_id: int, words: list[str], lang: str) -> str:
    period, rest = _take_period(words)
    period = period or "month"
    if len(rest) > 1:
        return t(lang, "budget_usage")
    category = None
    if rest:
        category = _category_from(rest[0], lang)
        if category is None:
            return t(lang, "budget_usage")
    removed = remove_budget(cur, user_id=user_id, period=period, category=category)
    label = budget_label(lang, period, category)
    if removed is None:
        return t(lang, "budget_not_found", label=label)
    return t(lang, "budget_removed", label=label, amount=format_money(removed.amount, removed.currency, lang))


def _list_budgets(cur: Any, user_id: int, message: Message, runtime: Runtime, lang: str) -> str:
    usage = budget_usage(cur, user_id=user_id, as_of=message.date, timezone=runtime.settings.app_timezone)
    if not usage:
        return t(lang, "budget_none")
    lines: list[str] = []
    period = None
    for u in usage:
        if u.period != period:
            period = u.period
            lines.append(
                t(lang, "budget_list_header_day") if period == "day"
                else t(lang, "budget_list_header", period=t(lang, f"budget_period.{period}"),
                       days=days_count(lang, u.days_left))
            )

        def money(amount: Any, code: str = u.currency) -> str:
            return format_money(amount, code, lang)

        rest = (t(lang, "budget_over_by", amount=money(u.spent - u.limit)) if u.spent > u.limit
                else t(lang, "budget_left", amount=money(u.limit - u.spent)))
        lines.append(t(
            lang, "budget_line",
            label=category_name(lang, u.category) if u.category else t(lang, "budget_total_label"),
            spent=money(u.spent), limit=money(u.limit), percent=format_percent(u.percent), rest=rest,
        ))
    return "\n".join(lines)
