"""/report: this month's report now. The report itself is the monthly job's task on the reports queue,
so the webhook only enqueues it and answers at once: a slow report never delays the webhook."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command
from aiogram.methods import SendMessage
from aiogram.types import Message, Update

from expensebot.bookkeeping import month_expense_count
from expensebot.bootstrap import Runtime
from expensebot.periods import month_start
from expensebot.texts import month_name, t

router = Router(name="reports")


@router.message(Command("report"))
async def cmd_report(message: Message, cur: Any, runtime: Runtime, lang: str, event_update: Update) -> SendMessage:
    # Imported here: the jobs package (and boto3 with the first enqueue) is only needed by /report.
    from expensebot.jobs.monthly_reports import ReportUnit, send_monthly_report

    assert message.from_user is not None
    user_id = message.from_user.id
    first_instant = month_start(message.date, runtime.settings.tz)
    month = month_name(lang, first_instant.month)
    if month_expense_count(cur, user_id=user_id, month_start=first_instant) == 0:
        return message.answer(t(lang, "report_no_expenses", month=month))
    # The update's id keys the request: a redelivered /report (after a failure before the commit) enqueues
    # the same request again, and the reports task sends it once.
    send_monthly_report.delay(
        ReportUnit(
            user_id=user_id,
            chat_id=message.chat.id,
            language_code=lang,
            month=first_instant.date(),
            request_id=f"update:{event_update.update_id}",
        ),
        runtime=runtime,
    )
    return message.answer(t(lang, "report_on_its_way", month=month))
