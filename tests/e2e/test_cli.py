"""The `expensebot` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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
    parts = urlsplit(database_url)
    target = urlunsplit(parts._replace(path="/cli_migrate_test"))

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
    # As `make demo` runs it: it starts (and removes) its own embedded PostgreSQL.
    result = _run("demo", env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Потрачено 850,00\u00a0₽ из 1\u00a0000,00\u00a0₽ (85 %)" in out
    assert "Budget for the month used up: past the 100 % mark" in out
    assert "the same batch redelivered: 0 message(s) re-sent" in out
    assert "4 budget alert(s) sent, each once" in out
    assert '"level"' not in out  # the functions' JSON logs stay out of the timeline


def test_a_bad_setting_is_reported_per_variable_without_a_traceback():
    result = _run("migrate", "--database-url", "postgresql://x@127.0.0.1:1/none",
                  env={"APP_TIMEZONE": "Mars/Base", "BUDGET_THRESHOLDS": "abc"})
    assert result.returncode == 1
    assert "APP_TIMEZONE: unknown time zone 'Mars/Base'" in result.stderr
    assert "BUDGET_THRESHOLDS: 'abc' is not a whole percentage" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_not_a_traceback():
    result = _run("migrate", "--database-url", "postgresql://x@127.0.0.1:1/none")
    assert result.returncode == 1
    assert result.stderr.startswith("expensebot migrate: DatabaseUnavailable: cannot connect to PostgreSQL")
    assert "Traceback" not in result.stderr
