"""/budget 30000, /budget <category> 5000, /budget."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import Message

from expensebot.bookkeeping import budget_usage, set_budget
from expensebot.bootstrap import Runtime
from expensebot.categories import CATEGORIES, guess_category
from expensebot.money import format_money
from expensebot.parsing import InvalidInput, parse_amount
from expensebot.periods import month_start
from expensebot.texts import category_name, explain_invalid_input, format_percent, t

router = Router(name="budgets")


def _category_from(word: str, lang: str) -> str | None:
    """A category named by its key, its name in the user's language, or a word that guesses it."""
    lowered = word.lower()
    for category in CATEGORIES:
        if lowered in (category, category_name(lang, category).lower()):
            return category
    guessed = guess_category(lowered)
    return guessed if guessed != "other" else None


@router.message(Command("budget"))
async def cmd_budget(
    message: Message, command: CommandObject, cur: Any, runtime: Runtime, lang: str, currency: str
) -> SendMessage:
    assert message.from_user is not None
    user_id = message.from_user.id
    words = (command.args or "").split()
    if not words:
        usage = budget_usage(cur, user_id=user_id, month_start=month_start(message.date, runtime.settings.tz))
        if not usage:
            return message.answer(t(lang, "budget_none"))
        lines = [
            t(
                lang,
                "budget_line",
                label=category_name(lang, u.category) if u.category else t(lang, "budget_total_label"),
                spent=format_money(u.spent, u.currency, lang),
                limit=format_money(u.limit, u.currency, lang),
                percent=format_percent(u.percent),
            )
            for u in usage
        ]
        return message.answer("\n".join(lines))
    if len(words) > 2:
        return message.answer(t(lang, "budget_usage"))
    category = None
    if len(words) == 2:
        category = _category_from(words[0], lang)
        if category is None:
            return message.answer(t(lang, "budget_usage"))
    try:
        amount = parse_amount(words[-1], currency)
    except InvalidInput as exc:
        return message.answer(explain_invalid_input(lang, exc))
    # A budget is in the user's currency (and counts only expenses in it: the budgets' lane).
    set_budget(cur, user_id=user_id, amount=amount, category=category, now=runtime.clock.now(), currency=currency)
    amount_text = format_money(amount, currency, lang)
    if category is None:
        return message.answer(t(lang, "budget_set", amount=amount_text))
    return message.answer(
        t(lang, "budget_set_category", category=category_name(lang, category), amount=amount_text)
    )
