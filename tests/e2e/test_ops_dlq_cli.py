"""`expensebot ops dlq` on a job's failure as an operator meets it: the installed command in its own process,
against a moto server and the embedded database. A job raised on every attempt, Lambda's on-failure record
is in JobFailureQueue; `show` says which job and slot, `retry` runs that slot, and the ledger shows it done."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from expensebot_tools.project.aws_records import async_failure_record
from tests.conftest import MOSCOW, run_sql
from tests.e2e.test_ops_cli import run, stack  # noqa: F401  (the fixture)

EVENT = {"job": "check_budget_limits", "scheduled_time": "2026-03-10T06:30:00Z", "execution_id": "e-1",
         "attempt": 1}


def test_a_failed_jobs_record_is_shown_then_its_slot_is_run_again(stack):  # noqa: F811
    env: dict[str, Any] = stack["env"]
    env["JOB_FAILURE_QUEUE_URL"] = stack["urls"]["JobFailureQueue"]
    run_sql("INSERT INTO job_runs (job, slot, status, started_at, finished_at, error) VALUES "
            "('check_budget_limits', '2026-03-10 09:30+03', 'failed', '2026-03-10 09:30+03', "
            "'2026-03-10 09:30:02+03', 'RuntimeError: database gone')", database_url=env["DATABASE_URL"])
    record = async_failure_record("arn:aws:lambda:us-east-1:123456789012:function:expensebot-dev-CheckBudgetLimits",
                                  "req-1", EVENT, "RuntimeError", "database gone", 3)
    message_id = stack["sqs"].send_message(QueueUrl=stack["urls"]["JobFailureQueue"], MessageBody=record)["MessageId"]

    shown = run(stack, "dlq", "show", "JobFailureQueue", "--json")
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    assert (row["message_id"], row["job"], row["attempts"], row["error"]) == (
        message_id, "check_budget_limits", 3, "RuntimeError: database gone")
    assert datetime.fromisoformat(row["slot"]) == datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW)

    retried = run(stack, "dlq", "retry", "JobFailureQueue", message_id)
    assert retried.returncode == 0, retried.stderr
    assert "check_budget_limits for 2026-03-10T09:30:00+03:00: succeeded" in retried.stdout
    assert run_sql("SELECT status, attempts FROM job_runs WHERE job = 'check_budget_limits'",
                   database_url=env["DATABASE_URL"]) == [("succeeded", 2)]

    again = run(stack, "dlq", "show", "JobFailureQueue", "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == []
