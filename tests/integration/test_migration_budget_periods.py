"""Migration 0010 carries a populated database over: every budget becomes a month's budget with its amount
and currency, every alert already sent is remembered under its month's first day (the month period's start),
expenses keep every row, and afterwards a user may hold a budget per period for the same category."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from expensebot_tools.project.template import MIGRATIONS_DIR
from tests.integration.test_migration_currencies import fresh_database, migrate, migrate_up_to


def populate_at_0009(url: str, tmp_path: Path) -> None:
    migrate_up_to(url, tmp_path, "0009_currencies_and_incomes")
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (user_id, chat_id, created_at, last_seen_at)"
                    " SELECT n, n, now(), now() FROM generate_series(1, 60) n")
        cur.execute("INSERT INTO expenses (user_id, amount, currency, category, description, spent_at, created_at)"
                    " SELECT 1 + n % 60, n + 0.25, CASE WHEN n % 7 = 0 THEN 'USD' ELSE 'RUB' END, 'cafe',"
                    " 'кофе ' || n, now(), now() FROM generate_series(1, 1200) n")
        # Every user a whole-month budget, every third one a cafe budget too, some in another currency.
        cur.execute("INSERT INTO budgets (user_id, category, amount, currency, created_at, updated_at)"
                    " SELECT n, NULL, 5000.50, CASE WHEN n % 10 = 0 THEN 'EUR' ELSE 'RUB' END, now(), now()"
                    " FROM generate_series(1, 60) n")
        cur.execute("INSERT INTO budgets (user_id, category, amount, created_at, updated_at)"
                    " SELECT n, 'cafe', 1000, now(), now() FROM generate_series(3, 60, 3) n")
        # Alerts already sent in February and March.
        cur.execute("INSERT INTO budget_alerts (budget_id, month, threshold, created_at)"
                    " SELECT id, m, t, now() FROM budgets, (VALUES (date '2026-02-01', 80), (date '2026-02-01', 90),"
                    " (date '2026-03-01', 80)) AS a (m, t) WHERE id % 2 = 0")


def snapshot(url: str) -> dict[str, object]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        found: dict[str, object] = {}
        cur.execute("SELECT count(*), sum(amount), count(*) FILTER (WHERE currency = 'USD') FROM expenses")
        found["expenses"] = cur.fetchone()
        cur.execute("SELECT id, user_id, category, amount, currency FROM budgets ORDER BY id")
        found["budgets"] = cur.fetchall()
        return found


def test_a_populated_database_keeps_every_budget_as_a_months_and_every_alert_under_its_month(
        database_url, tmp_path):
    url = fresh_database(database_url, "migrate_0010")
    populate_at_0009(url, tmp_path)
    before = snapshot(url)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT budget_id, month, threshold FROM budget_alerts ORDER BY 1, 2, 3")
        alerts_before = cur.fetchall()

    assert migrate(url, MIGRATIONS_DIR)[:1] == ["0010_budget_periods"]

    assert snapshot(url) == before
    assert len(before["budgets"]) == 80 and before["expenses"] == (1200, Decimal("720900.00"), 171)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT period, count(*) FROM budgets GROUP BY period")
        assert cur.fetchall() == [("month", 80)]
        cur.execute("SELECT budget_id, period_start, threshold FROM budget_alerts ORDER BY 1, 2, 3")
        assert cur.fetchall() == alerts_before
        assert len(alerts_before) == 120 and {row[1] for row in alerts_before} == {date(2026, 2, 1), date(2026, 3, 1)}

        # One budget per (user, period, category): a week's and a day's beside the month's are new budgets...
        cur.execute("INSERT INTO budgets (user_id, period, category, amount, created_at, updated_at)"
                    " VALUES (3, 'week', 'cafe', 300, now(), now()), (3, 'day', NULL, 100, now(), now())")
        # ...a second month's cafe budget is not, nor is a period the bot does not know.
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("INSERT INTO budgets (user_id, period, category, amount, created_at, updated_at)"
                        " VALUES (3, 'month', 'cafe', 300, now(), now())")
    with psycopg2.connect(url) as conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation):
        cur.execute("INSERT INTO budgets (user_id, period, amount, created_at, updated_at)"
                    " VALUES (3, 'year', 300, now(), now())")


def test_the_covering_indexes_carry_the_currency_the_budget_check_filters_on(database_url, tmp_path):
    url = fresh_database(database_url, "migrate_0010_indexes")
    populate_at_0009(url, tmp_path)
    migrate(url, MIGRATIONS_DIR)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'expenses'"
                    " AND indexname IN ('expenses_spent_at_covering', 'expenses_user_spent_at') ORDER BY 1")
        definitions = dict(cur.fetchall())
    assert definitions["expenses_spent_at_covering"].endswith("INCLUDE (user_id, category, amount, currency)")
    assert definitions["expenses_user_spent_at"].endswith("INCLUDE (amount, category, currency)")
