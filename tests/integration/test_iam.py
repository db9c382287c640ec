"""Every AWS call of every function under exactly the role template.yaml gives it, against moto with IAM
enforced as AWS enforces it (iam_emulator.py): the roles are read from the SAM translator's expansion of the
template, each function signs with its own role's session, and the event source mapping polls with the
worker's role. Each scenario asserts what a user or an operator would see, and that no call was refused.
The last test lists every grant that no code path used."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from expensebot_tools.local.iam_emulator import (
    AccessLog,
    Credentials,
    admin_credentials,
    assume_role,
    attach_user_policy,
    iam_enforced,
    unused_grants,
)
from expensebot_tools.local.stack import LOCAL_BOT_TOKEN, LOCAL_WEBHOOK_SECRET, LocalSystem, running_system
from expensebot_tools.local.telegram import TelegramStandIn
from expensebot_tools.project.iam import Role, expand_template, function_roles, managed_policy, matches_pattern
from expensebot_tools.project.template import Resolver, Template
from tests.conftest import MOSCOW, run_sql, sql_value

ACCOUNT = "123456789012"
REGION = "us-east-1"
NOW = datetime(2026, 3, 31, 20, 0, tzinfo=MOSCOW)  # a month's last day, 20:00: every job has work
ADMIN_CHAT = 555
OPERATOR = "expensebot-operator"
PARAMETERS = {"AdminChatIds": str(ADMIN_CHAT)}
# The roles and the functions' database settings as a stack deployed with DatabaseUrl has them: the URL in a
# secret of the stack's own, which every function reads under its role (the value here is a placeholder:
# the secret holds the real local URL).
ROLE_PARAMETERS = {**PARAMETERS, "DatabaseUrl": "postgresql://set-at-deploy"}
DATABASE_URL_SECRET = "expensebot-local-database-url"

# What Lambda itself does with a function's role; no code path of ours makes these calls.
SERVICE_SIDE = {
    "logs:*": "Lambda writes the function's logs",
    "xray:*": "Lambda and the X-Ray SDK send traces when Tracing is Active",
    "ec2:*": "Lambda manages the function's network interfaces in a VPC",
    "sqs:ReceiveMessage": "the event source mapping polls the queue (exercised here with the worker's role)",
    "sqs:DeleteMessage": "the event source mapping deletes what succeeded (exercised here with the worker's role)",
    "sqs:GetQueueAttributes": "the event source mapping reads the queue's attributes (granted on * for it)",
}
# OperatorPolicy grants that the emulator cannot exercise: moto never checks PassRole.
OPERATOR_NOT_EXERCISED = {
    "iam:PassRole": "UpdateSchedule passes the schedule's role (ops schedules disable|enable); moto does not check it",
}
# The job functions' on-failure destination: Lambda sends the failed event to JobFailureQueue with the role.
# `ops run --at` needs a time ahead of the system clock (which `ops` reads).
ONE_OFF_AT = (datetime.now(MOSCOW) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
ON_FAILURE_POLICY = re.compile(r"EventInvokeConfigOnFailureSQSPolicy$")


# ---------------------------------------------------------------- the roles, and moto enforcing them


def local_resolver(system: LocalSystem, database_url_secret_arn: str, mappings: dict[str, str]) -> Resolver:
    """The expanded template's intrinsics against the local resources: queues, functions by logical id, the
    workers' event source mappings (SAM's <Function>Queue, whose Ref is the UUID), and the database URL's
    secret."""
    base = system.queues.resolver(system.template, ROLE_PARAMETERS)
    refs = dict(base.refs)
    refs.update(mappings)
    refs["DatabaseUrlSecret"] = database_url_secret_arn
    attributes = dict(base.attributes)
    for function_id in system.template.functions:
        refs[function_id] = function_id
        attributes[(function_id, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_id}"
    return Resolver(parameters=base.parameters, refs=refs, attributes=attributes, conditions=base.conditions,
                    pseudo=base.pseudo)


def create_consumers(system: LocalSystem, admin: Credentials) -> dict[str, str]:
    """The functions in moto's Lambda under their logical ids (their code is never run by moto here), and each
    worker's SQS event source mapping, created disabled (moto would run an enabled one in Docker on every
    send); returns mapping logical id (<Function>Queue) → UUID, as the stack's resources say."""
    import io
    import json
    import zipfile

    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = admin.client("iam").create_role(RoleName="expensebot-moto-lambda",
                                           AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return None\n")
    lam = admin.client("lambda", region_name=REGION)
    for function_id in system.template.functions:
        lam.create_function(FunctionName=function_id, Runtime="python3.12", Role=role, Handler="app.lambda_handler",
                            Code={"ZipFile": code.getvalue()})
    return {f"{s.function_id}Queue": lam.create_event_source_mapping(
        EventSourceArn=system.queues.arns[s.queue_id], FunctionName=s.function_id, Enabled=False)["UUID"]
        for s in system.template.subscriptions()}


class IamWorld:
    """The local system with each function running under its role, and an operator with OperatorPolicy."""

    def __init__(self, system: LocalSystem, roles: dict[str, Role], operator: Role, log: AccessLog,
                 operator_env: dict[str, str], harness: Credentials, database_secret_arn: str,
                 mappings: dict[str, str]) -> None:
        self.mappings = mappings
        self.system = system
        self.database_secret_arn = database_secret_arn
        self.harness = harness
        self.roles = roles
        self.operator = operator
        self.log = log
        self.operator_env = operator_env


@pytest.fixture(scope="module")
def expanded() -> dict[str, Any]:
    return expand_template(parameters=ROLE_PARAMETERS)


@pytest.fixture
def iam_world(aws: None, template: Template, clean_database: str, expanded: dict[str, Any],
              monkeypatch: pytest.MonkeyPatch) -> Iterator[IamWorld]:
    from expensebot.clock import VirtualClock

    iam, sts = boto3.client("iam"), boto3.client("sts")
    admin = admin_credentials(iam)
    for name, value in admin.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it holds the credentials it was created with
    iam, sts = admin.client("iam"), admin.client("sts")
    admin_arn = iam.get_user(UserName="expensebot-harness")["User"]["Arn"]
    telegram = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], enforce_limits=False, accept_any_chat=True)
    telegram.start()
    try:
        with running_system(template=template, database_url=clean_database, telegram=telegram,
                            clock=VirtualClock(NOW), parameters=PARAMETERS) as system:
            defaults = template.parameter_defaults()
            secrets = admin.client("secretsmanager", region_name=REGION)
            secrets.create_secret(Name=defaults["BotTokenSecretName"], SecretString=LOCAL_BOT_TOKEN)
            secrets.create_secret(Name=defaults["WebhookSecretName"], SecretString=LOCAL_WEBHOOK_SECRET)
            database_secret = secrets.create_secret(Name=DATABASE_URL_SECRET, SecretString=clean_database)["ARN"]
            mappings = create_consumers(system, admin)
            resolver = local_resolver(system, database_secret, mappings)
            roles = function_roles(expanded, resolver, template.functions)
            credentials = {fid: assume_role(iam, sts, role, name=fid, trusted_arn=admin_arn)
                           for fid, role in roles.items()}
            operator = managed_policy(expanded, "OperatorPolicy", resolver)
            operator_env = attach_user_policy(iam, operator, user=OPERATOR).environment()
            # DATABASE_URL declared empty, DATABASE_URL_SECRET_ARN naming the secret: as the template sets them.
            database = {k: v for k, v in template.environment(None, resolver).items() if k.startswith("DATABASE_")}
            assert database["DATABASE_URL"] == "" and database["DATABASE_URL_SECRET_ARN"] == database_secret
            system.run_under_roles(credentials, environment=database)
            with iam_enforced() as log:
                yield IamWorld(system, roles, operator, log, operator_env, admin, database_secret, mappings)
    finally:
        telegram.stop()


# ---------------------------------------------------------------- data each path needs


def add_user(user_id: int, *, chat_id: int | None = None) -> None:
    run_sql("INSERT INTO users (user_id, chat_id, language_code, created_at, last_seen_at)"
            " VALUES (%s, %s, 'en', %s, %s)", (user_id, chat_id or user_id, NOW - timedelta(days=60), NOW))


def add_expense(user_id: int, amount: str, spent_at: datetime, category: str = "food") -> None:
    run_sql("INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
            " VALUES (%s, %s, %s, 'lunch', %s, %s)", (user_id, amount, category, spent_at, spent_at))


def queue_depth(world: IamWorld, queue_id: str) -> int:
    attributes = world.system.sqs.get_queue_attributes(
        QueueUrl=world.system.queues.urls[queue_id],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
                        "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attributes.values())


def seconds_until_visible(queue_id: str, world: IamWorld) -> list[float]:
    """How long each message of a queue stays hidden (SQS shows no such attribute; moto's model does)."""
    from moto.sqs.models import sqs_backends

    name = world.system.queues.urls[queue_id].rsplit("/", 1)[1]
    queue = sqs_backends[ACCOUNT][REGION].queues[name]
    now_ms = time.time() * 1000
    return [max(0.0, (m.visible_at - now_ms) / 1000) for m in queue._messages]


def sent_texts(world: IamWorld, chat_id: int) -> list[str]:
    return [c.params.get("text", "") for c in world.system.telegram.calls
            if c.method == "sendMessage" and c.status == 200 and int(c.params["chat_id"]) == chat_id]


def dead_letters(world: IamWorld, queue_id: str) -> list[dict[str, Any]]:
    return world.system.receive_raw(queue_id.replace("Queue", "DeadLetterQueue"))


def assert_nothing_refused(world: IamWorld) -> None:
    refused = [f"{a.principal}: {a.action} on {a.resource}" for a in world.log.denied()]
    assert refused == [], "AccessDenied where AWS would refuse too: " + "; ".join(refused)


# ---------------------------------------------------------------- the paths, one scenario each


def job_check_budget_limits_and_its_alert(world: IamWorld) -> None:
    add_user(1001)
    run_sql("INSERT INTO budgets (user_id, category, amount, created_at, updated_at) VALUES (1001, NULL, 1000, %s, %s)",
            (NOW, NOW))
    add_expense(1001, "950", NOW - timedelta(days=2))

    outcome = world.system.fire_schedule("CheckBudgetLimitsFunction", NOW)
    drained = world.system.drain("NotificationsQueue")

    assert outcome["status"] == "succeeded" and outcome["enqueued"] == 1
    assert drained.processed == 1 and drained.failed == 0
    assert any("90" in text for text in sent_texts(world, 1001))


def job_send_monthly_reports_and_the_report(world: IamWorld) -> None:
    add_user(1002)
    add_expense(1002, "300", NOW - timedelta(days=3))

    outcome = world.system.fire_schedule("SendMonthlyReportsFunction", NOW)
    drained = world.system.drain("ReportsQueue")

    assert outcome["status"] == "succeeded" and outcome["enqueued"] == 1
    assert drained.failed == 0 and len(sent_texts(world, 1002)) == 1


def job_process_recurring_payments_and_the_booking(world: IamWorld) -> None:
    add_user(1003)
    run_sql("INSERT INTO recurring_payments (user_id, day_of_month, amount, description, category, created_at)"
            " VALUES (1003, 31, 499, 'internet', 'utilities', %s)", (NOW - timedelta(days=40),))

    outcome = world.system.fire_schedule("ProcessRecurringPaymentsFunction", NOW.replace(hour=12))
    drained = world.system.drain("RecurringQueue")

    # Due on the 31st: February's last day (the 28th, caught up) and today.
    assert outcome["status"] == "succeeded" and outcome["enqueued"] == 2
    assert drained.failed == 0
    assert sql_value("SELECT count(*) FROM expenses WHERE user_id = 1003 AND recurring_payment_id IS NOT NULL") == 2
    assert len(sent_texts(world, 1003)) == 2


def job_send_daily_admin_report_with_every_queue_depth(world: IamWorld) -> None:
    outcome = world.system.fire_schedule("SendDailyAdminReportFunction", NOW.replace(hour=10))
    drained = world.system.drain("ReportsQueue")

    assert outcome["status"] == "succeeded" and outcome["enqueued"] == 1
    assert drained.failed == 0
    [report] = sent_texts(world, ADMIN_CHAT)
    # Every queue's depth was read (a refused GetQueueAttributes shows as "unavailable").
    for queue in ("default", "reports", "recurring", "maintenance", "notifications"):
        assert re.search(rf"{queue}: \d+ / \d+ / \d+", report), report


def job_cleanup_continues_on_the_maintenance_queue(world: IamWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools

    import expensebot.scheduling

    monkeypatch.setenv("CLEANUP_BATCH_SIZE", "2")
    ticks = itertools.count(step=100.0)  # every look at the clock moves it 100 s: the soft limit comes early
    monkeypatch.setattr(expensebot.scheduling, "_monotonic", lambda: float(next(ticks)))
    add_user(1004)
    slot = datetime(2026, 3, 29, 3, 0, tzinfo=MOSCOW)
    for days in range(800, 812):
        add_expense(1004, "1", slot - timedelta(days=days))

    outcome = world.system.fire_schedule("CleanupOldExpensesFunction", slot)
    drained = world.system.drain("MaintenanceQueue")

    assert outcome["status"] == "succeeded" and outcome["enqueued"] == 1  # continued on the queue
    assert drained.processed == 5
    assert sql_value("SELECT count(*) FROM expenses WHERE user_id = 1004") == 0


def worker_parks_a_poison_message_in_its_dlq_with_the_error(world: IamWorld) -> None:
    for queue_id in ("DefaultQueue", "ReportsQueue", "RecurringQueue", "MaintenanceQueue", "NotificationsQueue"):
        world.system.sqs.send_message(QueueUrl=world.system.queues.urls[queue_id], MessageBody="not a task")

        drained = world.system.drain(queue_id)

        assert drained.processed == 1, queue_id  # handled: parked, not retried for an hour
        [parked] = dead_letters(world, queue_id)
        assert parked["Body"] == "not a task"
        assert "InvalidMessage" in parked["MessageAttributes"]["error"]["StringValue"]


SENDING_QUEUES = ("DefaultQueue", "ReportsQueue", "RecurringQueue", "NotificationsQueue")
WORK_QUEUES = (*SENDING_QUEUES, "MaintenanceQueue")


def worker_holds_back_a_message_as_a_delayed_copy(world: IamWorld) -> None:
    """On every worker that sends to Telegram (the hold-back is the worker's, whatever the task)."""
    from expensebot.bootstrap import get_runtime
    from expensebot.jobs.debug import DebugRequest, debug_task
    from expensebot.pacing import Pacer

    add_user(1005)
    Pacer(get_runtime()).pause(60)  # as after a 429: the pause lives in PostgreSQL, for every worker
    for queue_id in SENDING_QUEUES:
        world.system.sqs.send_message(QueueUrl=world.system.queues.urls[queue_id], MessageBody=_task_body(
            debug_task, DebugRequest(chat_id=1005, request_id=f"hold-{queue_id}")))

        drained = world.system.drain(queue_id)

        assert drained.processed == 1 and drained.failed == 0, queue_id  # the record succeeded; a copy waits
        delayed = world.system.sqs.get_queue_attributes(
            QueueUrl=world.system.queues.urls[queue_id],
            AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]["ApproximateNumberOfMessagesDelayed"]
        assert delayed == "1", queue_id
    assert sent_texts(world, 1005) == []


def worker_hands_back_unstarted_records_at_once_at_the_soft_limit(world: IamWorld,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools

    import expensebot.scheduling
    from expensebot.jobs.debug import DebugRequest, debug_task

    ticks = itertools.count(step=400.0)  # the batch's first look at the clock is past the 300 s soft limit
    monkeypatch.setattr(expensebot.scheduling, "_monotonic", lambda: float(next(ticks)))
    for queue_id in WORK_QUEUES:
        world.system.sqs.send_message(QueueUrl=world.system.queues.urls[queue_id], MessageBody=_task_body(
            debug_task, DebugRequest(note="soft limit")))

        drained = world.system.drain(queue_id, max_batches=1)

        assert drained.failed == 1, queue_id
        assert seconds_until_visible(queue_id, world) == [0.0], queue_id  # back at once, not in an hour


def worker_retries_a_failure_after_the_backoff_not_the_visibility_timeout(world: IamWorld) -> None:
    from expensebot.jobs.debug import DebugRequest, debug_task

    add_user(1006)
    world.system.telegram.set_failures(fail_fraction=1.0)  # Telegram answers 5xx
    world.system.sqs.send_message(QueueUrl=world.system.queues.urls["DefaultQueue"],
                                  MessageBody=_task_body(debug_task, DebugRequest(chat_id=1006, request_id="retry")))
    try:
        drained = world.system.drain("DefaultQueue")
    finally:
        world.system.telegram.set_failures(fail_fraction=0.0)

    assert drained.failed == 1
    [hidden_for] = seconds_until_visible("DefaultQueue", world)
    assert 20 < hidden_for <= 30  # the first backoff, 30 s; without the permission it would be 3600 s


def webhook_report_command_enqueues_the_report(world: IamWorld) -> None:
    from expensebot_tools.local.updates import Conversation, FakeUser

    anna = Conversation(world.system, FakeUser(1007, "Anna", language_code="en"))

    expense_replies = anna.say("200 coffee")
    report_replies = anna.say("/report")

    assert anna.last_response["statusCode"] == 200, anna.last_response
    assert sql_value("SELECT count(*) FROM expenses WHERE user_id = 1007") == 1
    assert queue_depth(world, "ReportsQueue") == 1
    # The bot read its token and the webhook secret from Secrets Manager, and replied to both.
    assert len(expense_replies) == 1 and len(report_replies) == 1


def webhook_refuses_a_wrong_secret_after_reading_the_real_one(world: IamWorld) -> None:
    from expensebot_tools.local.updates import FakeUser, UpdateFactory

    update = UpdateFactory().message(FakeUser(1008, "Boris"), "/start", NOW)

    response = world.system.post_update(update, secret="wrong")

    assert response["statusCode"] == 401


def ops_commands_work_under_the_operator_policy(world: IamWorld, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    from expensebot_tools.cli import main

    system = world.system
    system.sqs.send_message(QueueUrl=system.queues.urls["NotificationsDeadLetterQueue"], MessageBody="{}",
                            MessageAttributes={"error": {"DataType": "String", "StringValue": "boom"}})
    for name, value in world.operator_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    # An operator's shell: the queue URLs from the stack's outputs (the DLQs found through the redrive
    # policies), and the secrets by name, as in AWS.
    for queue in ("DEFAULT", "REPORTS", "RECURRING", "MAINTENANCE", "NOTIFICATIONS"):
        monkeypatch.delenv(f"DEAD_LETTER_QUEUE_URL_{queue}", raising=False)
    defaults = world.system.template.parameter_defaults()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    monkeypatch.setenv("WEBHOOK_SECRET", "")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN_SECRET_NAME", defaults["BotTokenSecretName"])
    monkeypatch.setenv("WEBHOOK_SECRET_NAME", defaults["WebhookSecretName"])
    _create_schedules(world)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # the operator's own shell and session
    dashboard_folder = Path(tempfile.mkdtemp(prefix="expensebot-iam-dashboard-"))

    commands = [
        ["ops", "queues", "--json"],
        ["ops", "status", "--json"],
        ["ops", "dlq", "show", "notifications", "--json"],
        ["ops", "dlq", "redrive", "notifications"],
        ["ops", "send", "default.debug_task", "--args", '{"note": "ops"}'],
        ["ops", "purge", "default", "--yes"],
        ["ops", "schedules", "--json"],
        ["ops", "schedules", "disable", "expensebot-dev-check_budget_limits"],
        ["ops", "schedules", "enable", "expensebot-dev-check_budget_limits"],
        ["ops", "run", "check_budget_limits", "--slot", "2026-03-31T19:30", "--json"],
        ["ops", "run", "check_budget_limits", "--at", ONE_OFF_AT, "--prefix", "expensebot-dev-"],
        ["ops", "doctor"],
        ["ops", "dashboard", "--out", str(dashboard_folder), "--since", "3h"],
        ["webhook", "set", "--url", "https://bot.example.org/webhook"],
        ["webhook", "info", "--json"],
    ]
    results = {" ".join(c[:3]): main(c) for c in commands}
    shutil.rmtree(dashboard_folder)

    # doctor finds problems in this half-built world (a DLQ with a message), and says so with 1.
    failed = {command: rc for command, rc in results.items() if rc != (1 if command == "ops doctor" else 0)}
    assert failed == {}
    assert queue_depth(world, "NotificationsQueue") >= 1  # the redriven message is back on its queue

    ops_on_every_dlq_and_consumer(world, monkeypatch, tmp_path)


def ops_on_every_dlq_and_consumer(world: IamWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The per-message DLQ commands, the jobs' DLQs, and pausing a worker, in an operator's shell that knows
    the deployment's resources (the map `local up` writes; in AWS the stack's ListStackResources)."""
    import json

    from moto.awslambda.models import LambdaFunction

    from expensebot_tools.cli import main
    from expensebot_tools.project.aws_records import async_failure_record

    system = world.system
    # The worker's log group, named as the template names it, with one line of its log (ops logs).
    stack = local_resolver(system, world.database_secret_arn, world.mappings).pseudo["AWS::StackName"]
    log_group = f"/aws/lambda/{stack}/NotificationsWorkerFunction"
    logs = world.harness.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=log_group)
    logs.create_log_stream(logGroupName=log_group, logStreamName="s")
    logs.put_log_events(logGroupName=log_group, logStreamName="s", logEvents=[
        {"timestamp": int(datetime.now(UTC).timestamp() * 1000), "message": '{"level": "INFO", "message": "sent"}'}])
    resources = {**system.queues.urls, **{fid: fid for fid in system.template.functions}, **world.mappings,
                 "NotificationsWorkerLogGroup": log_group}
    (tmp_path / "resources.json").write_text(json.dumps(resources))
    monkeypatch.setenv("EXPENSEBOT_RESOURCES_FILE", str(tmp_path / "resources.json"))
    # A job's failure record as Lambda sends it, and a task message parked by its worker.
    event = {"job": "check_budget_limits", "scheduled_time": "2026-03-31T16:00:00Z", "execution_id": "e1",
             "attempt": 1}
    failure = world.harness.client("sqs", region_name=REGION).send_message(
        QueueUrl=system.queues.urls["JobFailureQueue"], MessageBody=async_failure_record(
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:CheckBudgetLimitsFunction", "r-1", event, "RuntimeError",
            "database gone", 3))["MessageId"]
    parked = world.harness.client("sqs", region_name=REGION).send_message(
        QueueUrl=system.queues.urls["DefaultDeadLetterQueue"], MessageBody=_task_body_of_debug_task(),
        MessageAttributes={"error": {"DataType": "String", "StringValue": "boom"}})["MessageId"]
    # moto's Lambda runs functions in Docker: here the invoked job function runs in-process, under its role.
    monkeypatch.setattr(LambdaFunction, "invoke", lambda self, body, *_: json.dumps(
        system.invoke(self.function_name, json.loads(body))).encode())

    commands = [
        ["ops", "queues", "--json"],
        ["ops", "queues", "pause", "notifications"],
        ["ops", "queues", "resume", "notifications"],
        ["ops", "dlq", "show", "JobFailureQueue", "--json"],
        ["ops", "dlq", "retry", "JobFailureQueue", failure],
        ["ops", "dlq", "retry", "default", parked],
        ["ops", "logs", "NotificationsWorkerFunction", "--since", "1h"],
    ]
    results = {" ".join(c[:4]): main(c) for c in commands}
    assert {command: rc for command, rc in results.items() if rc != 0} == {}
    assert sql_value("SELECT status FROM job_runs WHERE job = 'check_budget_limits' AND slot = %s",
                     (datetime(2026, 3, 31, 19, 0, tzinfo=MOSCOW),)) == "succeeded"
    assert queue_depth(world, "JobFailureQueue") == 0 and queue_depth(world, "DefaultDeadLetterQueue") == 0

    # With EXPENSEBOT_STACK_NAME the map comes from the stack (moto cannot deploy the SAM template: a stack of
    # the same name stands in, and the task queues come from QUEUE_URL_*).
    probe = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "expensebot-stack-probe"}}
    world.harness.client("cloudformation", region_name=REGION).create_stack(
        StackName="expensebot-local", TemplateBody=json.dumps({"Resources": {"Probe": probe}}))
    monkeypatch.delenv("EXPENSEBOT_RESOURCES_FILE")
    monkeypatch.setenv("EXPENSEBOT_STACK_NAME", "expensebot-local")
    assert main(["ops", "queues", "--json"]) == 0


def _create_schedules(world: IamWorld) -> None:
    """The template's schedules as a deploy creates them, by the harness (CloudFormation's part)."""
    from tests.integration.test_ops_schedules import create_template_schedules

    create_template_schedules(world.system, world.harness.client("scheduler", region_name=REGION))


def _task_body_of_debug_task() -> str:
    from expensebot.tasks import lookup

    task = lookup("default.debug_task")
    return _task_body(task, task.args_model(note="parked"))


def _task_body(task: Any, args: Any) -> str:
    from expensebot.tasks import TaskMessage

    return TaskMessage(task=task.name, args=args.model_dump(mode="json"), id=f"iam-{task.name}").model_dump_json()


SCENARIOS: dict[str, Callable[..., None]] = {
    f.__name__: f for f in (
        job_check_budget_limits_and_its_alert,
        job_send_monthly_reports_and_the_report,
        job_process_recurring_payments_and_the_booking,
        job_send_daily_admin_report_with_every_queue_depth,
        job_cleanup_continues_on_the_maintenance_queue,
        worker_parks_a_poison_message_in_its_dlq_with_the_error,
        worker_holds_back_a_message_as_a_delayed_copy,
        worker_hands_back_unstarted_records_at_once_at_the_soft_limit,
        worker_retries_a_failure_after_the_backoff_not_the_visibility_timeout,
        webhook_report_command_enqueues_the_report,
        webhook_refuses_a_wrong_secret_after_reading_the_real_one,
        ops_commands_work_under_the_operator_policy,
    )
}
USED: dict[str, set[tuple[str, str]]] = {}
SECRET_TOKEN = "{DatabaseUrlSecret}"
RAN: set[str] = set()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_path_works_under_exactly_its_role(scenario: str, iam_world: IamWorld,
                                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run = SCENARIOS[scenario]
    wanted = run.__code__.co_varnames[: run.__code__.co_argcount]
    fixtures = {"monkeypatch": monkeypatch, "tmp_path": tmp_path}
    run(iam_world, *(fixtures[name] for name in wanted[1:]))

    assert_nothing_refused(iam_world)
    for principal in {a.principal for a in iam_world.log.accesses}:
        # Each world's database secret has a random ARN suffix: kept by name, so worlds compare.
        USED.setdefault(principal, set()).update(
            (action, resource.replace(iam_world.database_secret_arn, SECRET_TOKEN))
            for action, resource in iam_world.log.used(principal))
    RAN.add(scenario)


def test_no_role_grants_an_action_that_no_code_path_uses(iam_world: IamWorld) -> None:
    if set(SCENARIOS) != RAN:
        pytest.skip("needs every scenario of this module to have run first (run the whole file)")
    for principal, used in USED.items():
        USED[principal] = {(a, r.replace(SECRET_TOKEN, iam_world.database_secret_arn)) for a, r in used}
    unused = {}
    for function_id, role in iam_world.roles.items():
        role.statements = [s for s in role.statements if not ON_FAILURE_POLICY.search(s.source)]
        found = unused_grants(role, USED.get(function_id, set()), service_side=SERVICE_SIDE)
        if found:
            unused[function_id] = found
    assert unused == {}, "\n".join(f"{fid}: {grant}" for fid, grants in unused.items() for grant in grants)

    print_matrix(iam_world)

    # The operator's policy, per action (which queue an operator works on is theirs to choose).
    used_actions = {action for action, _ in USED.get(OPERATOR, set())}
    granted_actions = {action for action, _, _ in iam_world.operator.granted()}
    assert sorted(granted_actions - used_actions - OPERATOR_NOT_EXERCISED.keys()) == []


def print_matrix(world: IamWorld) -> None:
    """Function × AWS action: what its code paths used here, and the grant that allowed it; then what the
    role grants that only Lambda uses, or nothing (`pytest -s` shows it)."""
    rows = []
    for principal in [*world.roles, OPERATOR]:
        role = world.operator if principal == OPERATOR else world.roles[principal]
        used = USED.get(principal, set())
        for action in sorted({a for a, _ in used}):
            grants = sorted({f"{pattern} ({source.rsplit('/', 1)[-1]})" for pattern, _, source in role.granted()
                             if matches_pattern(pattern, action, ignore_case=True)})
            rows.append(f"| {principal} | {action} | used | {', '.join(grants)} |")
        not_ours: dict[tuple[str, str], set[str]] = {}  # (why, policy) → actions
        for pattern, _, source in sorted(set(role.granted())):
            if any(matches_pattern(pattern, a, ignore_case=True) for a, _ in used):
                continue
            why = next((reason for p, reason in {**SERVICE_SIDE, **OPERATOR_NOT_EXERCISED}.items()
                        if matches_pattern(p, pattern, ignore_case=True)), "NOT USED")
            if ON_FAILURE_POLICY.search(source):
                why = "Lambda sends a failed async event to JobFailureQueue"
            not_ours.setdefault((why, source.rsplit("/", 1)[-1]), set()).add(pattern)
        for (why, source), actions in sorted(not_ours.items()):
            rows.append(f"| {principal} | {', '.join(sorted(actions))} | {why} | {source} |")
    print("\n| function | action | used by | granted by |\n|---|---|---|---|\n" + "\n".join(rows))


def test_a_role_without_a_needed_action_is_refused_as_aws_would(iam_world: IamWorld) -> None:
    """The enforcement itself: the webhook's role may not send to the notifications queue."""
    from botocore.exceptions import ClientError

    credentials = iam_world.system.role_credentials("WebhookFunction")
    sqs = credentials.client("sqs", region_name=REGION)

    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=iam_world.system.queues.urls["NotificationsQueue"], MessageBody="{}")

    assert "AccessDenied" in str(refused.value)
    [denied] = iam_world.log.denied("WebhookFunction")
    assert (denied.action, denied.resource.rsplit(":", 1)[1]) == ("sqs:SendMessage",
                                                                  "expensebot-local-NotificationsQueue")
