"""The `expensebot` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2

EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))


def _run(*args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXPENSEBOT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_migrate_applies_the_schema_to_an_empty_database_and_then_has_nothing_to_do(database_url):
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS cli_migrate_test")
        cur.execute("CREATE DATABASE cli_migrate_test")
    admin.close()
    target = database_url.replace("/expensebot_test", "/cli_migrate_test")
    assert target != database_url, "the test database URL should name expensebot_test"

    check = _run("migrate", "--check", "--database-url", target)
    assert check.returncode == 1 and "pending: 0001_initial_schema" in check.stdout
    first = _run("migrate", "--database-url", target)
    assert first.returncode == 0 and "applied: 0001_initial_schema" in first.stdout
    second = _run("migrate", "--database-url", target)
    assert second.returncode == 0 and "nothing to apply" in second.stdout
    assert _run("migrate", "--check", "--database-url", target).returncode == 0


def test_migrate_without_a_database_says_what_is_missing():
    result = _run("migrate", env={"DATABASE_URL": ""})
    assert result.returncode == 2
    assert "no database" in result.stderr


def test_import_times_lists_every_function_and_only_the_webhook_imports_aiogram():
    result = _run("dev", "import-times", "--runs", "1", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["function"]: row for row in json.loads(result.stdout)}
    assert len(rows) == 11
    assert [f for f, row in rows.items() if row["imports_aiogram"]] == ["WebhookFunction"]
    assert all(row["import_seconds"] > 0 for row in rows.values())


def test_the_demo_shows_the_budget_alerts_in_a_timeline():
    # As `make demo` runs it: no DATABASE_URL, so it starts (and removes) its own embedded PostgreSQL.
    result = _run("demo", env={"DATABASE_URL": "", "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Потрачено 850,00\u00a0₽ из 1\u00a0000,00\u00a0₽" in out
    assert "Budget for the month used up: 100 %" in out
    assert "4 budget alert(s) sent" in out
