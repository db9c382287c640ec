"""`expensebot ops doctor` on the local stack: a healthy deployment passes, and each problem the seed's
troubleshooting checklist covered is found and comes with what to do."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

import boto3
import psycopg2
import pytest

from expensebot_tools.cli import main
from tests.conftest import MOSCOW
from tests.integration.test_ops import ops, park
from tests.integration.test_ops_schedules import schedules  # noqa: F401  (the fixture)

WEBHOOK_URL = "https://abc123.execute-api.eu-central-1.amazonaws.com/webhook"


@pytest.fixture
def healthy(system: Any, schedules: dict[str, Any], capsys: pytest.CaptureFixture[str],  # noqa: F811
            monkeypatch: pytest.MonkeyPatch) -> Any:
    # An operator's shell knows the jobs' two DLQs too (the stack's outputs; `local up` writes them).
    monkeypatch.setenv("JOB_FAILURE_QUEUE_URL", system.queues.urls["JobFailureQueue"])
    monkeypatch.setenv("SCHEDULER_DEAD_LETTER_QUEUE_URL", system.queues.urls["SchedulerDeadLetterQueue"])
    assert main(["webhook", "set", "--url", WEBHOOK_URL]) == 0
    capsys.readouterr()
    return system


def last_month_end_slot() -> datetime:
    """The last month-end slot (its last day, 20:00 Moscow time) before the month the system clock is in."""
    first_of_month = datetime.now(MOSCOW).replace(day=1, hour=20, minute=0, second=0, microsecond=0)
    return first_of_month - timedelta(days=1)


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out, err = ops(capsys, "doctor", "--json")
    report = json.loads(out)
    assert report["ok"] == (code == 0), err
    return code, {check["name"]: check for check in report["checks"]}


def test_a_healthy_deployment_passes_every_check(healthy, capsys):
    code, checks = doctor(capsys)

    assert code == 0, [c for c in checks.values() if not c["ok"]]
    assert checks["database"]["detail"] == "reachable, schema current"
    assert checks["DLQ default"]["ok"] and checks["task routing"]["ok"]
    assert checks["bot token"]["ok"] and checks["webhook"]["detail"].startswith(WEBHOOK_URL)
    assert sum(name.startswith("schedule expensebot-dev-") for name in checks) == 5

    code, out, _ = ops(capsys, "doctor")
    assert code == 0 and "no problems found" in out


def test_doctor_finds_each_problem_and_says_what_to_do(healthy, capsys, monkeypatch):
    park(healthy, "NotificationsQueue", 2)
    scheduler = boto3.client("scheduler")
    assert ops(capsys, "schedules", "disable", "expensebot-dev-send_monthly_reports")[0] == 0
    scheduler.create_schedule(
        Name="expensebot-dev-extra", ScheduleExpression="cron(0 9 * * ? *)", ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:lambda:us-east-1:123456789012:function:x",
                "RoleArn": "arn:aws:iam::123456789012:role/r", "Input": '{"job": "check_budget_limits"}'},
    )
    # doctor reads the system clock: last month's month-end run failed, and a cleanup died two hours ago.
    month_end = last_month_end_slot()
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO job_runs (job, slot, status, started_at, finished_at, error)"
            " VALUES ('send_monthly_reports', %(month_end)s, 'failed', %(month_end)s, %(month_end)s,"
            "         'OperationalError: connection refused'),"
            "        ('cleanup_old_expenses', now() - interval '2 hours', 'running', now() - interval '2 hours',"
            "         NULL, NULL)",
            {"month_end": month_end},
        )
    conn.close()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:not-a-token-telegram-knows")

    code, checks = doctor(capsys)

    assert code == 1
    failed = {name: check for name, check in checks.items() if not check["ok"]}
    assert set(failed) == {
        "DLQ notifications", "schedule expensebot-dev-send_monthly_reports", "schedule expensebot-dev-extra",
        "bot token", "job send_monthly_reports", "job cleanup_old_expenses",
    }
    assert "ops dlq redrive notifications" in failed["DLQ notifications"]["fix"]
    assert failed["schedule expensebot-dev-send_monthly_reports"]["detail"] == "disabled"
    assert "time zone UTC, but the functions use APP_TIMEZONE=Europe/Moscow" in failed[
        "schedule expensebot-dev-extra"]["detail"]
    assert "@BotFather" in failed["bot token"]["fix"]
    assert "connection refused" in failed["job send_monthly_reports"]["detail"]
    assert f"ops run send_monthly_reports --slot {month_end.isoformat()}" in failed["job send_monthly_reports"]["fix"]
    assert "still 'running'" in failed["job cleanup_old_expenses"]["detail"]
    # Every failure says what to do.
    assert all(check["fix"] for check in failed.values())

    code, out, _ = ops(capsys, "doctor")
    assert code == 1 and "6 problem(s) found" in out and "FAIL" in out


def test_doctor_finds_a_missing_webhook_and_a_recent_webhook_error(system, schedules, capsys):  # noqa: F811
    code, checks = doctor(capsys)
    assert code == 1
    assert not checks["webhook"]["ok"] and "expensebot webhook set --url" in checks["webhook"]["fix"]

    assert main(["webhook", "set", "--url", WEBHOOK_URL]) == 0
    system.telegram.set_webhook_error("Wrong response from the webhook: 502 Bad Gateway")
    code, checks = doctor(capsys)
    assert code == 1 and "502 Bad Gateway" in checks["webhook"]["detail"]


def test_doctor_finds_a_queue_without_a_url_and_the_tasks_routed_nowhere(system, schedules, capsys,  # noqa: F811
                                                                         monkeypatch):
    monkeypatch.delenv("QUEUE_URL_RECURRING")

    code, checks = doctor(capsys)

    assert code == 1
    assert checks["queue recurring"]["fix"].startswith("set QUEUE_URL_RECURRING")
    assert checks["task routing"]["detail"] == "tasks with no queue URL: recurring.book_recurring_payment"
