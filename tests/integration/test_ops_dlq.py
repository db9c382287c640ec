"""`expensebot ops dlq` and `ops queues` against the local stack: all seven DLQs by any of their names, each
message shown, retried, dropped or redriven on its own, the jobs' failure records (Lambda's on-failure record
as simulate writes it, Scheduler's dead letter) read and re-run for their slot, and a worker paused and
resumed through its event source mapping. The resources map is the one `local up` writes."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from expensebot_tools.local.stack import LocalSystem
from tests.conftest import MOSCOW, run_sql
from tests.integration.test_ops import cells, count, ops, park

SLOT = datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW)
WORKERS = ("DefaultWorkerFunction", "ReportsWorkerFunction", "RecurringWorkerFunction", "MaintenanceWorkerFunction",
           "NotificationsWorkerFunction")


def write_resources(path: Path, resources: dict[str, str]) -> None:
    path.write_text(json.dumps(resources), encoding="utf-8")


@pytest.fixture
def resources(system: LocalSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The resources map `local up` writes (every queue by logical id), and EXPENSEBOT_RESOURCES_FILE naming it."""
    path = tmp_path / "resources.json"
    found: dict[str, Any] = dict(system.queues.urls)
    write_resources(path, found)
    monkeypatch.setenv("EXPENSEBOT_RESOURCES_FILE", str(path))
    found["__path__"] = path
    return found


def add_resources(resources: dict[str, Any], more: dict[str, str]) -> None:
    resources.update(more)
    write_resources(resources["__path__"], {k: v for k, v in resources.items() if k != "__path__"})


def dlq_url(system: LocalSystem, logical_id: str) -> str:
    return system.queues.urls[logical_id]


def receive_all(system: LocalSystem, queue_id: str) -> list[dict[str, Any]]:
    found = []
    while batch := system.receive_raw(queue_id):
        found.extend(batch)
        system.delete(queue_id, batch)
    return found


def park_tasks(system: LocalSystem, queue_id: str, items: list[tuple[str, dict[str, Any], str]]) -> list[str]:
    """Parks task messages in a queue's DLQ as the worker does (task and error attributes); their ids."""
    dead_letter = system.queues.urls[queue_id.replace("Queue", "DeadLetterQueue")]
    ids = []
    for task, args, error in items:
        body = json.dumps({"task": task, "args": args, "id": f"t-{len(ids)}-{task}"})
        ids.append(system.sqs.send_message(
            QueueUrl=dead_letter, MessageBody=body,
            MessageAttributes={"error": {"DataType": "String", "StringValue": error},
                               "task": {"DataType": "String", "StringValue": task}})["MessageId"])
    return ids


def fail_a_job_run(system: LocalSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    """check_budget_limits raises on every attempt of the SLOT's delivery, as `simulate` runs it: Lambda's
    retries, then its on-failure record in JobFailureQueue."""
    import expensebot.jobs.budget_limits as budget_limits
    from expensebot_tools.local.simulate import Simulation, SimulationReport

    def database_gone(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database gone")

    with monkeypatch.context() as patch:
        patch.setattr(budget_limits, "plan_budget_alerts", database_gone)
        report = SimulationReport(start=SLOT, end=SLOT)
        Simulation(system, report).fire("CheckBudgetLimitsFunction", SLOT)
    assert report.failures and "database gone" in report.failures[0]


def scheduler_dead_letter(system: LocalSystem) -> str:
    """What Scheduler sends SchedulerDeadLetterQueue when it cannot invoke the job function (moto's Scheduler
    never fires, so the message is put there as Scheduler shapes it)."""
    from expensebot_tools.local.events import schedule_event
    from expensebot_tools.project.aws_records import scheduler_dead_letter as letter

    spec = next(s for s in system.template.schedules() if s.function_id == "CheckBudgetLimitsFunction")
    dead = letter(schedule_event(spec.input, SLOT, attempt=11), error_code="Lambda.AccessDeniedException",
                  error_message="not authorized to perform lambda:InvokeFunction", retry_attempts=10,
                  schedule_arn="arn:aws:scheduler:us-east-1:123456789012:schedule/default/"
                               "expensebot-dev-check_budget_limits",
                  target_arn="arn:aws:lambda:us-east-1:123456789012:function:expensebot-local-CheckBudgetLimitsFunction")
    return str(system.sqs.send_message(QueueUrl=dlq_url(system, "SchedulerDeadLetterQueue"), MessageBody=dead.body,
                                       MessageAttributes=dead.message_attributes())["MessageId"])


def job_runs() -> list[tuple[Any, ...]]:
    return run_sql("SELECT job, slot, status, attempts FROM job_runs ORDER BY id")


# ---------------------------------------------------------------- show


def test_a_task_dlq_is_reached_by_queue_name_logical_id_and_sqs_name(system, resources, capsys):
    ids = park_tasks(system, "NotificationsQueue", [
        ("notifications.send_budget_alert", {"user_id": 1, "chat_id": 11}, "InvalidMessage: chat_id"),
        ("notifications.send_budget_alert", {"user_id": 2, "chat_id": 22}, "TelegramError: blocked"),
    ])

    shown = {}
    for name in ("notifications", "NotificationsQueue", "NotificationsDeadLetterQueue",
                 "expensebot-local-NotificationsDeadLetterQueue"):
        code, out, err = ops(capsys, "dlq", "show", name, "--json")
        assert code == 0, err
        shown[name] = {row["message_id"]: row for row in json.loads(out)}
    assert all(set(rows) == set(ids) for rows in shown.values())
    row = shown["notifications"][ids[0]]
    assert (row["task"], row["arguments"], row["error"]) == (
        "notifications.send_budget_alert", {"user_id": 1, "chat_id": 11}, "InvalidMessage: chat_id")
    assert row["receive_count"] >= 1
    assert datetime.fromisoformat(row["first_failure"]).year == datetime.now().year
    # Peeking consumed nothing: both are visible at once.
    assert count(system, dlq_url(system, "NotificationsDeadLetterQueue")) == 2


def test_show_of_one_id_leaves_every_message_visible(system, resources, capsys):
    ids = park_tasks(system, "DefaultQueue", [("default.debug_task", {"note": f"n{i}"}, "boom") for i in range(12)])

    code, out, err = ops(capsys, "dlq", "show", "default", "--id", ids[11], "--json")

    assert code == 0, err
    assert [row["message_id"] for row in json.loads(out)] == [ids[11]]
    assert count(system, dlq_url(system, "DefaultDeadLetterQueue")) == 12

    code, _, err = ops(capsys, "dlq", "show", "default", "--id", "no-such-id")
    assert code == 2 and "not in the DLQ" in err and "no-such-id" in err
    assert count(system, dlq_url(system, "DefaultDeadLetterQueue")) == 12


def test_job_failure_queue_shows_lambdas_record_as_job_slot_attempts_and_error(system, resources, capsys,
                                                                               monkeypatch):
    fail_a_job_run(system, monkeypatch)

    code, out, err = ops(capsys, "dlq", "show", "JobFailureQueue", "--json")

    assert code == 0, err
    [row] = json.loads(out)
    assert row["kind"] == "job failure"
    assert row["job"] == "check_budget_limits"
    assert datetime.fromisoformat(row["slot"]) == SLOT
    assert row["attempts"] == 3  # the first invocation and Lambda's two retries
    assert row["error"] == "RuntimeError: database gone"
    assert row["function"] == "expensebot-local-CheckBudgetLimitsFunction"
    # The body is Lambda's invocation record, as an on-failure destination receives it.
    record = json.loads(row["body"])
    assert set(record) == {"version", "timestamp", "requestContext", "requestPayload", "responseContext",
                           "responsePayload"}
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["responsePayload"]["errorType"] == "RuntimeError"

    code, out, _ = ops(capsys, "dlq", "show", "JobFailureQueue")
    [line] = [r for r in cells(out) if len(r) == 7 and r[1] == "check_budget_limits"]
    assert line[2].startswith("2026-03-10T09:30:00+03:00") and line[3] == "3" and "RuntimeError" in line[4]
    assert "RuntimeError: database gone" in " ".join(r[4] for r in cells(out) if len(r) == 7)  # wrapped


def test_scheduler_dlq_shows_the_failed_delivery_as_job_slot_attempts_and_error(system, resources, capsys):
    message_id = scheduler_dead_letter(system)

    code, out, err = ops(capsys, "dlq", "show", "SchedulerDeadLetterQueue", "--json")

    assert code == 0, err
    [row] = json.loads(out)
    assert row["message_id"] == message_id and row["kind"] == "scheduler delivery"
    assert (row["job"], datetime.fromisoformat(row["slot"])) == ("check_budget_limits", SLOT)
    assert row["attempts"] == 11  # the first delivery and ten retries
    assert row["error"] == "Lambda.AccessDeniedException: not authorized to perform lambda:InvokeFunction"
    assert row["schedule"] == "expensebot-dev-check_budget_limits"


def test_an_unknown_queue_names_every_way_to_name_one(system, resources, capsys):
    code, _, err = ops(capsys, "dlq", "show", "bogus")
    assert code == 2
    assert "unknown queue 'bogus'; queues are default, reports" in err and "JobFailureQueue" in err


# ---------------------------------------------------------------- retry, drop


def test_retry_of_a_task_message_re_sends_it_and_deletes_exactly_it(system, resources, capsys):
    ids = park_tasks(system, "DefaultQueue", [("default.debug_task", {"note": f"n{i}"}, "boom") for i in range(3)])

    code, out, err = ops(capsys, "dlq", "retry", "default", ids[1])

    assert code == 0, err
    assert f"{ids[1]}: re-sent to 'default'" in out
    [back] = receive_all(system, "DefaultQueue")
    assert json.loads(back["Body"])["args"] == {"note": "n1"}
    assert "error" not in back.get("MessageAttributes", {})  # a fresh attempt
    code, out, _ = ops(capsys, "dlq", "show", "default", "--json")
    assert sorted(row["message_id"] for row in json.loads(out)) == sorted([ids[0], ids[2]])


def test_retry_of_a_job_failure_re_runs_the_job_for_its_slot(system, resources, capsys, monkeypatch):
    fail_a_job_run(system, monkeypatch)
    assert [(job, status) for job, _, status, _ in job_runs()] == [("check_budget_limits", "failed")]
    code, out, _ = ops(capsys, "dlq", "show", "JobFailureQueue", "--json")
    [row] = json.loads(out)

    code, out, err = ops(capsys, "dlq", "retry", "JobFailureQueue", row["message_id"])

    assert code == 0, err
    assert "check_budget_limits for 2026-03-10T09:30:00+03:00: succeeded" in out
    [(job, slot, status, attempts)] = job_runs()
    assert (job, slot, status, attempts) == ("check_budget_limits", SLOT, "succeeded", 4)
    assert count(system, dlq_url(system, "JobFailureQueue")) == 0


def test_retry_of_a_scheduler_dead_letter_runs_the_slot_the_delivery_missed(system, resources, capsys):
    message_id = scheduler_dead_letter(system)

    code, out, err = ops(capsys, "dlq", "retry", "SchedulerDeadLetterQueue", message_id)

    assert code == 0, err
    assert f"{message_id}: check_budget_limits for 2026-03-10T09:30:00+03:00: succeeded" in out
    assert [(job, slot, status) for job, slot, status, _ in job_runs()] == [("check_budget_limits", SLOT, "succeeded")]
    assert count(system, dlq_url(system, "SchedulerDeadLetterQueue")) == 0


def test_a_retry_whose_job_fails_again_keeps_the_record(system, resources, capsys, monkeypatch):
    import expensebot.jobs.budget_limits as budget_limits

    fail_a_job_run(system, monkeypatch)
    code, out, _ = ops(capsys, "dlq", "show", "JobFailureQueue", "--json")
    [row] = json.loads(out)

    def still_gone(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database still gone")

    monkeypatch.setattr(budget_limits, "plan_budget_alerts", still_gone)
    code, _, err = ops(capsys, "dlq", "retry", "JobFailureQueue", row["message_id"])

    assert code == 1 and "not retried" in err and "database still gone" in err
    assert count(system, dlq_url(system, "JobFailureQueue")) == 1  # visible again at once


def test_retry_invokes_the_deployed_job_function_asynchronously_with_the_original_event(
        system, resources, capsys, monkeypatch):
    """Where the deployment names the job's function, the retry is Lambda's: an Event invoke of it. moto's
    Lambda runs functions in Docker; here it runs the template's handler in-process instead."""
    from moto.awslambda.models import LambdaFunction

    fail_a_job_run(system, monkeypatch)
    function_name = create_functions(["CheckBudgetLimitsFunction"])["CheckBudgetLimitsFunction"]
    add_resources(resources, {"CheckBudgetLimitsFunction": function_name})
    invoked: list[tuple[str, dict[str, Any]]] = []

    def run_in_process(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
        event = json.loads(body)
        invoked.append((request_headers.get("X-Amz-Invocation-Type"), event))
        return json.dumps(system.invoke(self.function_name.removeprefix("expensebot-local-"), event)).encode()

    monkeypatch.setattr(LambdaFunction, "invoke", run_in_process)
    code, out, _ = ops(capsys, "dlq", "show", "JobFailureQueue", "--json")
    [row] = json.loads(out)

    code, out, err = ops(capsys, "dlq", "retry", "JobFailureQueue", row["message_id"])

    assert code == 0, err
    assert f"invoked {function_name} (asynchronously)" in out
    [(invocation_type, event)] = invoked
    assert invocation_type == "Event" and event == row["event"]
    assert [status for _, _, status, _ in job_runs()] == ["succeeded"]
    assert count(system, dlq_url(system, "JobFailureQueue")) == 0


def test_drop_asks_first_then_deletes_only_the_given_messages(system, resources, capsys, monkeypatch):
    ids = park_tasks(system, "ReportsQueue", [("reports.send_monthly_report", {"user_id": i}, "x") for i in range(3)])

    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, _ = ops(capsys, "dlq", "drop", "reports", ids[0], ids[2])
    assert code == 1 and "nothing dropped" in out
    assert count(system, dlq_url(system, "ReportsDeadLetterQueue")) == 3

    code, out, err = ops(capsys, "dlq", "drop", "ReportsDeadLetterQueue", ids[0], ids[2], "--yes")
    assert code == 0, err
    code, out, _ = ops(capsys, "dlq", "show", "reports", "--json")
    assert [row["message_id"] for row in json.loads(out)] == [ids[1]]


# ---------------------------------------------------------------- redrive with a filter


def test_a_filtered_redrive_moves_only_the_matching_messages(system, resources, capsys):
    ids = park_tasks(system, "DefaultQueue", [
        ("default.debug_task", {"note": "a"}, "TelegramError: Too Many Requests"),
        ("default.debug_task", {"note": "b"}, "InvalidMessage: chat_id"),
        ("default.other_task", {"note": "c"}, "TelegramError: Too Many Requests"),
    ])

    code, out, err = ops(capsys, "dlq", "redrive", "default", "--task", "default.debug_task",
                         "--error", "too many")

    assert code == 0, err
    assert "redrove 1 matching message(s)" in out
    assert [json.loads(m["Body"])["args"]["note"] for m in receive_all(system, "DefaultQueue")] == ["a"]
    code, out, _ = ops(capsys, "dlq", "show", "default", "--json")
    assert sorted(row["message_id"] for row in json.loads(out)) == sorted(ids[1:])

    code, out, err = ops(capsys, "dlq", "redrive", "default", "--error", "chat_id", "--method", "move")
    assert code == 2 and "cannot filter" in err


def test_a_filtered_redrive_stopped_between_send_and_delete_loses_nothing(system, resources, monkeypatch):
    from expensebot_tools.operations import dlq

    park_tasks(system, "DefaultQueue", [("default.debug_task", {"note": f"m{i}"}, "Timeout" if i % 2 else "Bad")
                                        for i in range(14)])
    dead_letter = dlq_url(system, "DefaultDeadLetterQueue")
    client = system.sqs
    monkeypatch.setattr(dlq, "PEEK_VISIBILITY_SECONDS", 1)

    class Interrupted(Exception):
        pass

    class DiesBeforeTheFirstDelete:
        def __getattr__(self, name: str) -> Any:
            if name == "delete_message_batch":
                def dies(**kwargs: Any) -> Any:
                    raise Interrupted
                return dies
            return getattr(client, name)

    matches = dlq.message_filter(None, "timeout", dlq.QueueRef("DefaultDeadLetterQueue", "default"), MOSCOW)
    with pytest.raises(Interrupted):
        dlq.redrive_by_copy(DiesBeforeTheFirstDelete(), dead_letter, system.queues.urls["DefaultQueue"],
                            matches=matches)

    # The matches of the first batch were re-sent, not deleted: they are in the queue and back in the DLQ.
    time.sleep(1.5)
    assert count(system, dead_letter) == 14
    resent = receive_all(system, "DefaultQueue")
    assert resent and all(int(json.loads(m["Body"])["args"]["note"][1:]) % 2 for m in resent)
    # Run again: every match moves, the rest stay.
    moved = dlq.redrive_by_copy(client, dead_letter, system.queues.urls["DefaultQueue"], matches=matches)
    assert moved == 7
    assert count(system, dead_letter) == 7
    notes = {json.loads(m["Body"])["args"]["note"] for m in receive_all(system, "DefaultQueue")}
    assert notes == {f"m{i}" for i in range(1, 14, 2)}


def test_a_job_dlq_cannot_be_redriven_and_says_to_retry(system, resources, capsys):
    code, _, err = ops(capsys, "dlq", "redrive", "JobFailureQueue")
    assert code == 2 and "ops dlq retry JobFailureQueue ID" in err


# ---------------------------------------------------------------- queues, pause and resume


def create_functions(function_ids: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The functions in moto's Lambda as `local up` names them (any code: moto runs none here)."""
    iam, lam = boto3.client("iam"), boto3.client("lambda")
    try:
        role = iam.get_role(RoleName="expensebot-local-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"Service": "lambda.amazonaws.com"}}]}
        role = iam.create_role(RoleName="expensebot-local-role",
                               AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return None\n")
    names = {}
    for function_id in function_ids:
        names[function_id] = f"expensebot-local-{function_id}"
        lam.create_function(FunctionName=names[function_id], Runtime="python3.12", Role=role,
                            Handler="app.lambda_handler", Code={"ZipFile": code.getvalue()})
    return names


@pytest.fixture
def consumers(system: LocalSystem, resources: dict[str, Any]) -> dict[str, str]:
    """Each worker and its SQS event source mapping in moto's Lambda, in the resources map as `local up`
    writes them; created disabled (moto would try to run an enabled one in Docker on every send), then the
    notifications worker's enabled, as deployed."""
    lam = boto3.client("lambda")
    names = create_functions(WORKERS)
    mappings = {}
    for function_id in WORKERS:
        queue_id = function_id.replace("WorkerFunction", "Queue")
        mappings[f"{function_id}Queue"] = lam.create_event_source_mapping(
            EventSourceArn=system.queues.arns[queue_id], FunctionName=names[function_id], BatchSize=10,
            Enabled=False)["UUID"]
    lam.update_event_source_mapping(UUID=mappings["NotificationsWorkerFunctionQueue"], Enabled=True)
    add_resources(resources, {**names, **mappings})
    return mappings


def mapping_state(uuid: str) -> str:
    return str(boto3.client("lambda").get_event_source_mapping(UUID=uuid)["State"])


def test_pause_disables_the_workers_mapping_and_resume_enables_it(system, consumers, capsys):
    uuid = consumers["NotificationsWorkerFunctionQueue"]

    code, out, err = ops(capsys, "queues", "pause", "notifications")

    assert code == 0, err
    assert mapping_state(uuid) == "Disabled"
    assert "paused" in out and "NotificationsWorkerFunction" in out and "nothing is lost" in out
    code, out, _ = ops(capsys, "queues", "--json")
    rows = {row["queue"]: row for row in json.loads(out)}
    assert rows["notifications"]["consumer"] == "Disabled"
    code, out, _ = ops(capsys, "queues")
    assert "Disabled (paused)" in out
    # The messages wait in the queue.
    system.sqs.send_message(QueueUrl=system.queues.urls["NotificationsQueue"], MessageBody="{}")
    assert count(system, system.queues.urls["NotificationsQueue"]) == 1

    code, out, err = ops(capsys, "queues", "resume", "NotificationsQueue")
    assert code == 0, err
    assert mapping_state(uuid) == "Enabled" and "resumed" in out
    assert mapping_state(consumers["DefaultWorkerFunctionQueue"]) == "Disabled"  # only that queue's worker


def test_pausing_a_dlq_or_an_unmapped_queue_says_why_not(system, resources, capsys):
    code, _, err = ops(capsys, "queues", "pause", "JobFailureQueue")
    assert code == 2 and "has no consumer" in err
    code, _, err = ops(capsys, "queues", "pause", "reports")
    assert code == 2 and "ReportsWorkerFunctionQueue" in err and "is not known" in err


def test_queues_lists_all_twelve_with_depths_and_consumers(system, consumers, capsys):
    park(system, "DefaultQueue", 2)
    system.sqs.send_message(QueueUrl=dlq_url(system, "JobFailureQueue"), MessageBody="{}")

    code, out, err = ops(capsys, "queues", "--json")

    assert code == 0, err
    rows = {row["logical_id"]: row for row in json.loads(out)}
    assert len(rows) == 12 and not [r for r in rows.values() if "problem" in r]
    assert rows["DefaultQueue"]["dead_letter"] == 2 and rows["DefaultDeadLetterQueue"]["waiting"] == 2
    assert rows["JobFailureQueue"]["waiting"] == 1
    assert rows["NotificationsQueue"]["consumer"] == "Enabled" and rows["DefaultQueue"]["consumer"] == "Disabled"
    assert "consumer" not in rows["JobFailureQueue"]


def test_queues_with_nothing_configured_is_a_configuration_error(system, capsys, monkeypatch):
    for name in ("DEFAULT", "REPORTS", "RECURRING", "MAINTENANCE", "NOTIFICATIONS"):
        monkeypatch.delenv(f"QUEUE_URL_{name}", raising=False)
        monkeypatch.delenv(f"DEAD_LETTER_QUEUE_URL_{name}", raising=False)
    monkeypatch.delenv("EXPENSEBOT_RESOURCES_FILE", raising=False)
    monkeypatch.delenv("EXPENSEBOT_STACK_NAME", raising=False)

    code, out, err = ops(capsys, "queues")

    assert code == 2 and out == ""
    assert "no queue is configured" in err and "source .expensebot/local.env" in err


# ---------------------------------------------------------------- doctor


def test_doctor_checks_the_jobs_two_dlqs_and_says_what_to_do(system, resources, capsys, monkeypatch):
    fail_a_job_run(system, monkeypatch)
    scheduler_dead_letter(system)

    code, out, _ = ops(capsys, "doctor", "--json", "--no-schedules")

    checks = {check["name"]: check for check in json.loads(out)["checks"]}
    assert code == 1
    assert not checks["DLQ JobFailureQueue"]["ok"] and "1 failed job" in checks["DLQ JobFailureQueue"]["detail"]
    assert "ops dlq show JobFailureQueue" in checks["DLQ JobFailureQueue"]["fix"]
    assert "ops dlq retry JobFailureQueue ID" in checks["DLQ JobFailureQueue"]["fix"]
    assert not checks["DLQ SchedulerDeadLetterQueue"]["ok"]
    assert "ops dlq show SchedulerDeadLetterQueue" in checks["DLQ SchedulerDeadLetterQueue"]["fix"]


def test_doctor_without_the_job_dlqs_configured_says_how_to_name_them(system, capsys):
    code, out, _ = ops(capsys, "doctor", "--json", "--no-schedules")

    checks = {check["name"]: check for check in json.loads(out)["checks"]}
    assert code == 1
    assert checks["DLQ JobFailureQueue"]["detail"].startswith("no URL configured")
    assert "JOB_FAILURE_QUEUE_URL" in checks["DLQ JobFailureQueue"]["fix"]
