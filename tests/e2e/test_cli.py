"""The `expensebot` command as a user runs it."""

from __future__ import annotations

import calendar
import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

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


def test_import_times_lists_every_function_against_the_goal_and_only_the_webhook_imports_aiogram():
    result = _run("dev", "import-times", "--runs", "1", "--json", "--python", sys.executable)
    rows = {row["function"]: row for row in json.loads(result.stdout)}
    # The figures depend on the machine's load, so only the contract is checked: exit 1 when a job or worker
    # handler misses the goal, else 0.
    assert result.returncode == (1 if any(row["goal"] == "FAIL" for row in rows.values()) else 0), result.stderr
    assert len(rows) == 11
    assert [f for f, row in rows.items() if row["imports_aiogram"]] == ["WebhookFunction"]
    assert all(row["import_seconds"] > 0 for row in rows.values())
    assert all(row["with_first_call_seconds"] > row["import_seconds"] for row in rows.values())
    # matplotlib is for the reports worker's task alone, and imported only when it draws a report.
    assert [f for f, row in rows.items() if row["imports_matplotlib"]] == []
    assert rows["ReportsWorkerFunction"]["first_report_seconds"] > 0
    # Tracing is off by default: no function imports the X-Ray SDK, and the webhook (SnapStart) is not held to
    # the jobs' and workers' goal.
    assert [f for f, row in rows.items() if row["imports_xray_sdk"]] == []
    assert {row["goal"] for f, row in rows.items() if f != "WebhookFunction"} <= {"pass", "FAIL"}
    assert rows["WebhookFunction"]["goal"] == "not held (SnapStart)"
    assert {row["goal_seconds"] for row in rows.values()} == {0.15}


def test_the_demo_runs_the_current_month_and_shows_what_each_user_received():
    # As `make demo` runs it: the month in the app's zone, on its own embedded PostgreSQL.
    result = _run("demo", env={"COLUMNS": "120", "APP_TIMEZONE": "Europe/Moscow", "ADMIN_CHAT_IDS": ""})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    today = datetime.now(ZoneInfo("Europe/Moscow"))
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    assert f"ExpenseBot demo — {today:%B %Y}" in out
    # Each day of the month has its heading; the first morning's conversation is shown in full.
    assert f"\n{date(today.year, today.month, 1):%A} 1 {today:%B}\n" in out
    assert f"\n{date(today.year, today.month, days_in_month):%A} {days_in_month} {today:%B}\n" in out
    assert "Анна → bot    850 кофе" in out
    assert "budget alert: ⚠️ Бюджет на месяц: перейден порог 80 %." in out
    assert "Потрачено 850,00\u00a0₽ из 1\u00a0000,00\u00a0₽ (85 %)" in out
    assert "Budget for the month used up: past the 100 % mark" in out
    # The recurring payments fall due on the 5th and the 15th, at the 12:00 run.
    assert "recurring payment: 🔁 Записал регулярный платёж: 35\u00a0000,00\u00a0₽ — аренда" in out
    assert "recurring payment: 🔁 Recurring payment recorded: 12.00 ₽ — music subscription" in out
    assert out.count("bot → admins  admin report: ") == days_in_month
    assert out.count("month-end report: 📊 Отчёт за") == 3 and out.count("month-end report: 📊 Report for") == 1
    assert "4 expenses typed by" in out and "no failures" in out
    last = out.strip().splitlines()[-1]
    assert re.search(rf"Sent \d+ budget alert\(s\), 2 recurring payment\(s\), 4 month-end report\(s\), "
                     rf"{days_in_month} admin report\(s\), 8 file\(s\) \(the reports' charts and PDFs, kept in \S+\) "
                     rf"and \d+ replies; the demo took \d+\.\d s\.", last), last
    # Each user's month-end report came with its chart and its PDF, named in the timeline and kept to be opened.
    month = f"{today:%Y-%m}"
    charts = re.findall(rf"chart: (\S+/\d+-expenses-{month}\.png) \(\d+ KB\)", out)
    documents = re.findall(rf"document: (\S+/\d+-expenses-{month}\.pdf) \(\d+ KB\)", out)
    assert len(charts) == len(documents) == 4, out
    assert all(Path(chart).read_bytes().startswith(b"\x89PNG") for chart in charts)
    assert all(Path(document).read_bytes().startswith(b"%PDF") for document in documents)
    assert '"level"' not in out  # the functions' JSON logs stay out of the timeline


def test_the_demo_refuses_a_database_that_already_has_users(database_url):
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS cli_demo_used")
        cur.execute("CREATE DATABASE cli_demo_used")
    admin.close()
    target = urlunsplit(urlsplit(database_url)._replace(path="/cli_demo_used"))
    assert _run("migrate", "--database-url", target).returncode == 0
    conn = psycopg2.connect(target)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (1, 1, now(), now())")
    conn.close()
    result = _run("demo", "--database-url", target)
    assert result.returncode == 2  # a usage error: the database given is not an empty one
    assert "the database already has users; give it an empty one" in result.stderr


def test_the_month_window_runs_from_the_first_midnight_to_the_next_months():
    from expensebot_tools.local.demo import month_window

    moscow = ZoneInfo("Europe/Moscow")
    assert month_window(datetime(2026, 12, 24, 7, tzinfo=moscow), moscow) == (
        datetime(2026, 12, 1, tzinfo=moscow), datetime(2027, 1, 1, tzinfo=moscow))
    # 31 January 22:00 UTC is already 1 February in Moscow.
    assert month_window(datetime(2026, 1, 31, 22, tzinfo=UTC), moscow) == (
        datetime(2026, 2, 1, tzinfo=moscow), datetime(2026, 3, 1, tzinfo=moscow))


def test_a_bad_setting_is_reported_per_variable_without_a_traceback():
    result = _run("migrate", "--database-url", "postgresql://x@127.0.0.1:1/none",
                  env={"APP_TIMEZONE": "Mars/Base", "BUDGET_THRESHOLDS": "abc"})
    assert result.returncode == 2  # a configuration error, in every command
    assert result.stderr.count("\n") == 1  # one line, naming each variable
    assert "APP_TIMEZONE: unknown time zone 'Mars/Base'" in result.stderr
    assert "BUDGET_THRESHOLDS: 'abc' is not a whole percentage" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_not_a_traceback():
    result = _run("migrate", "--database-url", "postgresql://x@127.0.0.1:1/none")
    assert result.returncode == 2  # could not do what was asked; 1 would mean "migrations pending"
    assert result.stderr.startswith("expensebot migrate: DatabaseUnavailable: cannot connect to PostgreSQL")
    assert "Traceback" not in result.stderr
