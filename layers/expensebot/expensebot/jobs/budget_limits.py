"""check_budget_limits — every 30 minutes, queue `notifications`.

A budget is for a day, a week (from Monday) or a month, in the application's time zone, and in one currency:
it counts only the expenses in its currency. A user whose spending in the period so far crosses a threshold
(80 %, 90 %, 100 % by default, BUDGET_THRESHOLDS) of a budget is told once per threshold per period; a jump
over several thresholds sends one alert, naming the highest; a new period starts clean (the thresholds
alerted are remembered under the period's first day). The alert names the period, what is spent of the
limit, what is left (or how much over) and how many days the period has left."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field

from expensebot.bootstrap import Runtime
from expensebot.delivery import Delivery, OutboundMessage, deliver
from expensebot.money import format_money
from expensebot.observability import logger
from expensebot.periods import PERIOD_BOUNDS_SQL
from expensebot.scheduling import JobContext, JobResult, job
from expensebot.tasks import task
from expensebot.texts import budget_label, days_left_text, format_percent, language_for, t

JOB = "check_budget_limits"
KIND = "budget_alert"  # notifications.kind of the messages this job's task sends

Period = Literal["day", "week", "month"]


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
    """One unit of work on the notifications queue. A message queued before budgets had periods carries
    `month` and no period, currency or days left: it is read as the month's, in the default currency."""

    budget_id: int
    user_id: int
    chat_id: int
    language_code: str | None = None
    category: str | None = None
    period: Period = "month"
    period_start: date = Field(validation_alias=AliasChoices("period_start", "month"))
    currency: str | None = None  # None: a message from before currencies, in the configured default
    threshold: int
    spent: Decimal
    limit: Decimal
    days_left: int | None = None  # counting the day the check ran

    @property
    def dedupe_key(self) -> str:
        # A month's key is the one it had before periods existed, so an alert already sent is not sent again
        # by a message queued across the deploy; a day's or a week's key carries its first day.
        if self.period == "month":
            return f"budget_alert:{self.budget_id}:{self.period_start:%Y-%m}:{self.threshold}"
        return f"budget_alert:{self.budget_id}:{self.period}:{self.period_start:%Y-%m-%d}:{self.threshold}"


# One statement for every user and every period: each budget's spending in its period so far (a category
# budget sums its category, a whole-period budget everything, both in the budget's currency only), with the
# highest threshold alerted in this period. The periods' bounds come from `as_of` in the application's zone
# (PERIOD_BOUNDS_SQL). The expenses are read once, from the earliest of the three starts (a week may begin in
# the previous month), as an index-only range scan of the covering index on spent_at; each row is matched to
# its user's budgets by currency and category, and kept for a budget only from that budget's period start.
# Only users with a budget are summed, and only budgets at or above the lowest threshold come back.
_BUDGETS_OVER_LOWEST_THRESHOLD = f"""
WITH bounds AS MATERIALIZED ({PERIOD_BOUNDS_SQL}),
spend AS (
    SELECT b.id AS budget_id, SUM(e.amount) AS spent
      FROM expenses e
      JOIN budgets b ON b.user_id = e.user_id AND b.currency = e.currency
                    AND (b.category IS NULL OR e.category = b.category)
      JOIN bounds p ON p.period = b.period
     WHERE e.spent_at >= (SELECT MIN(starts_at) FROM bounds) AND e.spent_at <= %(as_of)s
       AND e.spent_at >= p.starts_at
     GROUP BY b.id
)
SELECT b.id AS budget_id, b.user_id, u.chat_id, u.language_code, b.category, b.period, b.currency,
       b.amount AS limit_amount, s.spent, p.period_start, p.days_left, alerted.threshold AS already_alerted
  FROM spend s
  JOIN budgets b ON b.id = s.budget_id
  JOIN bounds p ON p.period = b.period
  JOIN users u ON u.user_id = b.user_id AND u.is_active
  LEFT JOIN LATERAL (
        SELECT MAX(a.threshold) AS threshold
          FROM budget_alerts a
         WHERE a.budget_id = b.id AND a.period_start = p.period_start
  ) alerted ON true
 WHERE s.spent * 100 >= b.amount * %(lowest_threshold)s
"""


def plan_budget_alerts(runtime: Runtime, as_of: datetime) -> list[BudgetAlert]:
    thresholds = runtime.settings.budget_thresholds
    # Tuples, not dicts: at 100k users this fetch would otherwise cost more than the query.
    rows = runtime.db.fetch_tuples(
        _BUDGETS_OVER_LOWEST_THRESHOLD,
        {"as_of": as_of, "tz": runtime.settings.app_timezone, "lowest_threshold": min(thresholds)},
    )
    alerts = []
    for (budget_id, user_id, chat_id, language_code, category, period, currency, limit, spent, period_start,
         days_left, already_alerted) in rows:
        threshold = highest_new_threshold(spent, limit, thresholds, already_alerted)
        if threshold is not None:
            alerts.append(
                BudgetAlert(
                    budget_id=budget_id,
                    user_id=user_id,
                    chat_id=chat_id,
                    language_code=language_code,
                    category=category,
                    period=period,
                    period_start=period_start,
                    currency=currency,
                    threshold=threshold,
                    spent=spent,
                    limit=limit,
                    days_left=days_left,
                )
            )
    return alerts


@job(JOB, queue="notifications", schedule="every 30 minutes")
def check_budget_limits(runtime: Runtime, ctx: JobContext) -> JobResult:
    alerts = plan_budget_alerts(runtime, ctx.slot)
    enqueued = ctx.enqueue(runtime, send_budget_alert, alerts)
    return JobResult(planned=len(alerts), enqueued=enqueued)


def alert_text(alert: BudgetAlert, default_currency: str = "RUB") -> str:
    language = language_for(alert.language_code)
    code = alert.currency or default_currency

    def money(amount: Decimal) -> str:
        return format_money(amount, code, language)

    label = budget_label(language, alert.period, alert.category)
    over = alert.threshold >= 100
    lines = [
        t(language, "budget_alert_over" if over else "budget_alert", label=label, threshold=alert.threshold),
        t(language, "budget_alert_spent", spent=money(alert.spent), limit=money(alert.limit),
          percent=format_percent(alert.spent * 100 / alert.limit)),
    ]
    if alert.spent > alert.limit:
        lines[-1] += t(language, "budget_alert_over_by", amount=money(alert.spent - alert.limit))
    else:
        lines[-1] += t(language, "budget_alert_left", amount=money(alert.limit - alert.spent))
    if alert.days_left is not None:
        lines.append(days_left_text(language, alert.period, alert.days_left))
    return "\n".join(lines)


# Records the threshold as alerted for the period, unless a higher one already was (a later run planned
# it while this message waited in the queue). A duplicate delivery finds its own row and goes on to the
# delivery claim, which knows whether the message already went out.
_MARK_THRESHOLD = """
INSERT INTO budget_alerts (budget_id, period_start, threshold, created_at)
SELECT b.id, %(period_start)s, %(threshold)s, %(now)s
  FROM budgets b
 WHERE b.id = %(budget_id)s
   AND NOT EXISTS (SELECT 1 FROM budget_alerts a
                    WHERE a.budget_id = b.id AND a.period_start = %(period_start)s
                      AND a.threshold > %(threshold)s)
ON CONFLICT DO NOTHING
"""


@task("notifications.send_budget_alert", args=BudgetAlert, job=JOB, sends=(KIND,))
def send_budget_alert(runtime: Runtime, alert: BudgetAlert) -> Delivery | None:
    """Tell a user their budget crossed a threshold (once per threshold per period)."""
    with runtime.db.transaction() as cur:
        cur.execute(
            _MARK_THRESHOLD,
            {"budget_id": alert.budget_id, "period_start": alert.period_start, "threshold": alert.threshold,
             "now": runtime.clock.now()},
        )
        cur.execute(
            "SELECT 1 FROM budget_alerts WHERE budget_id = %s AND period_start = %s AND threshold = %s",
            (alert.budget_id, alert.period_start, alert.threshold),
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
            text=alert_text(alert, runtime.settings.default_currency),
        ),
    )
