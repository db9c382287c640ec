"""A plain message with an amount and a description records an expense; /undo deletes the latest one;
anything else gets a hint."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.methods import SendMessage
from aiogram.types import Message

from expensebot.bookkeeping import record_expense, undo_last_expense
from expensebot.bootstrap import Runtime
from expensebot.parsing import InvalidInput, parse_expense
from expensebot.periods import month_start
from expensebot.texts import category_name, explain_invalid_input, format_money, month_name, t

router = Router(name="expenses")


@router.message(Command("undo"))
async def cmd_undo(message: Message, cur: Any, runtime: Runtime, lang: str) -> SendMessage:
    assert message.from_user is not None
    deleted = undo_last_expense(cur, user_id=message.from_user.id)
    if deleted is None:
        return message.answer(t(lang, "undo_nothing"))
    spent = deleted.spent_at.astimezone(runtime.settings.tz)
    return message.answer(
        t(
            lang,
            "undo_done",
            date=t(lang, "date_short", day=spent.day, month=spent.month, year=spent.year),
            amount=format_money(deleted.amount, lang, runtime.settings.currency_symbol),
            category=category_name(lang, deleted.category),
            description=deleted.description,
        )
    )


@router.message(F.text & ~F.text.startswith("/"))
async def on_expense_text(
    message: Message, cur: Any, runtime: Runtime, lang: str, event_update: Any
) -> SendMessage:
    assert message.from_user is not None and message.text is not None
    try:
        parsed = parse_expense(message.text)
    except InvalidInput as exc:
        return message.answer(explain_invalid_input(lang, exc, runtime.settings.currency_symbol))
    if parsed is None:
        return message.answer(t(lang, "not_understood"))
    first_instant = month_start(message.date, runtime.settings.tz)
    recorded = record_expense(
        cur,
        user_id=message.from_user.id,
        amount=parsed.amount,
        description=parsed.description,
        spent_at=message.date,
        month_start=first_instant,
        now=runtime.clock.now(),
        source_update_id=event_update.update_id,
    )
    symbol = runtime.settings.currency_symbol
    return message.answer(
        t(
            lang,
            "expense_recorded",
            amount=format_money(recorded.amount, lang, symbol),
            category=category_name(lang, recorded.category),
            description=recorded.description,
            month=month_name(lang, first_instant.month),
            month_total=format_money(recorded.month_total, lang, symbol),
        )
    )


@router.message()
async def on_anything_else(message: Message, lang: str) -> SendMessage:
    return message.answer(t(lang, "not_understood"))
