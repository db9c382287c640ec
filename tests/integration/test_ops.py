"""`expensebot ops` against the local stack: moto's SQS, the embedded database, the application's ledger.
The command runs in-process (its main with argv), since moto's mock lives in this process."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from typing import Any

import psycopg2
import pytest

from expensebot_tools.cli import main
from tests.conftest import MOSCOW


def ops(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["ops", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cells(output: str) -> list[list[str]]:
    """The rows of a rich table as the operator reads them (the first cell of each wrapped line)."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if "│" in line]


def dead_letter_url(system: Any, queue_id: str) -> str:
    attributes = system.sqs.get_queue_attributes(QueueUrl=system.queues.urls[queue_id],
                                                 AttributeNames=["RedrivePolicy"])["Attributes"]
    name = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].rsplit(":", 1)[1]
    return system.sqs.get_queue_url(QueueName=name)["QueueUrl"]


def count(system: Any, url: str) -> int:
    attributes = system.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def park(system: Any, queue_id: str, n: int, *, error: str = "RuntimeError: boom") -> list[str]:
    """Puts n task messages into a queue's DLQ as the worker parks them (with task and error attributes)."""
    bodies = [json.dumps({"task": "default.debug_task", "args": {"note": f"n{i}"}, "id": f"m{i}"}) for i in range(n)]
    for body in bodies:
        system.sqs.send_message(
            QueueUrl=dead_letter_url(system, queue_id), MessageBody=body,
            MessageAttributes={"error": {"DataType": "String", "StringValue": error},
                               "task": {"DataType": "String", "StringValue": "default.debug_task"}},
        )
    return bodies


def test_tasks_lists_every_registered_task_with_its_queue_and_job(capsys):
    from expensebot.tasks import registry

    code, out, _ = ops(capsys, "tasks", "--json")

    assert code == 0
    rows = {row["task"]: row for row in json.loads(out)}
    assert set(rows) == set(registry())
    assert rows["notifications.send_budget_alert"]["queue"] == "notifications"
    assert rows["notifications.send_budget_alert"]["job"] == "check_budget_limits"
    assert rows["notifications.send_budget_alert"]["schedule"] == "every 30 minutes"
    assert rows["default.debug_task"]["job"] is None
    assert all(row["description"] for row in rows.values())


def test_queues_shows_waiting_and_dead_letter_counts_per_queue(system, capsys):
    for _ in range(3):
        system.sqs.send_message(QueueUrl=system.queues.urls["ReportsQueue"], MessageBody="{}")
    park(system, "DefaultQueue", 2)

    code, out, _ = ops(capsys, "queues", "--json")
    assert code == 0
    rows = {row["queue"]: row for row in json.loads(out)}
    assert (rows["reports"]["waiting"], rows["reports"]["dead_letter"]) == (3, 0)
    assert (rows["default"]["waiting"], rows["default"]["dead_letter"]) == (0, 2)
    # The five task queues, their five DLQs, and the jobs' two DLQs (their URLs unknown here: QUEUE_URL_* only).
    assert set(rows) == {"default", "reports", "recurring", "maintenance", "notifications",
                         "DefaultDeadLetterQueue", "ReportsDeadLetterQueue", "RecurringDeadLetterQueue",
                         "MaintenanceDeadLetterQueue", "NotificationsDeadLetterQueue", "JobFailureQueue",
                         "SchedulerDeadLetterQueue"}
    assert rows["DefaultDeadLetterQueue"]["waiting"] == 2
    assert rows["JobFailureQueue"]["problem"] == "no URL configured (JOB_FAILURE_QUEUE_URL)"

    code, out, _ = ops(capsys, "queues")
    table = {row[0]: row for row in cells(out) if row and row[0] in rows}
    assert table["reports"][1:6] == ["tasks", "3", "0", "0", "0"]
    assert table["default"][1:6] == ["tasks", "0", "0", "0", "2"]


def test_queues_reports_a_queue_without_a_url(system, capsys, monkeypatch):
    monkeypatch.delenv("QUEUE_URL_RECURRING")

    code, out, _ = ops(capsys, "queues", "--json")

    assert code == 0
    rows = {row["queue"]: row for row in json.loads(out)}
    assert rows["recurring"]["problem"] == "no URL configured (QUEUE_URL_RECURRING)"
    assert "problem" not in rows["reports"]


def test_status_shows_runs_in_progress_stale_and_finished_with_duration_and_counts(system, capsys):
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO job_runs (job, slot, status, started_at, finished_at, planned, enqueued, details, error)"
            " VALUES ('check_budget_limits', '2026-03-10 08:30+03', 'succeeded', '2026-03-10 08:30:00+03',"
            "         '2026-03-10 08:30:12.5+03', 40, 38, '{\"skipped\": 2}', NULL),"
            "        ('send_monthly_reports', '2026-02-28 20:00+03', 'failed', '2026-02-28 20:00:00+03',"
            "         '2026-02-28 20:00:01+03', NULL, NULL, '{}', 'RuntimeError: database gone'),"
            "        ('cleanup_old_expenses', '2026-03-08 03:00+03', 'running', '2026-03-08 03:00:00+03',"
            "         NULL, NULL, NULL, '{}', NULL)"
        )
    conn.close()

    code, out, _ = ops(capsys, "status", "--json")
    assert code == 0
    runs = {run["job"]: run for run in json.loads(out)["job_runs"]}
    assert runs["check_budget_limits"]["duration_seconds"] == 12.5
    assert (runs["check_budget_limits"]["planned"], runs["check_budget_limits"]["enqueued"]) == (40, 38)
    assert runs["send_monthly_reports"]["error"] == "RuntimeError: database gone"
    # Started long before the hard limit and never finished: its worker died.
    assert runs["cleanup_old_expenses"]["stale"] is True

    code, out, _ = ops(capsys, "status", "--limit", "1")
    assert code == 0
    shown = {row[1]: row for row in cells(out) if len(row) == 10 and row[1]}
    # The latest run, and the run still 'running' however old it is.
    assert set(shown) == {"check_budget_limits", "cleanup_old_expenses"}
    assert shown["check_budget_limits"][3] == "succeeded" and shown["check_budget_limits"][6] == "12.5"
    assert "stale" in out and "skipped=2" in out


def test_dlq_show_peeks_at_messages_and_their_errors_without_consuming_them(system, capsys):
    bodies = park(system, "DefaultQueue", 3, error="InvalidMessage: chat_id: not an integer")

    code, out, _ = ops(capsys, "dlq", "show", "default", "--json")

    assert code == 0
    rows = json.loads(out)
    assert sorted(row["body"] for row in rows) == sorted(bodies)
    assert {row["error"] for row in rows} == {"InvalidMessage: chat_id: not an integer"}
    assert {row["task"] for row in rows} == {"default.debug_task"}
    # Nothing consumed, and visible again at once.
    assert count(system, dead_letter_url(system, "DefaultQueue")) == 3
    code, out, _ = ops(capsys, "dlq", "show", "default")
    assert code == 0 and "3 message(s) shown" in out and "InvalidMessage: chat_id" in out


def test_redrive_by_copy_moves_every_message_back_exactly_once(system, capsys):
    bodies = park(system, "DefaultQueue", 23)

    code, out, err = ops(capsys, "dlq", "redrive", "default", "--method", "copy")

    assert code == 0, err
    assert "redrove 23 message(s)" in out
    assert count(system, dead_letter_url(system, "DefaultQueue")) == 0
    back = []
    while received := system.receive_raw("DefaultQueue"):
        back.extend(received)
        system.delete("DefaultQueue", received)
    assert sorted(m["Body"] for m in back) == sorted(bodies)
    # The reason stays behind: a redriven message is a fresh attempt.
    assert all("error" not in m.get("MessageAttributes", {}) for m in back)


def test_redrive_auto_falls_back_to_copy_where_move_tasks_are_unavailable(system, capsys):
    park(system, "ReportsQueue", 2)

    code, out, err = ops(capsys, "dlq", "redrive", "reports")

    assert code == 0, err
    assert "redrove 2 message(s)" in out
    assert count(system, system.queues.urls["ReportsQueue"]) == 2


def test_a_redrive_stopped_half_way_loses_nothing(system, capsys, monkeypatch):
    from expensebot_tools.operations import dlq as ops_module

    bodies = park(system, "DefaultQueue", 15)
    dlq = dead_letter_url(system, "DefaultQueue")
    client = system.sqs
    calls = {"deletes": 0}
    # Hidden for a second only, so the test need not wait a minute for the interrupted batch.
    monkeypatch.setattr(ops_module, "PEEK_VISIBILITY_SECONDS", 1)

    class Interrupted(Exception):
        pass

    def dies_on_second_delete(**kwargs: Any) -> Any:
        calls["deletes"] += 1
        if calls["deletes"] == 2:
            raise Interrupted
        return client.delete_message_batch(**kwargs)

    class Dying:
        def __getattr__(self, name: str) -> Any:
            return dies_on_second_delete if name == "delete_message_batch" else getattr(client, name)

    with pytest.raises(Interrupted):
        ops_module.redrive_by_copy(Dying(), dlq, system.queues.urls["DefaultQueue"])

    # The second batch was re-sent but not deleted: after its visibility timeout it is in the DLQ again,
    # and a second redrive delivers it; every body reaches the queue, the interrupted ones twice.
    assert count(system, dlq) == 0
    time.sleep(1.5)
    assert count(system, dlq) == 5
    moved = ops_module.redrive_by_copy(client, dlq, system.queues.urls["DefaultQueue"])
    assert moved == 5
    back = []
    while received := system.receive_raw("DefaultQueue"):
        back.extend(received)
        system.delete("DefaultQueue", received)
    assert set(m["Body"] for m in back) == set(bodies) and len(back) == 20
    assert count(system, dlq) == 0


def test_purge_asks_first_and_empties_the_queue_or_its_dlq(system, capsys, monkeypatch):
    for _ in range(4):
        system.sqs.send_message(QueueUrl=system.queues.urls["DefaultQueue"], MessageBody="{}")
    park(system, "DefaultQueue", 2)

    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, _ = ops(capsys, "purge", "default")
    assert code == 1 and "nothing purged" in out
    assert count(system, system.queues.urls["DefaultQueue"]) == 4

    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    code, out, _ = ops(capsys, "purge", "default")
    assert code == 0 and "about 4 message(s)" in out
    assert count(system, system.queues.urls["DefaultQueue"]) == 0
    assert count(system, dead_letter_url(system, "DefaultQueue")) == 2

    code, out, _ = ops(capsys, "purge", "default", "--dlq", "--yes")
    assert code == 0
    assert count(system, dead_letter_url(system, "DefaultQueue")) == 0


def test_purge_of_an_unknown_queue_names_the_queues(system, capsys):
    code, _, err = ops(capsys, "purge", "bogus", "--yes")
    assert code == 2
    assert "unknown queue 'bogus'; queues are default, reports" in err


def test_send_validates_the_arguments_then_enqueues_one_unit(system, capsys):
    code, _, err = ops(capsys, "send", "default.debug_task", "--args", '{"chat_id": "not a number"}')
    assert code == 2 and "invalid --args for default.debug_task: chat_id:" in err
    assert count(system, system.queues.urls["DefaultQueue"]) == 0

    code, out, err = ops(capsys, "send", "default.debug_task", "--args", '{"note": "from ops"}')
    assert code == 0, err
    [message] = system.receive_raw("DefaultQueue")
    body = json.loads(message["Body"])
    assert body["task"] == "default.debug_task" and body["args"]["note"] == "from ops"
    assert body["id"] in out


def test_send_of_an_unknown_task_lists_the_known_ones(system, capsys):
    code, _, err = ops(capsys, "send", "reports.nope")
    assert code == 2 and "unregistered task 'reports.nope'; known tasks:" in err


def test_run_runs_a_job_for_a_slot_through_the_ledger_once(system, capsys):
    code, out, err = ops(capsys, "run", "check_budget_limits", "--slot", "2026-03-10T09:00", "--json")
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["status"] == "succeeded" and outcome["job"] == "check_budget_limits"
    assert datetime.fromisoformat(outcome["slot"]) == datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)

    code, out, _ = ops(capsys, "run", "check_budget_limits", "--slot", "2026-03-10T09:00")
    assert code == 0 and "already ran" in out
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT job, status FROM job_runs")
        assert cur.fetchall() == [("check_budget_limits", "succeeded")]
    conn.close()


def test_run_of_an_unknown_job_names_the_jobs(system, capsys):
    code, _, err = ops(capsys, "run", "nope")
    assert code == 2 and "unknown job 'nope'; jobs are check_budget_limits" in err


def test_redrive_by_move_where_sqs_cannot_says_to_copy_and_moves_nothing(system, capsys):
    park(system, "DefaultQueue", 2)

    code, _, err = ops(capsys, "dlq", "redrive", "default", "--method", "move")

    assert code == 2 and err.rstrip().endswith("try --method copy")
    assert count(system, dead_letter_url(system, "DefaultQueue")) == 2
