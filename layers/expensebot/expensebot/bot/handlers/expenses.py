"""A plain message with an amount and a description records an expense (`+` before the amount: an income),
one per line; /income records an income; /undo deletes the latest expense or income; /currency shows or
changes the user's currency; anything else gets a hint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import Message

from expensebot import money
from expensebot.bookkeeping import (
    RecordedEntry,
    month_totals,
    record_expense,
    record_income,
    set_user_currency,
    undo_last_entry,
)
from expensebot.bootstrap import Runtime
from expensebot.parsing import (
    MAX_DESCRIPTION_LENGTH,
    ExpenseInput,
    InvalidInput,
    ParsedLine,
    currency_of_word,
    parse_expense,
    parse_message,
)
from expensebot.periods import month_start
from expensebot.texts import category_name, explain_invalid_input, format_totals, invalid_reason, month_name, t

router = Router(name="expenses")

# The longest description echoed per line of a multi-line reply: thirty lines must fit in one message.
ECHOED_DESCRIPTION = 40
# Shown when /currency names something the table does not know.
EXAMPLE_CODES = "RUB, USD, EUR, CNY, KZT"


def _short(text: str) -> str:
    return text if len(text) <= ECHOED_DESCRIPTION else text[: ECHOED_DESCRIPTION - 1] + "…"


@router.message(Command("undo"))
async def cmd_undo(message: Message, cur: Any, runtime: Runtime, lang: str) -> SendMessage:
    assert message.from_user is not None
    deleted = undo_last_entry(cur, user_id=message.from_user.id)
    if deleted is None:
        return message.answer(t(lang, "undo_nothing"))
    at = deleted.at.astimezone(runtime.settings.tz)
    return message.answer(
        t(
            lang,
            "undo_done_income" if deleted.income else "undo_done",
            date=t(lang, "date_short", day=at.day, month=at.month, year=at.year),
            amount=money.format_money(deleted.amount, deleted.currency, lang),
            category=category_name(lang, deleted.category),
            description=deleted.description,
        )
    )


@router.message(Command("currency"))
async def cmd_currency(message: Message, command: CommandObject, cur: Any, lang: str, currency: str) -> SendMessage:
    assert message.from_user is not None
    words = (command.args or "").split()
    if not words:
        return message.answer(t(lang, "currency_current", code=currency, symbol=money.currency(currency).symbol))
    if len(words) > 1:
        return message.answer(t(lang, "currency_usage"))
    # A listed ISO code, or a word the parser knows ("доллар", "€"). Only listed codes: a made-up "XYZ" has
    # ISO's shape but is no currency, and every bare amount of the user's would be stored in it.
    code = currency_of_word(words[0])
    if code is None or code not in money.CURRENCIES:
        return message.answer(t(lang, "currency_unknown", value=words[0][:40], examples=EXAMPLE_CODES))
    set_user_currency(cur, user_id=message.from_user.id, currency=code)
    return message.answer(t(lang, "currency_set", code=code, symbol=money.currency(code).symbol))


def _record(
    cur: Any, entry: ExpenseInput, *, user_id: int, at: datetime, now: datetime, update_id: int
) -> RecordedEntry:
    common = {"user_id": user_id, "amount": entry.amount, "currency": entry.currency,
              "description": entry.description, "now": now, "source_update_id": update_id}
    if entry.income:
        return record_income(cur, received_at=at, **common)
    return record_expense(cur, spent_at=at, **common)


def _month_lines(cur: Any, recorded: list[RecordedEntry], *, user_id: int, first: datetime, lang: str,
                 currency: str) -> list[str]:
    """The month's totals, one per currency (the user's own first), of what the message recorded: spent
    when it recorded an expense, received when it recorded an income."""
    month = month_name(lang, first.month)
    lines = []
    if any(not entry.income for entry in recorded):
        totals = month_totals(cur, table="expenses", user_id=user_id, month_start=first, first=currency)
        lines.append(t(lang, "month_spent", month=month, total=format_totals(totals, lang)))
    if any(entry.income for entry in recorded):
        totals = month_totals(cur, table="incomes", user_id=user_id, month_start=first, first=currency)
        lines.append(t(lang, "month_received", month=month, total=format_totals(totals, lang)))
    return lines


def _entry_line(lang: str, number: int, entry: RecordedEntry) -> str:
    return t(
        lang,
        "entry_income" if entry.income else "entry_expense",
        number=number,
        amount=money.format_money(entry.amount, entry.currency, lang),
        category=category_name(lang, entry.category),
        description=_short(entry.description),
    )


def _failed_line(lang: str, line: ParsedLine) -> str:
    if line.error is None:
        return t(lang, "entry_not_understood", number=line.number, text=_short(line.text))
    if line.error.reason == "description_too_long":
        reason = t(lang, "description_too_long_short", max=MAX_DESCRIPTION_LENGTH)
    else:
        reason = invalid_reason(lang, line.error)
    return t(lang, "entry_failed", number=line.number, text=_short(line.text), reason=reason)


@router.message(Command("income"))
async def cmd_income(
    message: Message, command: CommandObject, cur: Any, runtime: Runtime, lang: str, currency: str,
    event_update: Any,
) -> SendMessage:
    assert message.from_user is not None
    try:
        parsed = parse_expense(command.args or "", currency)
    except InvalidInput as exc:
        return message.answer(explain_invalid_input(lang, exc))
    if parsed is None:
        return message.answer(t(lang, "income_usage"))
    entry = ExpenseInput(parsed.amount, parsed.description, parsed.currency, income=True)
    return _answer_one(message, cur, runtime, lang, currency, entry, event_update.update_id)


def _answer_one(message: Message, cur: Any, runtime: Runtime, lang: str, currency: str, entry: ExpenseInput,
                update_id: int) -> SendMessage:
    assert message.from_user is not None
    first = month_start(message.date, runtime.settings.tz)
    recorded = _record(cur, entry, user_id=message.from_user.id, at=message.date, now=runtime.clock.now(),
                       update_id=update_id)
    totals = month_totals(cur, table="incomes" if entry.income else "expenses", user_id=message.from_user.id,
                          month_start=first, first=currency)
    return message.answer(
        t(
            lang,
            "income_recorded" if entry.income else "expense_recorded",
            amount=money.format_money(recorded.amount, recorded.currency, lang),
            category=category_name(lang, recorded.category),
            description=recorded.description,
            month=month_name(lang, first.month),
            month_total=format_totals(totals, lang),
        )
    )


@router.message(F.text & ~F.text.startswith("/"))
async def on_expense_text(
    message: Message, cur: Any, runtime: Runtime, lang: str, currency: str, event_update: Any
) -> SendMessage:
    assert message.from_user is not None and message.text is not None
    try:
        lines = parse_message(message.text, currency)
    except InvalidInput as exc:
        return message.answer(explain_invalid_input(lang, exc))
    if len(lines) == 1:
        # One line: answered as before, the entry and its month's totals, or why it was not taken.
        (line,) = lines
        if line.error is not None:
            return message.answer(explain_invalid_input(lang, line.error))
        if line.entry is None:
            return message.answer(t(lang, "not_understood"))
        return _answer_one(message, cur, runtime, lang, currency, line.entry, event_update.update_id)
    if all(line.entry is None and line.error is None for line in lines):
        return message.answer(t(lang, "not_understood"))  # no line looks like an entry: a chat message
    # Several lines: one reply listing each line in order, what it recorded or why not. One message rather
    # than one per line: the lines came together, the user reads them together, and the month's totals at
    # the end count them all (several replies would each show a total that the next one changes).
    first = month_start(message.date, runtime.settings.tz)
    now = runtime.clock.now()
    recorded: list[RecordedEntry] = []
    reply = []
    for line in lines:
        if line.entry is None:
            reply.append(_failed_line(lang, line))
            continue
        entry = _record(cur, line.entry, user_id=message.from_user.id, at=message.date, now=now,
                        update_id=event_update.update_id)
        recorded.append(entry)
        reply.append(_entry_line(lang, line.number, entry))
    header = t(lang, "entries_header", recorded=len(recorded), lines=len(lines))
    footer = _month_lines(cur, recorded, user_id=message.from_user.id, first=first, lang=lang, currency=currency)
    return message.answer("\n".join([header, *reply, *(["", *footer] if footer else [])]))


@router.message()
async def on_anything_else(message: Message, lang: str) -> SendMessage:
    return message.answer(t(lang, "not_understood"))
