"""`expensebot ops doctor` over a window: every failed or stale run of the last 24 h (EXPENSEBOT_DOCTOR_WINDOW,
`--window`) that no later attempt of its slot turned into a success is a problem, whatever ran after it, and so
is every month-end slot of the monthly reports without a success, however old."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import run_sql
from tests.integration.test_ops import ops
from tests.integration.test_ops_doctor import healthy, last_month_end_slot  # noqa: F401  (the fixture)
from tests.integration.test_ops_schedules import schedules  # noqa: F401  (the fixture)


def job_problems(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code, out, err = ops(capsys, "doctor", *argv, "--json")
    assert out, err
    checks = json.loads(out)["checks"]
    return code, [c for c in checks if (c["name"].startswith("job ") or c["name"] == "job runs") and not c["ok"]]


def _run(job: str, slot: Any, status: str, *, started: Any = None, lease_until: Any = None,
         error: str | None = None, details: str = "{}", attempts: int = 1) -> None:
    run_sql("INSERT INTO job_runs (job, slot, status, attempts, started_at, finished_at, lease_until, error, details)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (job, slot, status, attempts, started or slot, None if status == "running" else started or slot,
             lease_until, error, details))


def test_a_failed_month_end_run_is_not_hidden_by_the_next_days_skipped_run(healthy, capsys):  # noqa: F811
    month_end = last_month_end_slot()
    _run("send_monthly_reports", month_end - timedelta(days=1), "succeeded",
         details='{"skipped": "not the last day of the month"}')
    _run("send_monthly_reports", month_end, "failed", error="DatabaseUnavailable: gone")
    _run("send_monthly_reports", month_end + timedelta(days=1), "succeeded",
         details='{"skipped": "not the last day of the month"}')

    code, problems = job_problems(capsys)

    assert code == 1
    [problem] = problems
    assert problem["name"] == "job send_monthly_reports"
    assert f"month-end slot {month_end.isoformat()} has no success" in problem["detail"]
    assert "DatabaseUnavailable: gone" in problem["detail"]
    assert f"ops run send_monthly_reports --slot {month_end.isoformat()}" in problem["fix"]
    assert "ops dlq show JobFailureQueue" in problem["fix"]


def test_a_stuck_run_is_not_hidden_by_a_later_run_of_the_same_job(healthy, capsys):  # noqa: F811
    [(now,)] = run_sql("SELECT now()")
    stuck_slot = now - timedelta(hours=2)
    # Its attempt stopped renewing the lease 110 minutes ago; the next half hours' runs went well.
    _run("check_budget_limits", stuck_slot, "running", lease_until=stuck_slot + timedelta(seconds=30))
    _run("check_budget_limits", stuck_slot + timedelta(minutes=30), "succeeded")
    _run("check_budget_limits", stuck_slot + timedelta(minutes=60), "succeeded")

    code, problems = job_problems(capsys)

    assert code == 1
    [problem] = problems
    assert problem["name"] == "job check_budget_limits"
    assert "still 'running'" in problem["detail"] and "stopped renewing its lease" in problem["detail"]
    assert f"ops run check_budget_limits --slot {stuck_slot.astimezone(healthy.clock.now().tzinfo).isoformat()}" \
        in problem["fix"]


def test_the_window_decides_which_failures_are_recent_and_a_retried_slot_is_settled(healthy, capsys,  # noqa: F811
                                                                                   monkeypatch):
    [(now,)] = run_sql("SELECT now()")
    three_days_ago = now - timedelta(days=3)
    _run("process_recurring_payments", three_days_ago, "failed", error="RuntimeError: boom")
    # Failed twice, then Lambda's retry took the slot over and succeeded: settled.
    _run("send_daily_admin_report", now - timedelta(hours=3), "succeeded", attempts=3)

    code, problems = job_problems(capsys)
    assert (code, problems) == (0, [])

    code, problems = job_problems(capsys, "--window", "7d")
    assert code == 1 and [p["name"] for p in problems] == ["job process_recurring_payments"]
    assert "RuntimeError: boom" in problems[0]["detail"]

    monkeypatch.setenv("EXPENSEBOT_DOCTOR_WINDOW", "4d")
    code, problems = job_problems(capsys)
    assert code == 1 and [p["name"] for p in problems] == ["job process_recurring_payments"]

    code, _, err = ops(capsys, "doctor", "--window", "soon")
    assert code == 2 and "--window 'soon' is not a duration" in err
