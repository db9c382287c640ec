"""/recurring <day> <amount> <description> adds a monthly payment; /recurring lists the active ones with
their numbers; /recurring_off <number> stops one of the user's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import Message

from expensebot.bookkeeping import active_recurring, add_recurring, stop_recurring
from expensebot.bootstrap import Runtime
from expensebot.money import format_money
from expensebot.parsing import InvalidInput, parse_id, parse_recurring
from expensebot.texts import category_name, explain_invalid_input, t

router = Router(name="recurring")

# Telegram refuses messages over 4,096 characters; a long list is cut with "…and N more" before that.
MAX_REPLY_CHARACTERS = 4000
# From day 29 on, some months have no such day: the payment falls on the month's last day.
SHORTEST_MONTH_DAYS = 28


def explain_invalid(lang: str, error: InvalidInput) -> str:
    if error.reason.startswith("day_"):
        return t(lang, error.reason, value=error.value)
    return explain_invalid_input(lang, error)


def fit_lines(header: str, lines: list[str], footer: str, more: Callable[[int], str]) -> str:
    """Header, as many lines as fit in one message, "…and N more" for the rest, footer."""
    kept: list[str] = []
    budget = MAX_REPLY_CHARACTERS - len(header) - len(footer) - 40
    for line in lines:
        if budget - len(line) - 1 < 0:
            break
        kept.append(line)
        budget -= len(line) + 1
    if len(kept) < len(lines):
        kept.append(more(len(lines) - len(kept)))
    return "\n".join([header, *kept, "", footer])


@router.message(Command("recurring"))
async def cmd_recurring(
    message: Message, command: CommandObject, cur: Any, runtime: Runtime, lang: str, currency: str
) -> SendMessage:
    assert message.from_user is not None
    user_id = message.from_user.id
    if not (command.args or "").strip():
        payments = active_recurring(cur, user_id=user_id)
        if not payments:
            return message.answer(t(lang, "recurring_none"))
        lines = [
            t(
                lang,
                "recurring_line_income" if p.kind == "income" else "recurring_line",
                id=p.id,
                day=p.day_of_month,
                amount=format_money(p.amount, p.currency, lang),
                description=p.description,
                category=category_name(lang, p.category),
            )
            for p in payments
        ]
        return message.answer(
            fit_lines(
                t(lang, "recurring_list_header"),
                lines,
                t(lang, "recurring_list_footer"),
                lambda count: t(lang, "recurring_more", count=count),
            )
        )
    try:
        parsed = parse_recurring(command.args or "", currency)
    except InvalidInput as exc:
        return message.answer(explain_invalid(lang, exc))
    if parsed is None:
        return message.answer(t(lang, "recurring_usage"))
    payment = add_recurring(
        cur,
        user_id=user_id,
        day_of_month=parsed.day,
        amount=parsed.amount,
        description=parsed.description,
        now=runtime.clock.now(),
        currency=parsed.currency,
        income=parsed.income,
    )
    reply = t(
        lang,
        "recurring_added_income" if payment.kind == "income" else "recurring_added",
        id=payment.id,
        day=payment.day_of_month,
        amount=format_money(payment.amount, payment.currency, lang),
        category=category_name(lang, payment.category),
        description=payment.description,
    )
    if payment.day_of_month > SHORTEST_MONTH_DAYS:
        reply += "\n" + t(lang, "recurring_short_month_note", day=payment.day_of_month)
    return message.answer(reply)


@router.message(Command("recurring_off"))
async def cmd_recurring_off(
    message: Message, command: CommandObject, cur: Any, runtime: Runtime, lang: str
) -> SendMessage:
    assert message.from_user is not None
    words = (command.args or "").split()
    payment_id = parse_id(words[0]) if len(words) == 1 else None
    if payment_id is None:
        return message.answer(t(lang, "recurring_off_usage"))
    stopped = stop_recurring(cur, user_id=message.from_user.id, payment_id=payment_id)
    if stopped is None:
        return message.answer(t(lang, "recurring_not_found", id=payment_id))
    return message.answer(
        t(
            lang,
            "recurring_stopped_income" if stopped.kind == "income" else "recurring_stopped",
            id=stopped.id,
            amount=format_money(stopped.amount, stopped.currency, lang),
            description=stopped.description,
        )
    )
