"""The bot's use cases: users and their currency, expenses, incomes, budgets and recurring payments. Each
takes the cursor of the caller's transaction, so that the webhook stores an update's effects and marks the
update processed atomically. Every query is scoped by the user's id: a user only ever sees and changes their
own data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from expensebot.categories import guess_category, guess_income_category
from expensebot.money import totals_by_currency
from expensebot.periods import PERIOD_BOUNDS_SQL


@dataclass(frozen=True)
class TelegramUser:
    user_id: int
    chat_id: int
    first_name: str | None
    username: str | None
    language_code: str | None


def touch_user(cur: Any, user: TelegramUser, now: datetime, default_currency: str = "RUB") -> str:
    """Register the user on first contact (in the configured default currency); any later message
    reactivates one who had blocked the bot. Returns the user's currency."""
    cur.execute(
        """
        INSERT INTO users (user_id, chat_id, username, first_name, language_code, created_at, last_seen_at,
                           currency)
        VALUES (%(user_id)s, %(chat_id)s, %(username)s, %(first_name)s, %(language)s, %(now)s, %(now)s,
                %(currency)s)
        ON CONFLICT (user_id) DO UPDATE
           SET chat_id = EXCLUDED.chat_id, username = EXCLUDED.username, first_name = EXCLUDED.first_name,
               language_code = EXCLUDED.language_code, last_seen_at = EXCLUDED.last_seen_at,
               is_active = true, deactivated_reason = NULL
        RETURNING currency
        """,
        {
            "user_id": user.user_id,
            "chat_id": user.chat_id,
            "username": user.username,
            "first_name": user.first_name,
            "language": user.language_code or "ru",
            "now": now,
            "currency": default_currency,
        },
    )
    return str(cur.fetchone()["currency"])


def set_user_currency(cur: Any, *, user_id: int, currency: str) -> None:
    """The currency of the user's bare amounts from now on; what is stored keeps its own."""
    cur.execute("UPDATE users SET currency = %s WHERE user_id = %s", (currency, user_id))


MoneyTotals = list[tuple[str, Decimal]]  # one (ISO code, total) per currency, the user's own first


def month_totals(cur: Any, *, table: str, user_id: int, month_start: datetime, first: str) -> MoneyTotals:
    """The user's expenses (or incomes) since the month's start, one total per currency."""
    column = {"expenses": "spent_at", "incomes": "received_at"}[table]
    cur.execute(
        f"SELECT currency, SUM(amount) AS total FROM {table} WHERE user_id = %s AND {column} >= %s"
        " GROUP BY currency",
        (user_id, month_start),
    )
    return totals_by_currency(((row["currency"], row["total"]) for row in cur.fetchall()), first=first)


@dataclass(frozen=True)
class RecordedEntry:
    """An expense or an income just stored."""

    id: int
    amount: Decimal
    currency: str
    category: str
    description: str
    income: bool = False


def record_expense(
    cur: Any,
    *,
    user_id: int,
    amount: Decimal,
    currency: str,
    description: str,
    spent_at: datetime,
    now: datetime,
    source_update_id: int | None = None,
) -> RecordedEntry:
    category = guess_category(description)
    cur.execute(
        """
        INSERT INTO expenses (user_id, amount, currency, category, description, spent_at, created_at,
                              source_update_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
        """,
        (user_id, amount, currency, category, description, spent_at, now, source_update_id),
    )
    return RecordedEntry(cur.fetchone()["id"], amount, currency, category, description)


def record_income(
    cur: Any,
    *,
    user_id: int,
    amount: Decimal,
    currency: str,
    description: str,
    received_at: datetime,
    now: datetime,
    source_update_id: int | None = None,
) -> RecordedEntry:
    category = guess_income_category(description)
    cur.execute(
        """
        INSERT INTO incomes (user_id, amount, currency, category, description, received_at, created_at,
                             source_update_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
        """,
        (user_id, amount, currency, category, description, received_at, now, source_update_id),
    )
    return RecordedEntry(cur.fetchone()["id"], amount, currency, category, description, income=True)


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
class DeletedEntry:
    amount: Decimal
    currency: str
    category: str
    description: str
    at: datetime  # when it was spent or received
    income: bool


def undo_last_entry(cur: Any, *, user_id: int) -> DeletedEntry | None:
    """Deletes the user's latest expense or income, whichever is later (by when it was spent or received,
    then by when it was stored); None when the user has neither."""
    cur.execute(
        """
        SELECT kind, id FROM (
            (SELECT 'expense' AS kind, id, spent_at AS at, created_at FROM expenses WHERE user_id = %(user_id)s
              ORDER BY spent_at DESC, created_at DESC, id DESC LIMIT 1)
            UNION ALL
            (SELECT 'income', id, received_at, created_at FROM incomes WHERE user_id = %(user_id)s
              ORDER BY received_at DESC, created_at DESC, id DESC LIMIT 1)
        ) latest
        ORDER BY at DESC, created_at DESC, kind DESC
        LIMIT 1
        """,
        {"user_id": user_id},
    )
    latest = cur.fetchone()
    if latest is None:
        return None
    table, column = ("incomes", "received_at") if latest["kind"] == "income" else ("expenses", "spent_at")
    # Scoped by the user too; a concurrent /undo that took the row first leaves nothing to return.
    cur.execute(
        f"DELETE FROM {table} WHERE id = %s AND user_id = %s"
        f" RETURNING amount, currency, category, description, {column} AS at",
        (latest["id"], user_id),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return DeletedEntry(row["amount"], row["currency"], row["category"], row["description"], row["at"],
                        income=latest["kind"] == "income")


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
    currency: str = "RUB"
    kind: str = "expense"  # or "income"


_RECURRING_COLUMNS = "id, day_of_month, amount, category, description, currency, kind"


def _recurring(row: dict[str, Any]) -> RecurringPayment:
    return RecurringPayment(row["id"], row["day_of_month"], row["amount"], row["category"], row["description"],
                            row["currency"], row["kind"])


def add_recurring(
    cur: Any,
    *,
    user_id: int,
    day_of_month: int,
    amount: Decimal,
    description: str,
    now: datetime,
    currency: str = "RUB",
    income: bool = False,
) -> RecurringPayment:
    """A monthly payment (or income) on that day, categorised like an expense (or an income) with the same
    description."""
    category = guess_income_category(description) if income else guess_category(description)
    cur.execute(
        f"""
        INSERT INTO recurring_payments (user_id, day_of_month, amount, description, category, created_at,
                                        currency, kind)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING {_RECURRING_COLUMNS}
        """,
        (user_id, day_of_month, amount, description, category, now, currency, "income" if income else "expense"),
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
