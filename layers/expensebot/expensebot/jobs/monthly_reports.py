"""send_monthly_reports — daily 20:00, queue `reports`; does its work only on the month's last day.

The schedule fires every day at 20:00 in the application's time zone and the rule is here: when the slot,
read in that zone, is not the last day of its month, the run records "skipped" and does nothing. On the
last day, every active user with at least one expense in that month (months in the application's zone)
who has not had that month's report yet gets one unit on the reports queue; a user with no expenses that
month gets nothing. The report: the month's total, amount and share per category (largest first), the
change against the previous month (amount and percent; "nothing to compare with" when the previous month
had no expenses), and, when budgets are set, each budget's spent / limit / percent. Amounts are exact, to
the kopeck. Currencies are never added together: the total line has one total per currency (the user's own
first), and the categories, the change and the budgets are those of the report's main currency (the user's
own, or when the month has nothing in it, the currency with the largest number of expenses).

A month whose last-day run never succeeded (the database was down through Lambda's retries, the slot's
delivery was lost) is caught up by the next 20:00 run: the previous month is reported too when no run that
covered it succeeded, and the job was already running before that month ended (so a first deployment, or a
cutover from Celery, never sends a month the old system may have reported). The catch-up's reports are the
previous month's and say so in their title; the details record `caught_up` with the month.

Once per user per month, whatever the number of runs or redeliveries: the worker records the report in
`monthly_reports` (primary key user and month) before sending, the planner skips users who have that row,
and the message goes through the delivery claim under `monthly_report:{user_id}:{YYYY-MM}`, so two
deliveries of the same unit send one Telegram message. A unit with a `request_id` is an on-demand report
(the bot's /report): no `monthly_reports` row, one message per request (`report_request:{request_id}`).

Enqueuing checkpoints at the soft time limit: the run stops between chunks and hands the rest of the
users (those after the last one enqueued) to a continuation task on the reports queue, which adds what it
enqueues to the run's counters in the ledger."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from expensebot.bootstrap import Runtime
from expensebot.delivery import Attachment, Delivery, OutboundMessage, count, deliver
from expensebot.money import format_money
from expensebot.months import FirstOfMonth
from expensebot.observability import logger
from expensebot.scheduling import (
    Continuation,
    Deadline,
    JobContext,
    JobResult,
    add_to_run_counters,
    continue_run,
    current_deadline,
    job,
)
from expensebot.tasks import task
from expensebot.texts import category_name, format_percent, language_for, month_name, t

JOB = "send_monthly_reports"
REPORT_KIND = "monthly_report"  # notifications.kind of a month's report
ON_DEMAND_KIND = "report"  # and of an on-demand one (the bot's /report)
SKIPPED_NOT_LAST_DAY = "not the last day of the month"

# Units sent to SQS between two looks at the soft deadline: 100 SendMessageBatch calls.
ENQUEUE_CHUNK_SIZE = 1_000

TENTH = Decimal("0.1")


# ---------------------------------------------------------------- the calendar rule


def is_last_day_of_month(day: date) -> bool:
    return (day + timedelta(days=1)).day == 1


def month_due(slot: datetime, tz: ZoneInfo) -> date | None:
    """The month whose report is due at this slot (its first day), or None when the slot, read in the
    application's zone, is not on its month's last day. The zone matters: 20:00 in a zone west of UTC is
    already the next day in UTC."""
    local_day = slot.astimezone(tz).date()
    return local_day.replace(day=1) if is_last_day_of_month(local_day) else None


def months_to_report(slot: datetime, tz: ZoneInfo, *, previous_month_owed: bool) -> list[date]:
    """The months whose reports this slot plans, oldest first: the previous month when it is owed (no run
    covering it succeeded), then the slot's own month on its last day."""
    months = [previous_month(slot.astimezone(tz).date())] if previous_month_owed else []
    due = month_due(slot, tz)
    return [*months, due] if due is not None else months


def previous_month(month: date) -> date:
    return (month.replace(day=1) - timedelta(days=1)).replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_bounds(month: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month as instants [start, end) of the application's zone, as periods.month_start has them."""
    following = next_month(month)
    return (
        datetime(month.year, month.month, 1, tzinfo=tz),
        datetime(following.year, following.month, 1, tzinfo=tz),
    )


# ---------------------------------------------------------------- the unit of work


class ReportUnit(BaseModel):
    """One report on the reports queue: the month's report (request_id None) or an on-demand one."""

    user_id: int
    chat_id: int
    language_code: str | None = None
    month: FirstOfMonth
    request_id: str | None = Field(None, min_length=1, max_length=200)

    @property
    def is_monthly(self) -> bool:
        return self.request_id is None

    @property
    def dedupe_key(self) -> str:
        if self.request_id is None:
            return monthly_report_key(self.user_id, f"{self.month:%Y-%m}")
        return f"report_request:{self.request_id}"

    @property
    def kind(self) -> str:
        return REPORT_KIND if self.request_id is None else ON_DEMAND_KIND


def monthly_report_key(user_id: object, month: str) -> str:
    """The delivery's dedupe key of a user's report of a month (YYYY-MM): the worker claims the message
    under it, and `ops history` finds a month's reports, and who has none, by it."""
    return f"{REPORT_KIND}:{user_id}:{month}"


class ReportsContinuation(Continuation):
    """The users left when a run (or a continuation) reached its soft time limit: those after after_user_id
    in `month`, then everyone due in `then_months` (a catch-up run reports two months)."""

    month: date
    after_user_id: int
    then_months: tuple[date, ...] = ()


# ---------------------------------------------------------------- the plan

# One statement for every user. Semi-join on the month's expenses through expenses_user_spent_at, anti-join
# on the reports already taken on; ordered by user_id so a continuation resumes after the last one enqueued.
# Who is owed a month's report, as a condition on `users u`: an active user with at least one expense in the
# month ([%(start)s, %(end)s), month_parameters). The planner sends to those who have not had it yet, and
# `ops history missing` lists those whose report was not sent, by this one rule.
OWED_A_REPORT = """u.is_active
   AND EXISTS (SELECT 1 FROM expenses e
                WHERE e.user_id = u.user_id AND e.spent_at >= %(start)s AND e.spent_at < %(end)s)"""

_USERS_DUE_A_REPORT = f"""
SELECT u.user_id, u.chat_id, u.language_code
  FROM users u
 WHERE {OWED_A_REPORT}
   AND (%(after_user_id)s::bigint IS NULL OR u.user_id > %(after_user_id)s::bigint)
   AND NOT EXISTS (SELECT 1 FROM monthly_reports r WHERE r.user_id = u.user_id AND r.month = %(month)s)
 ORDER BY u.user_id
"""


def month_parameters(runtime: Runtime, month: date) -> dict[str, object]:
    """The parameters OWED_A_REPORT takes for a month (and `month`, its first day)."""
    month = month.replace(day=1)
    start, end = month_bounds(month, runtime.settings.tz)
    return {"start": start, "end": end, "month": month}


def plan_monthly_reports(runtime: Runtime, month: date, *, after_user_id: int | None = None) -> list[ReportUnit]:
    """Every active user with an expense in the month who has not had its report, by user_id."""
    month = month.replace(day=1)
    rows = runtime.db.fetch_tuples(
        _USERS_DUE_A_REPORT, {**month_parameters(runtime, month), "after_user_id": after_user_id}
    )
    # Built without validation: the database's own ids and a month just normalised to its first day are
    # valid by construction, and validating 100k of them cost most of the planner's time (make bench).
    return [
        ReportUnit.model_construct(
            user_id=user_id, chat_id=chat_id, language_code=language_code, month=month, request_id=None
        )
        for user_id, chat_id, language_code in rows
    ]


# A month is owed when no run that planned its reports succeeded (its last-day run records it as `month`,
# a catch-up as `caught_up`), and the job already ran before the month ended.
_MONTH_OWED = """
SELECT NOT EXISTS (SELECT 1 FROM job_runs
                    WHERE job = %(job)s AND status = 'succeeded'
                      AND %(month)s IN (details ->> 'month', details ->> 'caught_up'))
   AND EXISTS (SELECT 1 FROM job_runs WHERE job = %(job)s AND slot < %(month_end)s) AS owed
"""


def month_owed(runtime: Runtime, month: date) -> bool:
    _, month_end = month_bounds(month, runtime.settings.tz)
    (row,) = runtime.db.fetch_all(_MONTH_OWED, {"job": JOB, "month": f"{month:%Y-%m}", "month_end": month_end})
    return bool(row["owed"])


def plan_months(
    runtime: Runtime, months: Sequence[date], *, after_user_id: int | None = None
) -> list[ReportUnit]:
    """The units of several months, month by month; after_user_id applies to the first month only."""
    units: list[ReportUnit] = []
    for i, month in enumerate(months):
        units += plan_monthly_reports(runtime, month, after_user_id=after_user_id if i == 0 else None)
    return units


@job(JOB, queue="reports", schedule="daily 20:00, reports on the month's last day (and catches up a missed one)")
def send_monthly_reports(runtime: Runtime, ctx: JobContext) -> JobResult:
    tz = runtime.settings.tz
    last_month = previous_month(ctx.slot.astimezone(tz).date())
    months = months_to_report(ctx.slot, tz, previous_month_owed=month_owed(runtime, last_month))
    if not months:
        return JobResult(planned=0, enqueued=0, details={"skipped": SKIPPED_NOT_LAST_DAY})
    units = plan_months(runtime, months)
    enqueued, stopped_at = _enqueue_until_deadline(runtime, units, ctx.deadline, ctx.run_id)
    details: dict[str, object] = {}
    if months[0] == last_month:
        details["caught_up"] = f"{last_month:%Y-%m}"
        logger.warning("catching up a month whose reports never went out", extra={"month": f"{last_month:%Y-%m}"})
    if months[-1] != last_month:
        details["month"] = f"{months[-1]:%Y-%m}"
    if stopped_at is not None:
        details["continued"] = True
        continue_run(runtime, _rest_after(stopped_at, months, ctx.run_id), continue_monthly_reports)
    return JobResult(planned=len(units), enqueued=enqueued, details=details)


def _rest_after(
    stopped_at: ReportUnit, months: Sequence[date], run_id: int, generation: int = 1
) -> ReportsContinuation:
    return ReportsContinuation(
        month=stopped_at.month, after_user_id=stopped_at.user_id,
        then_months=tuple(month for month in months if month > stopped_at.month),
        job_run_id=run_id, generation=generation,
    )


def _enqueue_until_deadline(
    runtime: Runtime, units: Sequence[ReportUnit], deadline: Deadline, run_id: int | None
) -> tuple[int, ReportUnit | None]:
    """Enqueues chunk after chunk; returns (units enqueued, the last unit enqueued when the deadline stopped
    it with units left, else None). The first chunk always goes, so every invocation makes progress."""
    enqueued = 0
    for start in range(0, len(units), ENQUEUE_CHUNK_SIZE):
        if start and deadline.expired():
            return enqueued, units[start - 1]
        enqueued += send_monthly_report.delay_many(
            units[start : start + ENQUEUE_CHUNK_SIZE], runtime=runtime, job_run_id=run_id
        )
    return enqueued, None


@task("reports.continue_monthly_reports", args=ReportsContinuation, job=JOB)
def continue_monthly_reports(runtime: Runtime, continuation: ReportsContinuation) -> dict[str, int | bool]:
    """Go on enqueuing a month's reports where a run stopped at its soft time limit."""
    # A duplicate of this message re-plans the same users; the units it enqueues twice cost a message
    # each and nothing more (the report's row and dedupe key make the second one a no-op).
    months = [continuation.month, *continuation.then_months]
    units = plan_months(runtime, months, after_user_id=continuation.after_user_id)
    deadline = current_deadline(runtime.settings.soft_time_limit_seconds)
    enqueued, stopped_at = _enqueue_until_deadline(runtime, units, deadline, continuation.job_run_id)
    add_to_run_counters(runtime, continuation.job_run_id, enqueued_by_continuations=enqueued)
    if stopped_at is not None:
        rest = _rest_after(stopped_at, months, continuation.job_run_id, generation=continuation.generation + 1)
        continue_run(runtime, rest, continue_monthly_reports)
    return {"enqueued": enqueued, "continued": stopped_at is not None}


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class CategorySpend:
    category: str
    amount: Decimal
    share: Decimal  # percent of the currency's month total, one decimal


@dataclass(frozen=True)
class BudgetStatus:
    category: str | None  # None: the whole month's budget
    limit: Decimal
    spent: Decimal  # what the month spent in the budget's currency (and category)
    currency: str = "RUB"

    @property
    def percent(self) -> Decimal:
        return self.spent * 100 / self.limit

    @property
    def over_by(self) -> Decimal:
        return max(Decimal(0), self.spent - self.limit)


def _change_percent(total: Decimal, previous: Decimal) -> Decimal | None:
    if previous == 0:
        return None
    return ((total - previous) * 100 / previous).quantize(TENTH, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class CurrencyMonth:
    """One currency's month: amounts in different currencies are never added, so a report has one of these
    per currency the month (or a budget) used."""

    currency: str
    total: Decimal  # expenses
    expense_count: int
    categories: tuple[CategorySpend, ...]  # largest first
    daily: tuple[Decimal, ...]  # spending per day of the month, day 1 first, one entry per day
    income: Decimal
    income_count: int
    income_categories: tuple[CategorySpend, ...]
    previous_total: Decimal
    budgets: tuple[BudgetStatus, ...]

    @property
    def balance(self) -> Decimal:
        return self.income - self.total

    @property
    def change(self) -> Decimal:
        return self.total - self.previous_total

    @property
    def change_percent(self) -> Decimal | None:
        """Against the previous month, one decimal; None when that month had nothing to compare with."""
        return _change_percent(self.total, self.previous_total)


@dataclass(frozen=True)
class MonthTotals:
    """A month of the six-month history, in one currency."""

    month: date  # its first day
    currency: str
    expenses: Decimal
    incomes: Decimal


@dataclass(frozen=True)
class MonthlyReport:
    user_id: int
    month: date
    user_currency: str
    currencies: tuple[CurrencyMonth, ...]  # the user's currency first, then by code
    history: tuple[MonthTotals, ...]  # the last six months (this one included), by currency then month

    @property
    def main(self) -> CurrencyMonth:
        """The currency the chart draws: the user's own when the month spent in it, else the first that spent."""
        for month in self.currencies:
            if month.expense_count:
                return month
        return self.currencies[0] if self.currencies else _empty_currency_month(self.user_currency, self.month)

    @property
    def expense_count(self) -> int:
        return sum(month.expense_count for month in self.currencies)

    @property
    def income_count(self) -> int:
        return sum(month.income_count for month in self.currencies)

    @property
    def is_empty(self) -> bool:
        return self.expense_count == 0 and self.income_count == 0

    # The main currency's figures, under the names the text report and the monthly_reports row use.
    @property
    def total(self) -> Decimal:
        return self.main.total

    @property
    def categories(self) -> tuple[CategorySpend, ...]:
        return self.main.categories

    @property
    def previous_total(self) -> Decimal:
        return self.main.previous_total

    @property
    def change(self) -> Decimal:
        return self.main.change

    @property
    def change_percent(self) -> Decimal | None:
        return self.main.change_percent

    @property
    def budgets(self) -> tuple[BudgetStatus, ...]:
        return tuple(budget for month in self.currencies for budget in month.budgets)

    def history_months(self) -> tuple[date, ...]:
        """The six months of the history, oldest first."""
        months = [self.month]
        for _ in range(HISTORY_MONTHS - 1):
            months.insert(0, previous_month(months[0]))
        return tuple(months)


HISTORY_MONTHS = 6


def days_in_month(month: date) -> int:
    return (next_month(month) - month).days


def _empty_currency_month(code: str, month: date) -> CurrencyMonth:
    return CurrencyMonth(code, Decimal(0), 0, (), (Decimal(0),) * days_in_month(month), Decimal(0), 0, (),
                         Decimal(0), ())


def category_shares(amounts: Mapping[str, Decimal]) -> tuple[CategorySpend, ...]:
    """Categories largest first (ties by name), each with its share of the total in percent, one decimal."""
    total = sum(amounts.values(), Decimal(0))
    ordered = sorted(amounts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(
        CategorySpend(
            category,
            amount,
            (amount * 100 / total).quantize(TENTH, rounding=ROUND_HALF_EVEN) if total else Decimal(0),
        )
        for category, amount in ordered
    )


# One statement, one snapshot, for everything a report shows: the six months' expenses and incomes of the
# user (one range scan each, through expenses_user_spent_at and incomes_user_received), grouped in the
# application's zone by category, by day and by month, per currency; the user's budgets; the user's currency.
# Months and days are read in the application's zone (%(tz)s), as month_bounds cuts them.
_REPORT_DATA = """
WITH e AS MATERIALIZED (
    SELECT currency, category, amount, spent_at AT TIME ZONE %(tz)s AS local_at, spent_at >= %(start)s AS this_month
      FROM expenses
     WHERE user_id = %(user_id)s AND spent_at >= %(history_start)s AND spent_at < %(end)s
), i AS MATERIALIZED (
    SELECT currency, category, amount, received_at AT TIME ZONE %(tz)s AS local_at,
           received_at >= %(start)s AS this_month
      FROM incomes
     WHERE user_id = %(user_id)s AND received_at >= %(history_start)s AND received_at < %(end)s
)
SELECT 'expense_category' AS source, currency, category AS label, SUM(amount) AS amount, COUNT(*) AS n
  FROM e WHERE this_month GROUP BY currency, category
UNION ALL
SELECT 'expense_day', currency, extract(day FROM local_at)::int::text, SUM(amount), COUNT(*)
  FROM e WHERE this_month GROUP BY currency, 3
UNION ALL
SELECT 'expense_month', currency, to_char(local_at, 'YYYY-MM'), SUM(amount), COUNT(*)
  FROM e GROUP BY currency, 3
UNION ALL
SELECT 'income_category', currency, category, SUM(amount), COUNT(*)
  FROM i WHERE this_month GROUP BY currency, category
UNION ALL
SELECT 'income_month', currency, to_char(local_at, 'YYYY-MM'), SUM(amount), COUNT(*)
  FROM i GROUP BY currency, 3
UNION ALL
-- A week's or a day's budget is not a month's: the report shows the month's only.
SELECT 'budget', currency, category, amount, NULL FROM budgets WHERE user_id = %(user_id)s AND period = 'month'
UNION ALL
SELECT 'user', currency, NULL, NULL, NULL FROM users WHERE user_id = %(user_id)s
"""


def report_parameters(runtime: Runtime, user_id: int, month: date) -> dict[str, object]:
    month = month.replace(day=1)
    tz = runtime.settings.tz
    start, end = month_bounds(month, tz)
    history_start = month
    for _ in range(HISTORY_MONTHS - 1):
        history_start = previous_month(history_start)
    return {
        "user_id": user_id, "start": start, "end": end, "tz": tz.key,
        "history_start": month_bounds(history_start, tz)[0],
    }


def build_monthly_report(runtime: Runtime, user_id: int, month: date) -> MonthlyReport:
    month = month.replace(day=1)
    rows = runtime.db.fetch_tuples(_REPORT_DATA, report_parameters(runtime, user_id, month))
    return report_from_rows(user_id, month, rows, default_currency=runtime.settings.default_currency)


def report_from_rows(
    user_id: int, month: date, rows: Sequence[tuple[Any, ...]], *, default_currency: str = "RUB"
) -> MonthlyReport:
    """The report out of _REPORT_DATA's rows (source, currency, label, amount, count); pure, so the bench
    and the unit tests build reports without a database."""
    user_currency = default_currency
    spend: dict[str, dict[str, Decimal]] = defaultdict(dict)
    counts: dict[str, int] = defaultdict(int)
    daily: dict[str, dict[int, Decimal]] = defaultdict(dict)
    income: dict[str, dict[str, Decimal]] = defaultdict(dict)
    income_counts: dict[str, int] = defaultdict(int)
    by_month: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    budgets: dict[str, list[tuple[str | None, Decimal]]] = defaultdict(list)
    for source, code, label, amount, n in rows:
        if source == "expense_category":
            spend[code][label] = amount
            counts[code] += n
        elif source == "expense_day":
            daily[code][int(label)] = amount
        elif source == "expense_month":
            by_month[code, label][0] = amount
        elif source == "income_category":
            income[code][label] = amount
            income_counts[code] += n
        elif source == "income_month":
            by_month[code, label][1] = amount
        elif source == "budget":
            budgets[code].append((label, amount))
        elif source == "user":
            user_currency = code
    previous = f"{previous_month(month):%Y-%m}"
    codes = sorted(spend.keys() | income.keys() | budgets.keys(), key=lambda code: (code != user_currency, code))
    day_count = days_in_month(month)
    currencies = []
    for code in codes:
        total = sum(spend[code].values(), Decimal(0))
        currencies.append(CurrencyMonth(
            currency=code,
            total=total,
            expense_count=counts[code],
            categories=category_shares(spend[code]),
            daily=tuple(daily[code].get(day, Decimal(0)) for day in range(1, day_count + 1)),
            income=sum(income[code].values(), Decimal(0)),
            income_count=income_counts[code],
            income_categories=category_shares(income[code]),
            previous_total=by_month[code, previous][0] if (code, previous) in by_month else Decimal(0),
            budgets=tuple(
                BudgetStatus(category, limit, total if category is None else spend[code].get(category, Decimal(0)),
                             code)
                for category, limit in sorted(budgets[code], key=lambda b: (b[0] is not None, b[0] or ""))
            ),
        ))
    history_codes = sorted({code for code, _ in by_month}, key=lambda code: (code != user_currency, code))
    months = MonthlyReport(user_id, month, user_currency, (), ()).history_months()
    history = tuple(
        MonthTotals(m, code, *by_month.get((code, f"{m:%Y-%m}"), (Decimal(0), Decimal(0))))
        for code in history_codes for m in months
    )
    return MonthlyReport(user_id, month, user_currency, tuple(currencies), history)


def format_tenths(value: Decimal, language: str, *, signed: bool = False) -> str:
    """A percentage with one decimal, written the language's way: 12,5 (ru), 12.5 (en)."""
    text = f"{value.quantize(TENTH, rounding=ROUND_HALF_EVEN):.1f}"
    if signed and value > 0:
        text = f"+{text}"
    return text.replace(".", ",") if language != "en" else text


def signed_money(amount: Decimal, code: str, language: str) -> str:
    return ("+" if amount > 0 else "") + format_money(amount, code, language)


def report_text(report: MonthlyReport, language: str) -> str:
    """The report as a message: per currency (the user's first), totals, categories, incomes and the balance,
    the change against the previous month, budgets."""
    month = month_name(language, report.month.month)
    if report.is_empty:
        return t(language, "report_empty", month=month, year=report.month.year)
    lines = [t(language, "report_title", month=month, year=report.month.year)]
    previous = month_name(language, previous_month(report.month).month)
    for cm in report.currencies:
        if not (cm.expense_count or cm.income_count):
            continue

        def money(amount: Decimal, code: str = cm.currency) -> str:
            return format_money(amount, code, language)

        lines += ["", t(language, "report_total", total=money(cm.total), count=cm.expense_count)]
        if cm.categories:
            lines += ["", t(language, "report_categories")]
            lines += [
                t(language, "report_category_line", category=category_name(language, spend.category),
                  amount=money(spend.amount), share=format_tenths(spend.share, language))
                for spend in cm.categories
            ]
        if cm.income_count:
            lines += ["", t(language, "report_incomes", total=money(cm.income), count=cm.income_count),
                      t(language, "report_balance", amount=signed_money(cm.balance, cm.currency, language))]
        lines.append("")
        change_percent = cm.change_percent
        if change_percent is None:
            lines.append(t(language, "report_previous_none", month=previous))
        else:
            lines.append(t(language, "report_previous", month=previous, total=money(cm.previous_total)))
            lines.append(t(language, "report_change", amount=signed_money(cm.change, cm.currency, language),
                           percent=format_tenths(change_percent, language, signed=True)))
    if report.budgets:
        lines += ["", t(language, "report_budgets")]
        lines += [budget_line(budget, language) for budget in report.budgets]
    return "\n".join(lines)


def budget_line(budget: BudgetStatus, language: str) -> str:
    label = (
        t(language, "report_budget_category", category=category_name(language, budget.category))
        if budget.category
        else t(language, "report_budget_total")
    )
    line = t(language, "report_budget_line", label=label, spent=format_money(budget.spent, budget.currency, language),
             limit=format_money(budget.limit, budget.currency, language), percent=format_percent(budget.percent))
    if budget.over_by > 0:
        line += t(language, "report_budget_over", amount=format_money(budget.over_by, budget.currency, language))
    return line


# ---------------------------------------------------------------- the worker task

# Inserted only while the user exists (a user deleted since the plan gets nothing). A duplicate delivery
# finds the row and goes on to the delivery claim.
_RECORD_MONTHLY_REPORT = """
INSERT INTO monthly_reports (user_id, month, total, expense_count, created_at)
SELECT u.user_id, %(month)s, %(total)s, %(expense_count)s, %(now)s
  FROM users u
 WHERE u.user_id = %(user_id)s
ON CONFLICT (user_id, month) DO NOTHING
"""


@task("reports.send_monthly_report", args=ReportUnit, job=JOB, sends=(REPORT_KIND, ON_DEMAND_KIND))
def send_monthly_report(runtime: Runtime, unit: ReportUnit) -> Delivery | None:
    """Send a user their report for a month: the month's report once, an on-demand one per request."""
    report = build_monthly_report(runtime, unit.user_id, unit.month)
    if unit.is_monthly:
        if report.expense_count == 0:
            # Planned, then the month's expenses went (deleted, or the user with them): nothing to report.
            logger.info("no expenses left in the month: no report", extra={"dedupe_key": unit.dedupe_key})
            return None
        with runtime.db.transaction() as cur:
            cur.execute(
                _RECORD_MONTHLY_REPORT,
                {"user_id": unit.user_id, "month": unit.month, "total": report.total,
                 "expense_count": report.expense_count, "now": runtime.clock.now()},
            )
    language = language_for(unit.language_code)
    return deliver(
        runtime,
        OutboundMessage(
            dedupe_key=unit.dedupe_key,
            kind=unit.kind,
            chat_id=unit.chat_id,
            user_id=unit.user_id,
            text=report_text(report, language),
            attachments=() if report.is_empty else report_attachments(report, language),
        ),
    )


def report_attachments(report: MonthlyReport, language: str) -> tuple[Attachment, ...]:
    """The chart (a photo, the totals in its caption) and the PDF: one report, sent after its text, each
    under its own claim (delivery.py), so a redelivery sends only what did not go out."""
    # Imported here: report_render imports matplotlib when it draws, and only this task draws.
    from expensebot.jobs.report_render import render_report

    try:
        rendered = render_report(report, language)
    except Exception:
        # A drawing that fails for one user's data must not keep the month's text from them: it goes alone,
        # and the failure is in the log (and in FailedRenders) to be fixed.
        logger.exception("could not draw the report's chart and PDF: sending the text alone",
                         extra={"user_id": report.user_id, "month": f"{report.month:%Y-%m}"})
        count("FailedRenders", REPORT_KIND)
        return ()
    return (
        Attachment("sendPhoto", rendered.png_name, rendered.png, "image/png", caption=rendered.caption),
        Attachment("sendDocument", rendered.pdf_name, rendered.pdf, "application/pdf"),
    )
