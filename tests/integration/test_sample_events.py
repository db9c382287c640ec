"""The sample events of infra/events (what `sam local invoke <Function> -e <file>` takes) run through the same
handlers on the local stack, and are checked against template.yaml so they cannot drift from it."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import pytest

from expensebot_tools.local.events import api_gateway_event, schedule_event
from tests.conftest import EVENTS_DIR, MOSCOW, load_event
from tests.conftest import run_sql as _query

SQS_RECORD_FIELDS = {
    "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody", "eventSource",
    "eventSourceARN", "awsRegion",
}
SQS_RECORD_ATTRIBUTES = {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}
ANNA = 1001


def _scheduled_time(event: dict[str, Any]) -> datetime:
    return datetime.strptime(event["scheduled_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _job_in(schedule_input: str) -> str:
    return json.loads(schedule_input)["job"]


def _register_budget(user_id: int, category: str | None, amount: str) -> int:
    """User and budget rows as the bot's /start and /budget would leave them; returns the budget's id."""
    now = datetime(2026, 3, 1, 12, 0, tzinfo=MOSCOW)
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (user_id, chat_id, language_code, created_at, last_seen_at)"
            " VALUES (%s, %s, 'ru', %s, %s)",
            (user_id, user_id, now, now),
        )
        cur.execute(
            "INSERT INTO budgets (user_id, category, amount, created_at, updated_at) VALUES (%s, %s, %s, %s, %s)"
            " RETURNING id",
            (user_id, category, Decimal(amount), now, now),
        )
        (budget_id,) = cur.fetchone()
    conn.close()
    return budget_id


# ---------------------------------------------------------------- Scheduler's cron()


def cron_fires_at(expression: str, local: datetime) -> bool:
    """Whether Scheduler fires the expression at this local minute (the simulation's schedule engine)."""
    from expensebot_tools.project.schedules import fire_times

    return local.second == 0 and fire_times(expression, local.tzinfo, local, local + timedelta(minutes=1)) == [local]


def test_the_cron_evaluator_reads_scheduler_expressions():
    monday_0930 = datetime(2026, 3, 9, 9, 30, tzinfo=MOSCOW)
    assert cron_fires_at("cron(0/30 * * * ? *)", monday_0930)
    assert not cron_fires_at("cron(0/30 * * * ? *)", monday_0930.replace(minute=15))
    assert cron_fires_at("cron(0 3 ? * SUN *)", datetime(2026, 3, 8, 3, 0, tzinfo=MOSCOW))
    assert not cron_fires_at("cron(0 3 ? * SUN *)", datetime(2026, 3, 9, 3, 0, tzinfo=MOSCOW))


# ---------------------------------------------------------------- the files against template.yaml


def test_there_is_one_schedule_event_per_scheduled_job_of_the_template(template):
    jobs = {_job_in(schedule.input) for schedule in template.schedules()}
    assert {path.name for path in EVENTS_DIR.glob("schedule_*.json")} == {f"schedule_{job}.json" for job in jobs}


def test_every_schedule_event_is_what_scheduler_delivers_from_its_functions_input(template):
    for schedule in template.schedules():
        event = load_event(f"schedule_{_job_in(schedule.input)}.json")
        expected = schedule_event(
            schedule.input, _scheduled_time(event), attempt=int(event["attempt"]), execution_id=event["execution_id"]
        )
        assert event == expected, schedule.function_id
        assert event["job"] == template.functions[schedule.function_id].properties["Environment"]["Variables"][
            "JOB_NAME"
        ]


def test_every_schedule_event_falls_on_a_slot_of_its_schedule_in_the_template_time_zone(template):
    zone = ZoneInfo(template.parameter_defaults()["TimeZone"])
    for schedule in template.schedules():
        event = load_event(f"schedule_{_job_in(schedule.input)}.json")
        local = _scheduled_time(event).astimezone(zone)
        assert cron_fires_at(schedule.expression, local), f"{event['job']}: {local} is no slot of {schedule.expression}"
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", event["execution_id"])
        assert event["attempt"] == "1"


def test_the_monthly_report_event_is_the_20_00_slot_of_a_months_last_day(template):
    event = load_event("schedule_send_monthly_reports.json")
    local = _scheduled_time(event).astimezone(ZoneInfo(template.parameter_defaults()["TimeZone"]))
    assert (local.hour, local.minute) == (20, 0)
    assert (local + timedelta(days=1)).day == 1, f"{local:%Y-%m-%d} is not the last day of its month"


SQS_SAMPLES = sorted(path.name for path in EVENTS_DIR.glob("sqs_*.json"))


def test_there_is_an_sqs_sample_for_every_worker_function(template):
    sampled_queues = {
        record["eventSourceARN"].rsplit(":", 1)[1].removeprefix("expensebot-local-")
        for name in SQS_SAMPLES
        for record in load_event(name)["Records"]
    }
    assert {s.queue_id for s in template.subscriptions()} <= sampled_queues


@pytest.mark.parametrize(
    ("name", "worker"),
    [("sqs_default_debug_task.json", "DefaultWorkerFunction"),
     ("sqs_maintenance_continue_cleanup.json", "MaintenanceWorkerFunction")],
)
def test_the_default_and_maintenance_samples_run_through_their_workers(system, name, worker):
    event = load_event(name)
    queue_id = event["Records"][0]["eventSourceARN"].rsplit("-", 1)[1]
    for record in event["Records"]:
        record["eventSourceARN"] = system.queues.arns[queue_id]
    assert system.invoke(worker, event) == {"batchItemFailures": []}
    assert system.receive_raw(f"{queue_id.removesuffix('Queue')}DeadLetterQueue") == []


@pytest.mark.parametrize("name", SQS_SAMPLES)
def test_every_sqs_record_has_the_fields_lambda_sends_and_the_real_md5_of_its_body(name):
    records = load_event(name)["Records"]
    assert records
    for record in records:
        assert set(record) == SQS_RECORD_FIELDS
        assert set(record["attributes"]) == SQS_RECORD_ATTRIBUTES
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert record["eventSource"] == "aws:sqs"
        assert record["awsRegion"] == record["eventSourceARN"].split(":")[3]
    assert len({r["messageId"] for r in records}) == len(records)


@pytest.mark.parametrize("name", SQS_SAMPLES)
def test_each_sqs_sample_comes_from_a_queue_a_worker_consumes_and_carries_that_queues_tasks(template, name):
    from expensebot.errors import InvalidMessage
    from expensebot.tasks import lookup, parse_message

    consumed = {s.queue_id: s for s in template.subscriptions()}
    for record in load_event(name)["Records"]:
        queue_id = record["eventSourceARN"].rsplit(":", 1)[1].removeprefix("expensebot-local-")
        assert queue_id in consumed, f"{name}: no worker consumes {queue_id}"
        queue = template.own_environment(consumed[queue_id].function_id)["QUEUE_NAME"]
        try:
            task = lookup(parse_message(record["body"]).task)
        except InvalidMessage:
            continue  # a poison sample: meant to be refused
        assert task.queue == queue, f"{name}: {task.name} does not belong on {queue}"


def test_the_budget_alert_record_is_a_task_message_for_the_notifications_queue():
    from expensebot.jobs.budget_limits import BudgetAlert
    from expensebot.tasks import lookup, parse_message

    (record,) = load_event("sqs_notifications_budget_alert.json")["Records"]
    message = parse_message(record["body"])
    task = lookup(message.task)
    assert (task.name, task.queue) == ("notifications.send_budget_alert", "notifications")
    alert = BudgetAlert.model_validate(message.args)
    assert (alert.user_id, alert.threshold) == (ANNA, 80)
    assert message.job_run_id is None


def test_the_webhook_event_is_an_http_api_request_to_the_templates_webhook_route(template):
    event = load_event("apigw_webhook_expense.json")
    (route,) = [e["Properties"] for e in template.functions["WebhookFunction"].properties["Events"].values()]
    built = api_gateway_event(json.loads(event["body"]), secret="x", path=route["Path"])
    assert set(event) == set(built) and set(event["requestContext"]) == set(built["requestContext"])
    assert event["routeKey"] == f"{route['Method'].upper()} {route['Path']}"
    assert event["requestContext"]["http"]["method"] == route["Method"].upper()
    assert event["headers"]["x-telegram-bot-api-secret-token"] == "local-webhook-secret"
    message = json.loads(event["body"])["message"]
    assert (message["from"]["id"], message["chat"]["type"], message["text"]) == (ANNA, "private", "250 кофе")


# ---------------------------------------------------------------- the handlers, fed the files


def test_the_budget_check_schedule_event_runs_once_and_its_second_delivery_is_a_duplicate(
    system, template, lambda_context
):
    handler = template.load_handler("CheckBudgetLimitsFunction")
    event = load_event("schedule_check_budget_limits.json")

    first = handler(event, lambda_context)
    second = handler(event, lambda_context)

    assert (first["job"], first["status"], first["enqueued"]) == ("check_budget_limits", "succeeded", 0)
    assert second["status"] == "duplicate"
    assert _query("SELECT job, status, attempts FROM job_runs") == [("check_budget_limits", "succeeded", 1)]


def test_the_budget_alert_event_sends_one_alert_through_the_notifications_worker(system, template, lambda_context):
    event = load_event("sqs_notifications_budget_alert.json")
    alert = json.loads(event["Records"][0]["body"])["args"]
    assert _register_budget(ANNA, alert["category"], alert["limit"]) == alert["budget_id"]
    system.telegram.add_chat(ANNA)

    response = template.load_handler("NotificationsWorkerFunction")(event, lambda_context)

    assert response == {"batchItemFailures": []}
    texts = [call.params["text"] for call in system.telegram.sent_messages(ANNA)]
    assert len(texts) == 1 and "80 %" in texts[0]


def test_a_poison_record_goes_to_the_dlq_while_the_budget_alert_beside_it_is_delivered(
    system, template, lambda_context
):
    event = load_event("sqs_poison_message.json")
    good, poison = event["Records"]
    alert = json.loads(good["body"])["args"]
    assert _register_budget(ANNA, alert["category"], alert["limit"]) == alert["budget_id"]
    system.telegram.add_chat(ANNA)

    response = template.load_handler("NotificationsWorkerFunction")(event, lambda_context)

    # No retry can fix an unregistered task: it is parked in the DLQ with its error, not retried.
    assert response == {"batchItemFailures": []}
    parked = system.sqs.receive_message(
        QueueUrl=system.queues.urls["NotificationsDeadLetterQueue"], MessageAttributeNames=["All"]
    )["Messages"]
    assert [m["Body"] for m in parked] == [poison["body"]]
    assert "unregistered task 'reports.no_such_task'" in parked[0]["MessageAttributes"]["error"]["StringValue"]
    assert len(system.telegram.sent_messages(ANNA)) == 1
    assert _query("SELECT kind, status, attempts FROM notifications") == [("budget_alert", "sent", 1)]


def test_the_webhook_event_answers_200_and_stores_a_250_cafe_expense(system, template, lambda_context):
    system.telegram.add_chat(ANNA)

    response = template.load_handler("WebhookFunction")(load_event("apigw_webhook_expense.json"), lambda_context)

    assert response["statusCode"] == 200, response
    assert json.loads(response["body"]) == {"status": "handled"}
    assert _query("SELECT user_id, amount, category FROM expenses") == [(ANNA, Decimal("250.00"), "cafe")]
    assert len(system.telegram.sent_messages(ANNA)) == 1
