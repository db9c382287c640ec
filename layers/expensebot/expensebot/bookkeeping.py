"""The bot's use cases: users, expenses and budgets. Each takes the cursor of the caller's transaction,
so that the webhook stores an update's effects and marks the update processed atomically."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from expensebot.categories import guess_category


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


def set_budget(cur: Any, *, user_id: int, amount: Decimal, category: str | None, now: datetime) -> None:
    cur.execute(
        """
        INSERT INTO budgets (user_id, category, amount, created_at, updated_at)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (user_id, (COALESCE(category, ''))) DO UPDATE
           SET amount = EXCLUDED.amount, updated_at = EXCLUDED.updated_at
        """,
        (user_id, category, amount, now, now),
    )


@dataclass(frozen=True)
class BudgetUsage:
    category: str | None
    limit: Decimal
    spent: Decimal

    @property
    def percent(self) -> Decimal:
        return self.spent * 100 / self.limit


def budget_usage(cur: Any, *, user_id: int, month_start: datetime) -> list[BudgetUsage]:
    cur.execute(
        """
        SELECT b.category, b.amount AS limit_amount,
               COALESCE((SELECT SUM(e.amount) FROM expenses e
                          WHERE e.user_id = b.user_id AND e.spent_at >= %(month_start)s
                            AND (b.category IS NULL OR e.category = b.category)), 0) AS spent
          FROM budgets b
         WHERE b.user_id = %(user_id)s
         ORDER BY b.category NULLS FIRST
        """,
        {"user_id": user_id, "month_start": month_start},
    )
    return [BudgetUsage(row["category"], row["limit_amount"], row["spent"]) for row in cur.fetchall()]
