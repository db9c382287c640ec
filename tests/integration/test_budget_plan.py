"""The budget check's plan against real PostgreSQL: one statement for all users, months in the
application's time zone, and the job's handling of the wrong event."""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal

import psycopg2
import psycopg2.extras
import pytest

from expensebot.bootstrap import get_runtime
from expensebot.errors import ConfigurationError
from expensebot.jobs.budget_limits import plan_budget_alerts
from tests.conftest import MOSCOW, load_event


def _seed(users: list[tuple[int, str | None, str, str]]) -> None:
    """(user_id, budget category or None, budget amount, spent) with spending on 5 March, Moscow time."""
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        for user_id, category, budget, spent in users:
            cur.execute(
                "INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (%s, %s, now(), now())"
                " ON CONFLICT DO NOTHING",
                (user_id, user_id),
            )
            cur.execute(
                "INSERT INTO budgets (user_id, category, amount, created_at, updated_at)"
                " VALUES (%s, %s, %s, now(), now())",
                (user_id, category, Decimal(budget)),
            )
            cur.execute(
                "INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
                " VALUES (%s, %s, %s, 'x', %s, now())",
                (user_id, Decimal(spent), category or "other", datetime(2026, 3, 5, 12, 0, tzinfo=MOSCOW)),
            )
    conn.close()


def test_the_plan_for_every_user_is_one_sql_statement(system, sql_statements):
    _seed([(2000 + i, None, "1000", str(700 + i * 10)) for i in range(40)])
    alerts = plan_budget_alerts(get_runtime(), datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW))
    assert len(sql_statements) == 1
    # 700..1090 spent of 1000: from 800 (i = 10) up, 80/90/100 % by how far each got.
    assert len(alerts) == 30
    assert {a.threshold for a in alerts} == {80, 90, 100}


def test_category_budgets_count_only_their_category_and_the_total_counts_everything(system):
    _seed([(3001, "cafe", "100", "95"), (3001, None, "10000", "100")])
    alerts = plan_budget_alerts(get_runtime(), datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW))
    assert [(a.category, a.threshold, a.spent) for a in alerts] == [("cafe", 90, Decimal("95.00"))]


def test_spending_of_the_previous_month_in_the_application_zone_does_not_count(system):
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (4001, 4001, now(), now())")
        cur.execute("INSERT INTO budgets (user_id, amount, created_at, updated_at) VALUES (4001, 100, now(), now())")
        # 23:30 on 28 February in Moscow is already... still February (UTC 20:30): not March.
        cur.execute(
            "INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
            " VALUES (4001, 90, 'other', 'x', %s, now())",
            (datetime(2026, 2, 28, 23, 30, tzinfo=MOSCOW),),
        )
    conn.close()
    assert plan_budget_alerts(get_runtime(), datetime(2026, 3, 1, 0, 30, tzinfo=MOSCOW)) == []
    february = plan_budget_alerts(get_runtime(), datetime(2026, 2, 28, 23, 59, tzinfo=MOSCOW))
    assert [a.threshold for a in february] == [90]


def test_inactive_users_are_skipped(system):
    _seed([(5001, None, "100", "100")])
    get_runtime().db.fetch_all("UPDATE users SET is_active = false WHERE user_id = 5001 RETURNING user_id")
    assert plan_budget_alerts(get_runtime(), datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW)) == []


def test_a_job_function_refuses_an_event_meant_for_another_job(system):
    with pytest.raises(ConfigurationError, match="this function runs 'check_budget_limits'"):
        system.invoke("CheckBudgetLimitsFunction", load_event("schedule_cleanup_old_expenses.json"))
