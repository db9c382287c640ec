"""`expensebot ops schedules` against moto's EventBridge Scheduler holding the template's five schedules,
and the run ledger on the embedded database."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import psycopg2
import pytest

from expensebot_tools.operations.schedules import next_runs
from tests.integration.test_ops import cells, ops

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def schedules(system: Any) -> dict[str, dict[str, Any]]:
    """The template's schedules as a deploy with the default parameters (Stage dev) creates them."""
    return create_template_schedules(system, boto3.client("scheduler"))


def create_template_schedules(system: Any, scheduler: Any) -> dict[str, dict[str, Any]]:
    resolver = system.queues.resolver(system.template)
    created = {}
    for spec in system.template.schedules():
        # ScheduleSpec.name is the template's text; the raw property is the Fn::Sub to resolve.
        [event] = [e["Properties"] for e in system.template.functions[spec.function_id].properties["Events"].values()
                   if e["Type"] == "ScheduleV2"]
        name = resolver.resolve(event["Name"])
        request = {
            "Name": name,
            "ScheduleExpression": spec.expression,
            "ScheduleExpressionTimezone": resolver.resolve(spec.timezone),
            "State": resolver.resolve(spec.state),
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Description": f"runs {spec.function_id}",
            "Target": {
                "Arn": f"arn:aws:lambda:us-east-1:123456789012:function:{spec.function_id}",
                "RoleArn": "arn:aws:iam::123456789012:role/expensebot-dev-scheduler",
                "Input": spec.input,
                "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600},
                "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:expensebot-dev-scheduler-dlq"},
            },
        }
        scheduler.create_schedule(**request)
        created[name] = request
    return created


def test_schedules_lists_expression_zone_state_next_runs_and_the_ledger(system, schedules, capsys):
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO job_runs (job, slot, status, started_at, finished_at)"
            " VALUES ('check_budget_limits', '2026-03-10 08:00+03', 'succeeded', '2026-03-10 08:00+03', now()),"
            "        ('check_budget_limits', '2026-03-10 08:30+03', 'failed', '2026-03-10 08:30+03', now())"
        )
    conn.close()

    code, out, err = ops(capsys, "schedules", "--json")

    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) == set(schedules)
    budget = rows["expensebot-dev-check_budget_limits"]
    assert (budget["expression"], budget["timezone"], budget["state"]) == (
        "cron(0/30 * * * ? *)", "Europe/Moscow", "ENABLED")
    assert (budget["job"], budget["runs"], budget["last_status"]) == ("check_budget_limits", 2, "failed")
    assert datetime.fromisoformat(budget["last_slot"]) == datetime(2026, 3, 10, 8, 30, tzinfo=ZoneInfo("Europe/Moscow"))
    assert len(budget["next_runs"]) == 3
    cleanup = rows["expensebot-dev-cleanup_old_expenses"]
    assert cleanup["runs"] == 0 and cleanup["last_slot"] is None
    assert all(datetime.fromisoformat(at).strftime("%a %H:%M") == "Sun 03:00" for at in cleanup["next_runs"])

    code, out, _ = ops(capsys, "schedules")
    shown = {row[0]: row for row in cells(out) if row and row[0].startswith("expensebot-dev-")}
    assert shown["expensebot-dev-cleanup_old_expenses"][6:8] == ["0", ""]
    assert shown["expensebot-dev-check_budget_limits"][5:8] == ["2026-03-10 08:30", "2", "failed"]


def test_disable_and_enable_change_only_the_state(system, schedules, capsys):
    scheduler = boto3.client("scheduler")
    name = "expensebot-dev-send_monthly_reports"
    before = scheduler.get_schedule(Name=name)

    code, out, err = ops(capsys, "schedules", "disable", name)
    assert code == 0, err
    assert f"{name}: disabled" in out

    after = scheduler.get_schedule(Name=name)
    assert after["State"] == "DISABLED"
    for field in ("ScheduleExpression", "ScheduleExpressionTimezone", "FlexibleTimeWindow", "Target", "Description"):
        assert after[field] == before[field], field
    code, out, _ = ops(capsys, "schedules", "--json")
    row = next(r for r in json.loads(out) if r["name"] == name)
    assert row["state"] == "DISABLED" and row["next_runs"] == []

    assert ops(capsys, "schedules", "enable", name)[0] == 0
    again = scheduler.get_schedule(Name=name)
    assert again["State"] == "ENABLED" and again["Target"] == before["Target"]


def test_disabling_an_unknown_schedule_says_so(system, schedules, capsys):
    code, _, err = ops(capsys, "schedules", "disable", "expensebot-dev-nope")
    assert code == 2 and "no schedule 'expensebot-dev-nope'" in err


def test_next_runs_follow_daylight_saving_in_the_schedules_zone():
    # Berlin springs forward on 29 March 2026 at 02:00: 02:30 does not exist that day and is skipped,
    # and a daily 03:00 moves from UTC+1 to UTC+2.
    after = datetime(2026, 3, 27, 12, 0, tzinfo=BERLIN)
    assert [d.isoformat() for d in next_runs("cron(30 2 * * ? *)", "Europe/Berlin", after, 3)] == [
        "2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    assert [d.isoformat() for d in next_runs("cron(0 3 ? * SUN *)", "Europe/Berlin", after, 2)] == [
        "2026-03-29T03:00:00+02:00", "2026-04-05T03:00:00+02:00"]
    # Autumn: the repeated 02:30 runs once.
    autumn = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    assert [d.isoformat() for d in next_runs("cron(30 2 * * ? *)", "Europe/Berlin", autumn, 2)] == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    assert next_runs("rate(5 minutes)", "UTC", after, 3) == []
