"""process_recurring_payments — daily 12:00, queue `recurring`.

Each active recurring payment of an active user falls due once a month, on its day of the month; a day
29, 30 or 31 falls on the last day of a shorter month (31 → 28 February 2026, 29 February 2028, 30 April).
The first due date is the first such day on or after the day the payment was created (in the application's
time zone). Every due date up to and including today (the run's slot, in the application's zone) that is
later than the payment's latest booking becomes an expense on that date (spent at 12:00, the schedule's
time) and a notice to its owner; so a run missed yesterday, or for several months, is caught up by the
next run, each date once. A (payment, due date) pair is booked at most once, whatever the redeliveries:
the unique key `expenses_recurring_once` enforces it.

Why "later than the latest booking" rather than "every unbooked date since creation": booked expenses do
not stay forever. The retention cleanup deletes them after RETENTION_DAYS, and a user may delete one that
did not happen (/undo); neither should be booked again. So the latest booked date is kept on the payment
itself (`booked_through`), not read back from the expenses that may be gone. A date skipped because its
unit is still on the queue (or parked in the DLQ) is not lost: the unit carries it, and the unique key
makes a late booking safe.

A recurring income (kind 'income', `/recurring 10 +50000 зарплата`) is booked the same way into `incomes`,
under its own unique key `incomes_recurring_once`; every booking keeps the payment's currency."""

from __future__ import annotations

import calendar
from datetime import date, datetime, time
from decimal import Decimal

from pydantic import BaseModel

from expensebot.bootstrap import Runtime
from expensebot.delivery import Delivery, OutboundMessage, deliver
from expensebot.money import format_money
from expensebot.observability import logger
from expensebot.scheduling import JobContext, JobResult, job
from expensebot.tasks import task
from expensebot.texts import catalog, category_name, language_for, t

JOB = "process_recurring_payments"
KIND = "recurring_notice"  # notifications.kind of the messages this job\'s task sends

# The schedule's time: a booked payment is spent at noon of its due date, in the application's zone.
BOOKING_TIME = time(12, 0)


def due_date_in_month(day_of_month: int, year: int, month: int) -> date:
    """The payment's due date in a month: its day, or the month's last day when the month is shorter."""
    if not 1 <= day_of_month <= 31:
        raise ValueError(f"day_of_month must be between 1 and 31, not {day_of_month}")
    last_day = calendar.monthrange(year, month)[1]
    return date(year, month, min(day_of_month, last_day))


def due_dates(day_of_month: int, created_on: date, today: date) -> list[date]:
    """Every due date from the first one on or after `created_on` up to and including `today`."""
    dates: list[date] = []
    year, month = created_on.year, created_on.month
    while True:
        due = due_date_in_month(day_of_month, year, month)
        if due > today:
            return dates
        if due >= created_on:
            dates.append(due)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


class RecurringDue(BaseModel):
    """One unit of work on the recurring queue: one payment's one due date."""

    payment_id: int
    user_id: int
    chat_id: int
    language_code: str | None = None
    due_date: date
    amount: Decimal
    description: str
    category: str
    # Defaults for units enqueued before currencies and incomes existed: those were RUB expenses.
    currency: str = "RUB"
    kind: str = "expense"

    @property
    def dedupe_key(self) -> str:
        return f"recurring:{self.payment_id}:{self.due_date.isoformat()}"


# One statement for every payment. Per payment, the months from the one its plan starts in (the day after
# its latest booking, or its creation day when it has none) to today's; in each month the due date is the
# payment's day or the month's last day, whichever is earlier. A payment booked monthly yields a month or
# two of rows, not its whole history. Month arithmetic is on `timestamp` (no zone), so no daylight-saving
# change can shift a month's first day.
_DUE_AND_UNBOOKED = """
WITH active AS (
    SELECT p.id AS payment_id, p.user_id, u.chat_id, u.language_code, p.day_of_month, p.amount,
           p.description, p.category, p.currency, p.kind,
           GREATEST((p.created_at AT TIME ZONE %(tz)s)::date, p.booked_through + 1) AS plan_from
      FROM recurring_payments p
      JOIN users u ON u.user_id = p.user_id AND u.is_active
     WHERE p.is_active
), due AS (
    SELECT a.*,
           month_start::date
             + LEAST(a.day_of_month,
                     EXTRACT(DAY FROM month_start + interval '1 month' - interval '1 day')::int) - 1
             AS due_date
      FROM active a
     CROSS JOIN LATERAL generate_series(date_trunc('month', a.plan_from::timestamp),
                                        date_trunc('month', %(today)s::timestamp),
                                        interval '1 month') AS month_start
)
SELECT payment_id, user_id, chat_id, language_code, due_date, amount, description, category, currency, kind
  FROM due
 WHERE due_date >= plan_from AND due_date <= %(today)s
 ORDER BY due_date, payment_id
"""


def plan_recurring_payments(runtime: Runtime, today: date) -> list[RecurringDue]:
    rows = runtime.db.fetch_all(_DUE_AND_UNBOOKED, {"tz": runtime.settings.app_timezone, "today": today})
    return [RecurringDue.model_validate(row) for row in rows]


@job(JOB, queue="recurring", schedule="daily 12:00")
def process_recurring_payments(runtime: Runtime, ctx: JobContext) -> JobResult:
    today = ctx.slot.astimezone(runtime.settings.tz).date()
    dues = plan_recurring_payments(runtime, today)
    enqueued = ctx.enqueue(runtime, book_recurring_payment, dues)
    caught_up = sum(1 for due in dues if due.due_date < today)
    return JobResult(planned=len(dues), enqueued=enqueued, details={"today": today.isoformat(), "caught_up": caught_up})


def format_due_date(due_date: date, language: str) -> str:
    month = catalog(language)["recurring_month_names"][due_date.month - 1]
    return t(language, "recurring_due_date", day=due_date.day, month=month, year=due_date.year)


def notice_text(
    due_date: date, amount: Decimal, description: str, category: str, language: str, currency: str = "RUB",
    *, income: bool = False,
) -> str:
    return t(
        language,
        "recurring_income_booked" if income else "recurring_booked",
        amount=format_money(amount, currency, language),
        description=description,
        category=category_name(language, category),
        due_date=format_due_date(due_date, language),
    )


# Books the due date from the payment as it is now, and only while it is active (deactivated after the
# plan: nothing is booked): an expense, or an income for a recurring income. A duplicate delivery conflicts
# on the unique key and books nothing.
_BOOK = """
INSERT INTO expenses (user_id, amount, currency, category, description, spent_at, created_at,
                      recurring_payment_id, due_date)
SELECT p.user_id, p.amount, p.currency, p.category, p.description, %(spent_at)s, %(now)s, p.id, %(due_date)s
  FROM recurring_payments p
 WHERE p.id = %(payment_id)s AND p.is_active AND p.kind = 'expense'
ON CONFLICT ON CONSTRAINT expenses_recurring_once DO NOTHING
"""

_BOOK_INCOME = """
INSERT INTO incomes (user_id, amount, currency, category, description, received_at, created_at,
                     recurring_payment_id, due_date)
SELECT p.user_id, p.amount, p.currency, p.category, p.description, %(spent_at)s, %(now)s, p.id, %(due_date)s
  FROM recurring_payments p
 WHERE p.id = %(payment_id)s AND p.is_active AND p.kind = 'income'
ON CONFLICT ON CONSTRAINT incomes_recurring_once DO NOTHING
"""

# Units of a catch-up may run in any order: the payment remembers the latest date booked, never an earlier.
_ADVANCE = """
UPDATE recurring_payments SET booked_through = GREATEST(booked_through, %(due_date)s)
 WHERE id = %(payment_id)s AND is_active
"""

# What was booked, by this delivery or an earlier one: the notice tells exactly that.
_BOOKED = """
SELECT amount, currency, description, category, false AS income FROM expenses
 WHERE recurring_payment_id = %(payment_id)s AND due_date = %(due_date)s
UNION ALL
SELECT amount, currency, description, category, true FROM incomes
 WHERE recurring_payment_id = %(payment_id)s AND due_date = %(due_date)s
"""


@task("recurring.book_recurring_payment", args=RecurringDue, job=JOB, sends=(KIND,))
def book_recurring_payment(runtime: Runtime, due: RecurringDue) -> Delivery | None:
    """Book one due date of a recurring payment as an expense (a recurring income as an income) and tell its
    owner (once per payment and date)."""
    spent_at = datetime.combine(due.due_date, BOOKING_TIME, tzinfo=runtime.settings.tz)
    params = {"payment_id": due.payment_id, "due_date": due.due_date, "spent_at": spent_at,
              "now": runtime.clock.now()}
    with runtime.db.transaction() as cur:
        # Each statement books only its kind of payment (the payment's row decides, not the unit's copy).
        cur.execute(_BOOK, params)
        cur.execute(_BOOK_INCOME, params)
        cur.execute(_ADVANCE, params)
        cur.execute(_BOOKED, params)
        booked = cur.fetchone()
    if booked is None:
        logger.info("recurring payment deactivated or removed: nothing booked", extra={"dedupe_key": due.dedupe_key})
        return None
    # A duplicate delivery reaches here too: the claim knows whether the notice already went out, and a
    # booking whose notice was lost to a crash gets it now.
    language = language_for(due.language_code)
    return deliver(
        runtime,
        OutboundMessage(
            dedupe_key=due.dedupe_key,
            kind=KIND,
            chat_id=due.chat_id,
            user_id=due.user_id,
            text=notice_text(
                due.due_date, booked["amount"], booked["description"], booked["category"], language,
                booked["currency"], income=booked["income"],
            ),
        ),
    )
