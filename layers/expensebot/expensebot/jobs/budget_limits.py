"""check_budget_limits — every 30 minutes, queue `notifications`.

A user whose month-to-date spending crosses a threshold (80 %, 90 %, 100 % by default, BUDGET_THRESHOLDS)
of a budget is told once per threshold per month; a jump over several thresholds sends one alert, naming
the highest; a new month starts clean. Months are those of the application's time zone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel

from expensebot.bootstrap import Runtime
from expensebot.delivery import Delivery, OutboundMessage, deliver
from expensebot.money import format_money
from expensebot.observability import logger
from expensebot.periods import month_start
from expensebot.scheduling import JobContext, JobResult, job
from expensebot.tasks import task
from expensebot.texts import category_name, format_percent, language_for, t

JOB = "check_budget_limits"
KIND = "budget_alert"  # notifications.kind of the messages this job\'s task sends


def highest_new_threshold(
    spent: Decimal, limit: Decimal, thresholds: Sequence[int], already_alerted: int | None
) -> int | None:
    """The threshold to alert now, or None: the highest one crossed, if it is above any alerted before."""
    scaled = spent * 100
    crossed = [threshold for threshold in thresholds if scaled >= limit * threshold]
    if not crossed:
        return None
    highest = max(crossed)
    if already_alerted is not None and highest <= already_alerted:
        return None
    return highest


class BudgetAlert(BaseModel):
    """One unit of work on the notifications queue."""

    budget_id: int
    user_id: int
    chat_id: int
    language_code: str | None = None
    category: str | None = None
    month: date
    threshold: int
    spent: Decimal
    limit: Decimal
    currency: str = "RUB"  # the budget's (units enqueued before currencies existed were RUB)

    @property
    def dedupe_key(self) -> str:
        return f"budget_alert:{self.budget_id}:{self.month:%Y-%m}:{self.threshold}"


# One statement for every user: each budget's month-to-date spending (a category budget sums its
# category, the monthly budget everything), with the highest threshold it was alerted at this month. The
# sum is per budget, not per (user, category): only users with a budget are summed at all, and the
# month's rows come from the covering index on spent_at without touching the table. Only budgets at or
# above the lowest threshold come back.
_BUDGETS_OVER_LOWEST_THRESHOLD = """
WITH spend AS (
    SELECT b.id AS budget_id, SUM(e.amount) AS spent
      FROM budgets b
      JOIN expenses e ON e.user_id = b.user_id AND (b.category IS NULL OR e.category = b.category)
     WHERE e.spent_at >= %(month_start)s AND e.spent_at <= %(as_of)s
     GROUP BY b.id
)
SELECT b.id AS budget_id, b.user_id, u.chat_id, u.language_code, b.category, b.amount AS limit_amount,
       s.spent, alerted.threshold AS already_alerted, b.currency
  FROM spend s
  JOIN budgets b ON b.id = s.budget_id
  JOIN users u ON u.user_id = b.user_id AND u.is_active
  LEFT JOIN LATERAL (
        SELECT MAX(a.threshold) AS threshold
          FROM budget_alerts a
         WHERE a.budget_id = b.id AND a.month = %(month)s
  ) alerted ON true
 WHERE s.spent * 100 >= b.amount * %(lowest_threshold)s
"""


def plan_budget_alerts(runtime: Runtime, as_of: datetime) -> list[BudgetAlert]:
    thresholds = runtime.settings.budget_thresholds
    first_instant = month_start(as_of, runtime.settings.tz)
    month = first_instant.date()
    # Tuples, not dicts: at 100k users this fetch would otherwise cost more than the query.
    rows = runtime.db.fetch_tuples(
        _BUDGETS_OVER_LOWEST_THRESHOLD,
        {"month_start": first_instant, "as_of": as_of, "month": month, "lowest_threshold": min(thresholds)},
    )
    alerts = []
    for budget_id, user_id, chat_id, language_code, category, limit, spent, already_alerted, currency in rows:
        threshold = highest_new_threshold(spent, limit, thresholds, already_alerted)
        if threshold is not None:
            alerts.append(
                BudgetAlert(
                    budget_id=budget_id,
                    user_id=user_id,
                    chat_id=chat_id,
                    language_code=language_code,
                    category=category,
                    month=month,
                    threshold=threshold,
                    spent=spent,
                    limit=limit,
                    currency=currency,
                )
            )
    return alerts


@job(JOB, queue="notifications", schedule="every 30 minutes")
def check_budget_limits(runtime: Runtime, ctx: JobContext) -> JobResult:
    alerts = plan_budget_alerts(runtime, ctx.slot)
    enqueued = ctx.enqueue(runtime, send_budget_alert, alerts)
    return JobResult(planned=len(alerts), enqueued=enqueued)


def alert_text(alert: BudgetAlert) -> str:
    language = language_for(alert.language_code)
    label = (
        t(language, "budget_label_category", category=category_name(language, alert.category))
        if alert.category
        else t(language, "budget_label_total")
    )
    key = "budget_alert_over" if alert.threshold >= 100 else "budget_alert"
    return t(
        language,
        key,
        label=label,
        threshold=alert.threshold,
        spent=format_money(alert.spent, alert.currency, language),
        limit=format_money(alert.limit, alert.currency, language),
        percent=format_percent(alert.spent * 100 / alert.limit),
    )


# Records the threshold as alerted for the month, unless a higher one already was (a later run planned
# it while this message waited in the queue). A duplicate delivery finds its own row and goes on to the
# delivery claim, which knows whether the message already went out.
_MARK_THRESHOLD = """
INSERT INTO budget_alerts (budget_id, month, threshold, created_at)
SELECT b.id, %(month)s, %(threshold)s, %(now)s
  FROM budgets b
 WHERE b.id = %(budget_id)s
   AND NOT EXISTS (SELECT 1 FROM budget_alerts a
                    WHERE a.budget_id = b.id AND a.month = %(month)s AND a.threshold > %(threshold)s)
ON CONFLICT DO NOTHING
"""


@task("notifications.send_budget_alert", args=BudgetAlert, job=JOB, sends=(KIND,))
def send_budget_alert(runtime: Runtime, alert: BudgetAlert) -> Delivery | None:
    """Tell a user their budget crossed a threshold (once per threshold per month)."""
    with runtime.db.transaction() as cur:
        cur.execute(
            _MARK_THRESHOLD,
            {"budget_id": alert.budget_id, "month": alert.month, "threshold": alert.threshold,
             "now": runtime.clock.now()},
        )
        cur.execute(
            "SELECT 1 FROM budget_alerts WHERE budget_id = %s AND month = %s AND threshold = %s",
            (alert.budget_id, alert.month, alert.threshold),
        )
        still_due = cur.fetchone() is not None
    if not still_due:
        logger.info("budget alert superseded or budget removed", extra={"dedupe_key": alert.dedupe_key})
        return None
    return deliver(
        runtime,
        OutboundMessage(
            dedupe_key=alert.dedupe_key,
            kind=KIND,
            chat_id=alert.chat_id,
            user_id=alert.user_id,
            text=alert_text(alert),
        ),
    )
