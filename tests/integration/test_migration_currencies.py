"""Migration 0009 carries a populated database over: every expense, budget, recurring payment and user keeps
its amount and gets the configured default currency; nothing is lost; incomes start empty."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from expensebot.adapters.database import Database
from expensebot.adapters.migrations import apply_migrations
from expensebot_tools.project.template import MIGRATIONS_DIR


def fresh_database(database_url: str, name: str) -> str:
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    admin.close()
    return urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))


def migrate(url: str, directory: Path, **kwargs: str) -> list[str]:
    database = Database(lambda: url, timezone="Europe/Moscow")
    try:
        return apply_migrations(database, directory, **kwargs)
    finally:
        database.close()


def migrate_up_to(url: str, tmp_path: Path, last: str) -> None:
    """The schema as it was when `last` was the newest migration (a copy of the files up to it)."""
    before = tmp_path / f"up-to-{last}"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.stem <= last:
            shutil.copy(path, before / path.name)
    assert migrate(url, before)[-1] == last


def populate_at_0008(url: str, tmp_path: Path) -> None:
    migrate_up_to(url, tmp_path, "0008_bookkeeping_retention")
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (user_id, chat_id, created_at, last_seen_at)"
                    " SELECT n, n, now(), now() FROM generate_series(1, 50) n")
        cur.execute("INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
                    " SELECT 1 + n % 50, n + 0.25, 'еда', 'кофе ' || n, now(), now() FROM generate_series(1, 1000) n")
        cur.execute("INSERT INTO budgets (user_id, category, amount, created_at, updated_at)"
                    " SELECT n, NULL, 5000.50, now(), now() FROM generate_series(1, 50) n")
        cur.execute("INSERT INTO recurring_payments (user_id, day_of_month, amount, description, category, created_at)"
                    " SELECT n, 5, 35000, 'аренда', 'жильё', now() FROM generate_series(1, 20) n")


def totals(url: str) -> dict[str, object]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        found: dict[str, object] = {}
        for table in ("expenses", "budgets", "recurring_payments"):
            cur.execute(f"SELECT count(*), sum(amount) FROM {table}")
            found[table] = cur.fetchone()
        return found


@pytest.mark.parametrize("default_currency", ["RUB", "EUR"])
def test_a_populated_database_keeps_every_amount_in_the_default_currency(database_url, tmp_path, default_currency):
    url = fresh_database(database_url, f"migrate_0009_{default_currency.lower()}")
    populate_at_0008(url, tmp_path)
    before = totals(url)

    assert "0009_currencies_and_incomes" in migrate(url, MIGRATIONS_DIR, default_currency=default_currency)

    assert totals(url) == before
    assert before["expenses"] == (1000, Decimal("500750.00"))
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        for table in ("users", "expenses", "budgets", "recurring_payments"):
            cur.execute(f"SELECT currency, count(*) FROM {table} GROUP BY currency")
            assert cur.fetchall() == [(default_currency, {"users": 50, "expenses": 1000, "budgets": 50,
                                                          "recurring_payments": 20}[table])]
        cur.execute("SELECT DISTINCT kind FROM recurring_payments")
        assert cur.fetchall() == [("expense",)]
        cur.execute("SELECT count(*) FROM incomes")
        assert cur.fetchone() == (0,)
        # A code that is not ISO 4217's shape is refused.
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute("INSERT INTO incomes (user_id, amount, currency, category, description, received_at,"
                        " created_at) VALUES (1, 10, 'rub', 'зарплата', 'x', now(), now())")


def test_a_default_currency_that_is_not_a_code_stops_the_migration_and_changes_nothing(database_url, tmp_path):
    url = fresh_database(database_url, "migrate_0009_bad")
    populate_at_0008(url, tmp_path)

    with pytest.raises(psycopg2.Error, match="not an ISO 4217 code"):
        migrate(url, MIGRATIONS_DIR, default_currency="RUBLES")

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT max(version) FROM schema_migrations")
        assert cur.fetchone() == ("0008_bookkeeping_retention",)
