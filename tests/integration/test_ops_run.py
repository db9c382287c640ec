"""`expensebot ops run`: without --slot it runs the schedule's latest due slot, so a repeat is a duplicate; with
--at it creates a one-time EventBridge Scheduler schedule that runs the job through its deployed target."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import boto3

from expensebot.scheduling import ScheduledInvocation
from expensebot_tools.local.events import schedule_event
from tests.conftest import MOSCOW, run_sql
from tests.integration.test_ops import ops
from tests.integration.test_ops_schedules import schedules  # noqa: F401  (the fixture)


def _latest_20_00() -> datetime:
    """send_monthly_reports' schedule fires daily at 20:00 Moscow time: its last fire by the system clock."""
    now = datetime.now(MOSCOW)
    today = now.replace(hour=20, minute=0, second=0, microsecond=0)
    return today if today <= now else today - timedelta(days=1)


def test_two_runs_without_a_slot_are_one_run_of_the_latest_due_slot(system, capsys):
    code, out, err = ops(capsys, "run", "send_monthly_reports", "--json")
    assert code == 0, err
    first = json.loads(out)
    time.sleep(1.1)  # an operator's second try comes seconds later, never within the same second
    code, out, err = ops(capsys, "run", "send_monthly_reports")

    assert code == 0, err
    assert first["status"] == "succeeded"
    assert datetime.fromisoformat(first["slot"]) == _latest_20_00()
    assert "duplicate" in out and _latest_20_00().isoformat() in out
    assert run_sql("SELECT job, slot, attempts FROM job_runs") == [("send_monthly_reports", _latest_20_00(), 1)]


def test_a_half_hourly_job_runs_its_latest_half_hour(system, capsys):
    code, out, err = ops(capsys, "run", "check_budget_limits", "--json")

    assert code == 0, err
    slot = datetime.fromisoformat(json.loads(out)["slot"])
    now = datetime.now(UTC)
    assert slot.minute in (0, 30) and slot.second == 0 and timedelta(0) <= now - slot < timedelta(minutes=30)


def test_run_at_creates_a_one_time_schedule_with_the_jobs_own_target(system, schedules, capsys):  # noqa: F811
    at = (datetime.now(MOSCOW) + timedelta(days=2)).replace(hour=18, minute=30, second=0, microsecond=0)
    deployed = schedules["expensebot-dev-send_monthly_reports"]

    code, out, err = ops(capsys, "run", "send_monthly_reports", "--at", at.strftime("%Y-%m-%dT%H:%M"))

    assert code == 0, err
    name = f"expensebot-dev-once-send_monthly_reports-{at:%Y%m%d%H%M}"
    assert name in out
    created = boto3.client("scheduler").get_schedule(Name=name)
    assert created["ScheduleExpression"] == f"at({at:%Y-%m-%dT%H:%M:%S})"
    assert created["ScheduleExpressionTimezone"] == "Europe/Moscow"
    assert created["ActionAfterCompletion"] == "DELETE" and created["State"] == "ENABLED"
    target = created["Target"]
    for key in ("Arn", "RoleArn", "DeadLetterConfig", "RetryPolicy"):
        assert target[key] == deployed["Target"][key], key
    # What Scheduler will deliver is the job's event for that slot.
    delivered = ScheduledInvocation.model_validate(schedule_event(target["Input"], at, attempt=1))
    assert delivered.job == "send_monthly_reports" and delivered.scheduled_time == at

    # Another slot can be asked for; the time must lie ahead.
    code, out, err = ops(capsys, "run", "send_monthly_reports", "--at", (at + timedelta(hours=1)).isoformat(),
                         "--slot", "2026-11-30T20:00", "--json")
    assert code == 0, err
    request = json.loads(out)
    assert json.loads(request["Target"]["Input"])["scheduled_time"] == "2026-11-30T17:00:00Z"
    code, _, err = ops(capsys, "run", "send_monthly_reports", "--at", "2026-01-01T00:00")
    assert code == 2 and "has passed" in err
    code, _, err = ops(capsys, "run", "send_monthly_reports", "--at", at.strftime("%Y-%m-%dT%H:%M"))
    assert code == 2 and "exists already" in err


def test_run_at_without_a_deployed_schedule_says_so(system, capsys):
    at = (datetime.now(MOSCOW) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    code, _, err = ops(capsys, "run", "cleanup_old_expenses", "--at", at)
    assert code == 2 and "no deployed schedule named expensebot-* runs 'cleanup_old_expenses'" in err
