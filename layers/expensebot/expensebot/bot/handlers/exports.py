"""/export [YYYY-MM]: a month's expenses and incomes as CSV and XLSX files. The files are built by a task on the
reports queue, so the webhook only checks the month and enqueues it: building files here would slow every reply
behind it, and the webhook never imports openpyxl."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import Message, Update

from expensebot.bootstrap import Runtime
from expensebot.months import NotAMonth, parse_month
from expensebot.periods import month_start
from expensebot.texts import month_name, t

router = Router(name="exports")


@router.message(Command("export"))
async def cmd_export(
    message: Message, command: CommandObject, cur: Any, runtime: Runtime, lang: str, event_update: Update
) -> SendMessage:
    # Imported here: the jobs package (and boto3 with the first enqueue) is only needed by /export.
    from expensebot.jobs.exports import ExportRequest, month_has_entries, send_export

    assert message.from_user is not None
    user_id = message.from_user.id
    argument = (command.args or "").strip()
    try:
        month = parse_month(argument) if argument else month_start(message.date, runtime.settings.tz).date()
    except NotAMonth as wrong:
        if wrong.reason == "month":
            return message.answer(t(lang, "export_bad_month", month=wrong.text, year=wrong.year))
        return message.answer(t(lang, "export_usage"))
    named = {"month": month_name(lang, month.month), "year": month.year}
    if not month_has_entries(cur, user_id=user_id, month=month, tz=runtime.settings.tz):
        return message.answer(t(lang, "export_nothing", **named))
    # The update's id keys the request: a redelivered /export enqueues the same request, sent once.
    send_export.delay(
        ExportRequest(user_id=user_id, chat_id=message.chat.id, language_code=lang, month=month,
                      request_id=f"update:{event_update.update_id}"),
        runtime=runtime,
    )
    return message.answer(t(lang, "export_on_its_way", **named))
