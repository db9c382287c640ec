"""/report [YYYY-MM]: a month's report now (this month without an argument). The report itself is the monthly
job's task on the reports queue, so the webhook only enqueues it and answers at once: a slow report (its
chart and PDF are drawn by the reports worker) never delays the webhook."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendMessage
from aiogram.types import Message, Update

from expensebot import months
from expensebot.bootstrap import Runtime
from expensebot.periods import month_start
from expensebot.texts import month_name, t

router = Router(name="reports")

def parse_month(text: str) -> date | None:
    """The month (its first day) a /report argument names, or None when it names none (2026-13, "ноябрь")."""
    try:
        return months.parse_month(text, other_forms=True)
    except months.NotAMonth:
        return None


# Expenses and incomes of the month: a report needs one or the other. Two index probes
# (expenses_user_spent_at, incomes_user_received), stopped at the first row.
_MONTH_HAS_ENTRIES = """
SELECT EXISTS (SELECT 1 FROM expenses WHERE user_id = %(user_id)s AND spent_at >= %(start)s AND spent_at < %(end)s)
    OR EXISTS (SELECT 1 FROM incomes WHERE user_id = %(user_id)s AND received_at >= %(start)s
                                       AND received_at < %(end)s) AS has_entries
"""


@router.message(Command("report"))
async def cmd_report(
    message: Message, command: CommandObject, cur: Any, runtime: Runtime, lang: str, event_update: Update
) -> SendMessage:
    # Imported here: the jobs package (and boto3 with the first enqueue) is only needed by /report.
    from expensebot.jobs.monthly_reports import ReportUnit, month_bounds, send_monthly_report

    assert message.from_user is not None
    user_id = message.from_user.id
    current = month_start(message.date, runtime.settings.tz).date()
    if command.args and command.args.strip():
        month = parse_month(command.args)
        if month is None:
            return message.answer(t(lang, "report_bad_month", value=command.args.strip()[:40],
                                    example=f"{current:%Y-%m}"))
    else:
        month = current
    name = month_name(lang, month.month) if month == current else f"{month_name(lang, month.month)} {month.year}"
    start, end = month_bounds(month, runtime.settings.tz)
    cur.execute(_MONTH_HAS_ENTRIES, {"user_id": user_id, "start": start, "end": end})
    if not cur.fetchone()["has_entries"]:
        key = "report_no_expenses" if month == current else "report_no_data"
        return message.answer(t(lang, key, month=name))
    # The update's id keys the request: a redelivered /report (after a failure before the commit) enqueues
    # the same request again, and the reports task sends it once.
    send_monthly_report.delay(
        ReportUnit(
            user_id=user_id,
            chat_id=message.chat.id,
            language_code=lang,
            month=month,
            request_id=f"update:{event_update.update_id}",
        ),
        runtime=runtime,
    )
    return message.answer(t(lang, "report_on_its_way", month=name))


__all__ = ["parse_month", "router"]
