"""The bot's use cases: users, expenses, budgets and recurring payments. Each takes the cursor of the
caller's transaction, so that the webhook stores an update's effects and marks the update processed
atomically. Every query is scoped by the user's id: a user only ever sees and changes their own data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from expensebot.categories import guess_category
from expensebot.periods import PERIOD_BOUNDS_SQL


@dataclass(frozen=True)
class TelegramUser:
    user_id: int
    chat_id: int
    first_name: str | None
    username: str | None
    language_code: str | None


def touch_user(cur: Any, user: TelegramUser, now: datetime) -> None:
    """Register the user on first contact; any later message reactivates one who had blocked the bot."""
    cur.execute(
        """
        INSERT INTO users (user_id, chat_id, username, first_name, language_code, created_at, last_seen_at)
        VALUES (%(user_id)s, %(chat_id)s, %(username)s, %(first_name)s, %(language)s, %(now)s, %(now)s)
        ON CONFLICT (user_id) DO UPDATE
           SET chat_id = EXCLUDED.chat_id, username = EXCLUDED.username, first_name = EXCLUDED.first_name,
               language_code = EXCLUDED.language_code, last_seen_at = EXCLUDED.last_seen_at,
               is_active = true, deactivated_reason = NULL
        """,
        {
            "user_id": user.user_id,
            "chat_id": user.chat_id,
            "username": user.username,
            "first_name": user.first_name,
            "language": user.language_code or "ru",
            "now": now,
        },
    )


@dataclass(frozen=True)
class RecordedExpense:
    id: int
    amount: Decimal
    category: str
    description: str
    month_total: Decimal


def record_expense(
    cur: Any,
    *,
    user_id: int,
    amount: Decimal,
    description: str,
    spent_at: datetime,
    month_start: datetime,
    now: datetime,
    source_update_id: int | None = None,
) -> RecordedExpense:
    category = guess_category(description)
    cur.execute(
        """
        INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at, source_update_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id
        """,
        (user_id, amount, category, description, spent_at, now, source_update_id),
    )
    expense_id = cur.fetchone()["id"]
    cur.execute(
        "SELECT COALESCE(SUM(amount), 0) AS total FROM expenses WHERE user_id = %s AND spent_at >= %s",
        (user_id, month_start),
    )
    return RecordedExpense(expense_id, amount, category, description, cur.fetchone()["total"])


def set_budget(
    cur: Any, *, user_id: int, amount: Decimal, category: str | None, period: str, now: datetime
) -> str:
    """Sets (or replaces) the user's budget for the period and category, in the user's currency; returns
    the currency. Setting it again after /currency moves it to the new currency: a budget counts only the
    expenses in its own."""
    cur.execute(
        """
        INSERT INTO budgets (user_id, period, category, amount, currency, created_at, updated_at)
        SELECT u.user_id, %(period)s, %(category)s, %(amount)s, u.currency, %(now)s, %(now)s
          FROM users u WHERE u.user_id = %(user_id)s
        ON CONFLICT (user_id, period, (COALESCE(category, ''))) DO UPDATE
           SET amount = EXCLUDED.amount, currency = EXCLUDED.currency, updated_at = EXCLUDED.updated_at
        RETURNING currency
        """,
        {"user_id": user_id, "period": period, "category": category, "amount": amount, "now": now},
    )
    return str(cur.fetchone()["currency"])


@dataclass(frozen=True)
class RemovedBudget:
    amount: Decimal
    currency: str


def remove_budget(cur: Any, *, user_id: int, period: str, category: str | None) -> RemovedBudget | None:
    """Removes the user's budget for the period and category (its alerts go with it); None when there is
    none."""
    cur.execute(
        """
        DELETE FROM budgets
         WHERE user_id = %s AND period = %s AND COALESCE(category, '') = COALESCE(%s, '')
        RETURNING amount, currency
        """,
        (user_id, period, category),
    )
    row = cur.fetchone()
    return None if row is None else RemovedBudget(row["amount"], row["currency"])


@dataclass(frozen=True)
class BudgetUsage:
    period: str
    category: str | None
    currency: str
    limit: Decimal
    spent: Decimal
    days_left: int  # in the period, today included

    @property
    def percent(self) -> Decimal:
        return self.spent * 100 / self.limit


def budget_usage(cur: Any, *, user_id: int, as_of: datetime, timezone: str) -> list[BudgetUsage]:
    """The user's budgets, months first, then weeks, then days, each with what was spent in its period so
    far (the period that holds `as_of` in the application's zone) in the budget's currency."""
    cur.execute(
        f"""
        WITH bounds AS ({PERIOD_BOUNDS_SQL})
        SELECT b.period, b.category, b.currency, b.amount AS limit_amount, p.days_left,
               COALESCE((SELECT SUM(e.amount) FROM expenses e
                          WHERE e.user_id = b.user_id AND e.spent_at >= p.starts_at AND e.currency = b.currency
                            AND (b.category IS NULL OR e.category = b.category)), 0) AS spent
          FROM budgets b
          JOIN bounds p ON p.period = b.period
         WHERE b.user_id = %(user_id)s
         ORDER BY array_position(ARRAY['month', 'week', 'day'], b.period), b.category NULLS FIRST
        """,
        {"user_id": user_id, "as_of": as_of, "tz": timezone},
    )
    return [
        BudgetUsage(row["period"], row["category"], row["currency"], row["limit_amount"], row["spent"],
                    row["days_left"])
        for row in cur.fetchall()
    ]


@dataclass(frozen=True)
class DeletedExpense:
    amount: Decimal
    category: str
    description: str
    spent_at: datetime


def undo_last_expense(cur: Any, *, user_id: int) -> DeletedExpense | None:
    """Deletes the user's latest expense (by when it was spent, then by when it was stored); None when
    the user has none."""
    cur.execute(
        """
        DELETE FROM expenses
         WHERE id = (SELECT id FROM expenses WHERE user_id = %(user_id)s
                      ORDER BY spent_at DESC, id DESC LIMIT 1 FOR UPDATE)
           AND user_id = %(user_id)s
        RETURNING amount, category, description, spent_at
        """,
        {"user_id": user_id},
    )
    row = cur.fetchone()
    return None if row is None else DeletedExpense(row["amount"], row["category"], row["description"], row["spent_at"])


def month_expense_count(cur: Any, *, user_id: int, month_start: datetime) -> int:
    cur.execute(
        "SELECT count(*) AS n FROM expenses WHERE user_id = %s AND spent_at >= %s", (user_id, month_start)
    )
    return int(cur.fetchone()["n"])


@dataclass(frozen=True)
class RecurringPayment:
    id: int
    day_of_month: int
    amount: Decimal
    category: str
    description: str


_RECURRING_COLUMNS = "id, day_of_month, amount, category, description"


def _recurring(row: dict[str, Any]) -> RecurringPayment:
    return RecurringPayment(row["id"], row["day_of_month"], row["amount"], row["category"], row["description"])


def add_recurring(
    cur: Any, *, user_id: int, day_of_month: int, amount: Decimal, description: str, now: datetime
) -> RecurringPayment:
    """A monthly payment on that day, categorised like an expense with the same description."""
    cur.execute(
        f"""
        INSERT INTO recurring_payments (user_id, day_of_month, amount, description, category, created_at)
        VALUES (%s, %s, %s, %s, %s, %s)
        RETURNING {_RECURRING_COLUMNS}
        """,
        (user_id, day_of_month, amount, description, guess_category(description), now),
    )
    return _recurring(cur.fetchone())


def active_recurring(cur: Any, *, user_id: int) -> list[RecurringPayment]:
    cur.execute(
        f"SELECT {_RECURRING_COLUMNS} FROM recurring_payments WHERE user_id = %s AND is_active"
        " ORDER BY day_of_month, id",
        (user_id,),
    )
    return [_recurring(row) for row in cur.fetchall()]


def stop_recurring(cur: Any, *, user_id: int, payment_id: int) -> RecurringPayment | None:
    """Stops one of the user's active payments; None when the user has no active payment with that id
    (another user's id is "not found" too, so ids reveal nothing)."""
    cur.execute(
        f"""
        UPDATE recurring_payments SET is_active = false
         WHERE id = %s AND user_id = %s AND is_active
        RETURNING {_RECURRING_COLUMNS}
        """,
        (payment_id, user_id),
    )
    row = cur.fetchone()
    return None if row is None else _recurring(row)
