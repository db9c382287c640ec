"""Races in processes, not threads: the same SQS record through two worker processes at once for every kind
of task, the same schedule slot fired in two processes, the same update posted twice at once. Each process
is a Lambda execution environment of its own (its own interpreter, connections and clients), sharing only
what Lambda's would: PostgreSQL, SQS (moto's server over HTTP) and Telegram (the stand-in over HTTP)."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from expensebot_tools.local.lambda_test import SEED_SQL
from tests.conftest import EVENTS_DIR, MOSCOW, run_sql
from tests.faults.delivery import delivered_per_chat

NOW = datetime(2026, 3, 31, 21, 0, tzinfo=MOSCOW)
ANNA = 1001
SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters: nothing of the parent's state shared


@pytest.fixture
def shared_world(clean_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto's server and the Telegram stand-in over HTTP, and the sample events' rows in the database."""
    from expensebot_tools.local.stack import LOCAL_BOT_TOKEN
    from expensebot_tools.local.telegram import TelegramStandIn
    from expensebot_tools.local.up import moto_server

    monkeypatch.setenv("DATABASE_URL", clean_database)  # the test's own queries (run_sql)
    for statement in SEED_SQL.split(";"):
        if statement.strip():
            run_sql(statement)
    telegram = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], enforce_limits=False, accept_any_chat=True)
    telegram.start()
    try:
        with moto_server() as endpoint:
            env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                   "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
            yield {"database_url": clean_database, "telegram": telegram, "env": env}
    finally:
        telegram.stop()


def _invoke(world: dict[str, Any], function_id: str, event: dict[str, Any], start: Any, answers: Any,
            mode: str) -> None:
    """One execution environment: the local system on the shared services, then, when every process is
    ready, the one invocation."""
    os.environ.update(world["env"])
    from types import SimpleNamespace

    from expensebot.clock import VirtualClock
    from expensebot_tools.local.stack import running_system
    from expensebot_tools.project.template import Template

    telegram = SimpleNamespace(base_url=world["telegram_base"])
    with running_system(template=Template(), database_url=world["database_url"], telegram=telegram,
                        clock=VirtualClock(datetime.fromisoformat(world["now"]))) as system:
        if mode == "schedule":
            from expensebot_tools.local.events import schedule_event

            spec = next(s for s in system.template.schedules() if s.function_id == function_id)
            event = schedule_event(spec.input, datetime.fromisoformat(event["slot"]))
        start.wait(timeout=60)
        if mode == "update":
            answers.put(system.post_update(event))
        else:
            answers.put(system.invoke(function_id, event))


def race(world: dict[str, Any], function_id: str, event: dict[str, Any], *, mode: str = "invoke",
         processes: int = 2) -> list[Any]:
    """The same event through `processes` execution environments at the same moment."""
    start = SPAWN.Barrier(processes)
    answers = SPAWN.Queue()
    picklable = {"database_url": world["database_url"], "env": world["env"],
                 "telegram_base": world["telegram"].base_url, "now": NOW.isoformat()}
    workers = [SPAWN.Process(target=_invoke, args=(picklable, function_id, event, start, answers, mode))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    results = [answers.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    return results


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def debug_record() -> dict[str, Any]:
    event = sample("sqs_default_debug_task.json")
    body = json.loads(event["Records"][0]["body"])
    body["args"].update(chat_id=ANNA, request_id="race-1")
    event["Records"][0]["body"] = json.dumps(body)
    return event


def count(sql: str, params: Any = None) -> int:
    return int(run_sql(sql, params)[0][0])


RECORDS = {
    "default.debug_task": ("DefaultWorkerFunction", debug_record, None),
    "notifications.send_budget_alert": ("NotificationsWorkerFunction",
                                        lambda: sample("sqs_notifications_budget_alert.json"),
                                        "SELECT count(*) FROM budget_alerts"),
    "recurring.book_recurring_payment": ("RecurringWorkerFunction",
                                         lambda: sample("sqs_recurring_book_payment.json"),
                                         "SELECT count(*) FROM expenses WHERE recurring_payment_id = 1"),
    "reports.send_monthly_report": ("ReportsWorkerFunction", lambda: sample("sqs_reports_monthly_report.json"),
                                    "SELECT count(*) FROM monthly_reports"),
}


@pytest.mark.parametrize("task", list(RECORDS))
def test_the_same_sqs_record_in_two_worker_processes_at_once_has_one_effect(task, shared_world, figures):
    function_id, make_event, rows_sql = RECORDS[task]
    figures.faults += 1

    answers = race(shared_world, function_id, make_event())

    # Each process either did the unit or found it claimed/done; a claimed one is handed back, and SQS
    # delivers it again.
    assert len(answers) == 2
    if any(a["batchItemFailures"] for a in answers):
        race(shared_world, function_id, make_event(), processes=1)
    counts = delivered_per_chat(shared_world["telegram"])
    figures.expected += 1
    figures.lost += int(counts[ANNA] == 0)
    figures.duplicated += max(0, counts[ANNA] - 1)
    assert counts[ANNA] == 1
    if rows_sql:
        assert count(rows_sql) == 1


def task_event(queue_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """An SQS event of one record carrying `body`, shaped as the sample events are."""
    event = sample("sqs_default_debug_task.json")
    record = event["Records"][0]
    record["body"] = json.dumps(body)
    record["eventSourceARN"] = record["eventSourceARN"].rsplit(":", 1)[0] + f":expensebot-local-{queue_id}"
    return event


def test_the_same_admin_report_in_two_worker_processes_at_once_is_sent_once(shared_world, figures, monkeypatch):
    from expensebot.clock import VirtualClock
    from expensebot.jobs.admin_report import AdminReport, gather_admin_stats
    from expensebot_tools.local.stack import running_system
    from expensebot_tools.project.template import Template

    for name, value in shared_world["env"].items():
        monkeypatch.setenv(name, value)
    with running_system(template=Template(), database_url=shared_world["database_url"],
                        telegram=shared_world["telegram"], clock=VirtualClock(NOW)):
        from expensebot.bootstrap import get_runtime

        report = AdminReport(chat_id=ANNA, language_code="en", stats=gather_admin_stats(get_runtime(), NOW))
    body = {"task": "reports.send_admin_report", "args": report.model_dump(mode="json"), "id": "race-admin"}
    figures.faults += 1

    answers = race(shared_world, "ReportsWorkerFunction", task_event("ReportsQueue", body))

    assert len(answers) == 2
    if any(a["batchItemFailures"] for a in answers):  # handed back: SQS delivers it again
        race(shared_world, "ReportsWorkerFunction", task_event("ReportsQueue", body), processes=1)
    counts = delivered_per_chat(shared_world["telegram"])
    figures.expected += 1
    figures.lost += int(counts[ANNA] == 0)
    figures.duplicated += max(0, counts[ANNA] - 1)
    assert counts[ANNA] == 1


def test_the_same_reports_continuation_in_two_processes_enqueues_one_successor_and_one_report_each(
        shared_world, figures):
    run_sql("INSERT INTO job_runs (job, slot, status, started_at, finished_at, details)"
            " VALUES ('send_monthly_reports', '2026-03-31 20:00+03', 'succeeded', now(), now(), '{}')")
    body = {"task": "reports.continue_monthly_reports", "id": "race-continuation",
            "args": {"job_run_id": 1, "generation": 1, "month": "2026-03-01", "after_user_id": 0}}
    figures.faults += 1

    answers = race(shared_world, "ReportsWorkerFunction", task_event("ReportsQueue", body))

    assert all(a["batchItemFailures"] == [] for a in answers)
    # Both planned Anna's report (the documented cost: a unit enqueued twice); drained, she gets one.
    import boto3

    sqs = boto3.client("sqs", endpoint_url=shared_world["env"]["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.get_queue_url(QueueName="expensebot-local-ReportsQueue")["QueueUrl"]
    units = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert 1 <= len(units) <= 2
    for unit in units:
        race(shared_world, "ReportsWorkerFunction", task_event("ReportsQueue", json.loads(unit["Body"])),
             processes=1)
    counts = delivered_per_chat(shared_world["telegram"])
    figures.expected += 1
    figures.duplicated += max(0, counts[ANNA] - 1)
    figures.lost += int(counts[ANNA] == 0)
    assert counts[ANNA] == 1
    assert count("SELECT count(*) FROM monthly_reports") == 1


def test_the_same_cleanup_continuation_in_two_processes_deletes_each_row_once(shared_world, figures):
    run_sql("INSERT INTO job_runs (job, slot, status, started_at, finished_at, details)"
            " VALUES ('cleanup_old_expenses', '2026-03-08 03:00+03', 'succeeded', now(), now(), '{}')")
    figures.faults += 1

    answers = race(shared_world, "MaintenanceWorkerFunction", sample("sqs_maintenance_continue_cleanup.json"))

    assert all(a["batchItemFailures"] == [] for a in answers)
    assert count("SELECT count(*) FROM expenses WHERE spent_at < '2024-03-09 03:00+03'") == 0
    deleted = run_sql("SELECT details ->> 'deleted' FROM job_runs WHERE id = 1")[0][0]
    assert int(deleted) == 2  # counted once, though two processes ran the continuation


def test_the_same_schedule_slot_in_two_processes_runs_once(shared_world, figures):
    figures.faults += 1

    answers = race(shared_world, "CheckBudgetLimitsFunction", {"slot": NOW.isoformat()}, mode="schedule")

    statuses = sorted(a["status"] for a in answers)
    assert statuses == ["duplicate", "succeeded"]
    assert count("SELECT count(*) FROM job_runs WHERE job = 'check_budget_limits'") == 1


def test_the_same_update_posted_twice_at_once_is_stored_and_answered_once(shared_world, figures):
    from expensebot_tools.local.updates import FakeUser, UpdateFactory

    update = UpdateFactory().message(FakeUser(ANNA, "Анна"), "250 кофе", NOW)
    figures.faults += 1

    answers = race(shared_world, "WebhookFunction", update, mode="update")

    assert sorted(a["statusCode"] for a in answers) == [200, 200]
    assert count("SELECT count(*) FROM expenses WHERE source_update_id = %s", (update["update_id"],)) == 1
    counts = delivered_per_chat(shared_world["telegram"])
    figures.expected += 1
    figures.duplicated += max(0, counts[ANNA] - 1)
    figures.lost += int(counts[ANNA] == 0)
    assert counts[ANNA] == 1
