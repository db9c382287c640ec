"""`expensebot local up` as a developer runs it: a real process on real ports, reached over HTTP and through
its AWS endpoint from outside, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import psycopg2
import pytest

from expensebot_tools.local.stack import LOCAL_WEBHOOK_SECRET
from expensebot_tools.local.updates import FakeUser, UpdateFactory

EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))
ANNA = FakeUser(6001, "Анна", "anna")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Running:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, prefix: str, timeout: float = 60, *, anywhere: bool = False) -> str:
        """The next line starting with `prefix` (or, `anywhere`, containing it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.strip().startswith(prefix) or (anywhere and prefix in line):
                return line
        raise AssertionError(f"no line starting {prefix!r}; output so far:\n{''.join(self.output)}")


@pytest.fixture
def local_up(tmp_path: Path) -> Iterator[tuple[Running, dict[str, Any]]]:
    ports = {"port": free_port(), "aws": free_port(), "telegram": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AWS_ENDPOINT_URL", "TELEGRAM_BOT_TOKEN")}
    env.update(APP_TIMEZONE="Europe/Moscow", PYTHONUNBUFFERED="1")
    outbox = tmp_path / "outbox.jsonl"
    process = subprocess.Popen(
        [EXPENSEBOT, "local", "up", "--port", str(ports["port"]), "--aws-port", str(ports["aws"]),
         "--telegram-port", str(ports["telegram"]), "--outbox", str(outbox), "--env-dir", str(tmp_path / "handover")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    running = Running(process)
    try:
        yield running, {**ports, "outbox": outbox}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def post(url: str, body: dict[str, Any], secret: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def sent_to(outbox: Path, chat_id: int) -> list[str]:
    if not outbox.exists():
        return []
    calls = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [c["text"] for c in calls if c["method"] == "sendMessage" and c["status"] == 200 and c["chat_id"] == chat_id]


def test_local_up_answers_on_its_webhook_runs_a_task_sent_through_its_aws_endpoint_and_stops_on_ctrl_c(local_up):
    running, ports = local_up
    webhook_line = running.wait_for_line("webhook:")
    aws_line = running.wait_for_line("AWS:")
    running.wait_for_line("schedules:")
    webhook = f"http://127.0.0.1:{ports['port']}/webhook"
    endpoint = f"http://127.0.0.1:{ports['aws']}"
    assert webhook in webhook_line and f"AWS_ENDPOINT_URL={endpoint}" in aws_line

    # The webhook as API Gateway serves it: the secret header is checked, the reply goes to the stand-in.
    factory = UpdateFactory()
    status, _ = post(webhook, factory.message(ANNA, "/start", datetime.now(UTC)), secret="wrong")
    assert status in (401, 403)
    status, body = post(webhook, factory.message(ANNA, "/budget 1000", datetime.now(UTC)), LOCAL_WEBHOOK_SECRET)
    assert status == 200, body
    assert eventually(lambda: sent_to(ports["outbox"], ANNA.user_id)) == ["Бюджет на месяц: 1\u00a0000,00\u00a0₽."]
    assert post(f"http://127.0.0.1:{ports['port']}/other", {}, LOCAL_WEBHOOK_SECRET)[0] == 404

    # From another terminal: the queues through the AWS endpoint; a task put on the default queue is run by
    # its worker, which answers in the chat the task names.
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                       aws_secret_access_key="local")
    names = {url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]}
    assert {"expensebot-local-DefaultQueue", "expensebot-local-NotificationsQueue",
            "expensebot-local-NotificationsDeadLetterQueue"} <= names
    default_queue = sqs.get_queue_url(QueueName="expensebot-local-DefaultQueue")["QueueUrl"]
    sqs.send_message(QueueUrl=default_queue, MessageBody=json.dumps(
        {"task": "default.debug_task", "args": {"chat_id": ANNA.user_id, "note": "from another terminal"}}))
    replies = eventually(lambda: [t for t in sent_to(ports["outbox"], ANNA.user_id) if "debug_task" in t])
    assert len(replies) == 1 and replies[0].endswith("from another terminal")

    def queue_empty() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=default_queue, AttributeNames=["All"])["Attributes"]
        return attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"

    assert eventually(queue_empty)  # the worker deleted the message it processed

    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=60) == 0
    output = "".join(running.output)
    assert output.rstrip().endswith("stopped") and "Traceback" not in output
    with pytest.raises(OSError):  # the servers are gone with it
        urllib.request.urlopen(webhook, timeout=5)


def test_a_port_in_use_is_named_with_the_option_that_moves_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([EXPENSEBOT, "local", "up", "--aws-port", str(port)], capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"expensebot local up: 127.0.0.1:{port} is in use; choose another with --aws-port"


def test_polling_without_a_bot_token_is_refused():
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    result = subprocess.run([EXPENSEBOT, "local", "up", "--polling"], capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 2 and "--polling needs your bot's token in TELEGRAM_BOT_TOKEN" in result.stderr


# ------------------------------------------------------------------ the hand-over to `ops` and the control plane


def exported(env_file: Path) -> dict[str, str]:
    """The variables of `export NAME=VALUE` lines, read as the shell reads them."""
    found = {}
    for line in env_file.read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            found[name] = value
    return found


class HandedOver:
    def __init__(self, running: Running, env: dict[str, str], env_dir: Path, outbox: Path) -> None:
        self.running = running
        self.env = env
        self.env_dir = env_dir
        self.outbox = outbox
        self.resources = json.loads(Path(env["EXPENSEBOT_RESOURCES_FILE"]).read_text())
        self.session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                             aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                             region_name=env["AWS_DEFAULT_REGION"])

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"])

    def ops(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXPENSEBOT, "ops", *args], capture_output=True, text=True, env=self.env, timeout=120)

    def output(self) -> str:
        return "".join(self.running.output)


@pytest.fixture(scope="module")
def handed_over(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HandedOver]:
    tmp_path = tmp_path_factory.mktemp("local-up")
    env_dir, outbox = tmp_path / "handover", tmp_path / "outbox.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "QUEUE_URL_", "AWS_", "TELEGRAM_",
                                                                     "EXPENSEBOT_"))}
    env.update(APP_TIMEZONE="Europe/Moscow", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [EXPENSEBOT, "local", "up", "--port", str(free_port()), "--aws-port", str(free_port()), "--telegram-port",
         str(free_port()), "--outbox", str(outbox), "--env-dir", str(env_dir), "--schedule-cycle", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    running = Running(process)
    try:
        running.wait_for_line("other terminal:")
        env_file = env_dir / "local.env"
        assert f"source {env_file}" in "".join(running.output)
        yield HandedOver(running, {**env, **exported(env_file)}, env_dir, outbox)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # a clean stop, so the embedded PostgreSQL stops with it
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def test_the_env_file_hands_over_the_database_over_tcp_the_queues_aws_and_telegram(handed_over):
    env = handed_over.env
    assert env["DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")
    with psycopg2.connect(env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM job_runs")  # migrated: the functions' database, reached over TCP
        assert cur.fetchone() == (0,)
    for name in ("DEFAULT", "REPORTS", "RECURRING", "MAINTENANCE", "NOTIFICATIONS"):
        assert env[f"QUEUE_URL_{name}"].startswith(env["AWS_ENDPOINT_URL"])
        assert env[f"DEAD_LETTER_QUEUE_URL_{name}"].endswith("DeadLetterQueue")
    assert env["TELEGRAM_API_BASE"].startswith("http://127.0.0.1:") and env["WEBHOOK_SECRET"] == LOCAL_WEBHOOK_SECRET
    assert env["TELEGRAM_BOT_TOKEN"] and env["APP_TIMEZONE"] == "Europe/Moscow"
    resources = handed_over.resources
    assert resources["JobFailureQueue"].endswith("/expensebot-local-JobFailureQueue")
    assert resources["NotificationsWorkerFunction"] == "expensebot-local-NotificationsWorkerFunction"
    assert resources["NotificationsWorkerLogGroup"] == "/aws/lambda/expensebot-local/NotificationsWorkerFunction"
    lam = handed_over.client("lambda")
    mapping = lam.get_event_source_mapping(UUID=resources["NotificationsWorkerFunctionQueue"])
    assert mapping["State"] == "Enabled" and mapping["EventSourceArn"].endswith(":expensebot-local-NotificationsQueue")
    webhook = lam.get_function(FunctionName=resources["WebhookFunction"])["Configuration"]
    assert webhook["Handler"] == "app.lambda_handler"


def test_ops_doctor_queues_and_status_work_against_a_fresh_local_up(handed_over):
    doctor = handed_over.ops("doctor", "--json")
    failed = [c for c in json.loads(doctor.stdout)["checks"] if not c["ok"]] if doctor.stdout else doctor.stderr
    assert doctor.returncode == 0, failed
    queues = handed_over.ops("queues", "--json")
    assert queues.returncode == 0, queues.stderr
    rows = json.loads(queues.stdout)
    # Every queue of the stack (the five, their DLQs, the jobs' two), each at the URL local up created.
    assert len(rows) == 12
    assert [(r["url"], r.get("problem")) for r in rows] == [(handed_over.resources[r["logical_id"]], None)
                                                           for r in rows]
    status = handed_over.ops("status")
    assert status.returncode == 0, status.stderr


def test_the_five_schedules_are_in_scheduler_as_the_template_declares(handed_over):
    scheduler = handed_over.client("scheduler")
    names = sorted(s["Name"] for s in scheduler.list_schedules()["Schedules"])
    assert names == [f"expensebot-dev-{job}" for job in ("check_budget_limits", "cleanup_old_expenses",
                                                          "process_recurring_payments", "send_daily_admin_report",
                                                          "send_monthly_reports")]
    reports = scheduler.get_schedule(Name="expensebot-dev-send_monthly_reports")
    assert reports["ScheduleExpression"] == "cron(0 20 * * ? *)" and reports["State"] == "ENABLED"
    assert reports["ScheduleExpressionTimezone"] == "Europe/Moscow"
    assert reports["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert reports["Target"]["Arn"].endswith(":function:expensebot-local-SendMonthlyReportsFunction")
    assert json.loads(reports["Target"]["Input"])["job"] == "send_monthly_reports"
    assert reports["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 10}
    assert reports["Target"]["DeadLetterConfig"]["Arn"].endswith(":expensebot-local-SchedulerDeadLetterQueue")
    assert handed_over.resources["SendMonthlyReportsFunctionSchedule"] == "expensebot-dev-send_monthly_reports"


def _one_time(scheduler: Any, name: str, function_arn: str, job: str, seconds: float, zone: str = "Europe/Moscow",
              ) -> datetime:
    """Creates an at(...) schedule `seconds` from now; returns its time (whole seconds), the run's slot."""
    at = (datetime.now(ZoneInfo(zone)) + timedelta(seconds=seconds)).replace(microsecond=0)
    input_text = json.dumps({"job": job, "scheduled_time": "<aws.scheduler.scheduled-time>",
                             "execution_id": "<aws.scheduler.execution-id>",
                             "attempt": "<aws.scheduler.attempt-number>"})
    scheduler.create_schedule(Name=name, ScheduleExpression=f"at({at:%Y-%m-%dT%H:%M:%S})",
                              ScheduleExpressionTimezone=zone, ActionAfterCompletion="DELETE", State="ENABLED",
                              FlexibleTimeWindow={"Mode": "OFF"},
                              Target={"Arn": function_arn, "RoleArn": "arn:aws:iam::123456789012:role/any",
                                      "Input": input_text})
    return at


def test_a_one_time_schedule_fires_and_is_deleted_and_one_disabled_with_ops_does_not_fire(handed_over):
    scheduler, lam = handed_over.client("scheduler"), handed_over.client("lambda")
    arn = lam.get_function(FunctionName=handed_over.resources["CheckBudgetLimitsFunction"])["Configuration"][
        "FunctionArn"]
    kept_at = _one_time(scheduler, "expensebot-once-kept", arn, "check_budget_limits", 3)
    fired_at = _one_time(scheduler, "expensebot-once-fired", arn, "check_budget_limits", 2)
    disabled = handed_over.ops("schedules", "disable", "expensebot-once-kept")
    assert disabled.returncode == 0, disabled.stderr

    def gone() -> bool:
        return "expensebot-once-fired" not in {s["Name"] for s in scheduler.list_schedules()["Schedules"]}

    assert eventually(gone, timeout=30)
    # The job's own schedule (every 30 minutes) may fire in the same seconds: wait for this schedule's line.
    fired = handed_over.running.wait_for_line("(expensebot-once-fired)", timeout=30, anywhere=True)
    assert "CheckBudgetLimitsFunction fired" in fired
    time.sleep(3)  # the disabled one's time has passed by now, with a planning cycle of 1 s
    assert "expensebot-once-kept" not in handed_over.output()
    assert scheduler.get_schedule(Name="expensebot-once-kept")["State"] == "DISABLED"
    with psycopg2.connect(handed_over.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT slot, status FROM job_runs WHERE job = 'check_budget_limits'")
        runs = dict(cur.fetchall())
    # One run for the schedule that fired, none for the disabled one (a run of the job's own schedule, every 30
    # minutes, may be there too when the test crosses a half hour).
    assert runs.get(fired_at) == "succeeded", runs
    assert kept_at not in runs, runs
    scheduler.delete_schedule(Name="expensebot-once-kept")


def test_a_job_that_fails_every_attempt_leaves_lambdas_failure_record_in_job_failure_queue(handed_over):
    scheduler, lam, sqs = handed_over.client("scheduler"), handed_over.client("lambda"), handed_over.client("sqs")
    arn = lam.get_function(FunctionName=handed_over.resources["CleanupOldExpensesFunction"])["Configuration"][
        "FunctionArn"]
    _one_time(scheduler, "expensebot-once-wrong-job", arn, "send_monthly_reports", 1)  # another function's job
    failures = handed_over.resources["JobFailureQueue"]

    def record() -> list[dict[str, Any]]:
        return sqs.receive_message(QueueUrl=failures, WaitTimeSeconds=1).get("Messages", [])

    messages = eventually(record, timeout=30)
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert body["requestContext"]["condition"] == "RetriesExhausted"
    assert body["requestContext"]["approximateInvokeCount"] == 3  # EventInvokeConfig: 2 retries
    assert body["requestContext"]["functionArn"] == f"{arn}:$LATEST"
    assert body["requestPayload"]["job"] == "send_monthly_reports"
    assert body["responsePayload"]["errorType"] == "ConfigurationError"
    assert "runs 'cleanup_old_expenses'" in body["responsePayload"]["errorMessage"]
    sqs.delete_message(QueueUrl=failures, ReceiptHandle=messages[0]["ReceiptHandle"])


def test_a_paused_event_source_mapping_keeps_messages_waiting_until_resumed(handed_over):
    lam, sqs = handed_over.client("lambda"), handed_over.client("sqs")
    mapping = handed_over.resources["DefaultWorkerFunctionQueue"]
    default_queue = handed_over.env["QUEUE_URL_DEFAULT"]
    lam.update_event_source_mapping(UUID=mapping, Enabled=False)
    handed_over.running.wait_for_line("DefaultQueue: event source mapping Disabled", timeout=15,
                                      anywhere=True)
    chat = 6002
    sqs.send_message(QueueUrl=default_queue, MessageBody=json.dumps(
        {"task": "default.debug_task", "args": {"chat_id": chat, "note": "while paused"}}))
    time.sleep(3)
    attributes = sqs.get_queue_attributes(QueueUrl=default_queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1" and not sent_to(handed_over.outbox, chat)
    lam.update_event_source_mapping(UUID=mapping, Enabled=True)
    replies = eventually(lambda: [t for t in sent_to(handed_over.outbox, chat) if "debug_task" in t])
    assert len(replies) == 1 and replies[0].endswith("while paused")
    assert "docker" not in handed_over.output().lower()  # moto itself never tried to invoke the worker


def test_a_functions_log_lines_reach_its_log_group(handed_over):
    sqs, logs = handed_over.client("sqs"), handed_over.client("logs")
    chat = 6003
    sqs.send_message(QueueUrl=handed_over.env["QUEUE_URL_DEFAULT"], MessageBody=json.dumps(
        {"task": "default.debug_task", "args": {"chat_id": chat, "note": "logged"}}))
    assert eventually(lambda: sent_to(handed_over.outbox, chat))
    group = handed_over.resources["DefaultWorkerLogGroup"]

    def lines() -> list[dict[str, Any]]:
        events = logs.filter_log_events(logGroupName=group, filterPattern="debug_task", interleaved=True)["events"]
        return [json.loads(e["message"]) for e in events if '"logged"' in e["message"]]

    found = eventually(lines, timeout=15)
    assert found and found[0]["message"] == "debug_task" and found[0]["level"] == "INFO"
    assert found[0]["request"]["note"] == "logged" and found[0]["request"]["chat_id"] == chat
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert any(s["logStreamName"].endswith("[$LATEST]worker-DefaultQueue") for s in streams)


def test_the_hand_over_files_are_removed_when_local_up_stops(tmp_path):
    env_dir = tmp_path / "handover"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AWS_ENDPOINT_URL")}
    env.update(PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [EXPENSEBOT, "local", "up", "--port", str(free_port()), "--aws-port", str(free_port()), "--telegram-port",
         str(free_port()), "--outbox", str(tmp_path / "outbox.jsonl"), "--env-dir", str(env_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    running = Running(process)
    try:
        running.wait_for_line("other terminal:")
        assert {"local.env", "resources.json"} <= {p.name for p in env_dir.iterdir()}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        # The metrics file stays: it is the run's record (ops dashboard --from-emf); the hand-over is gone.
        assert [p.name for p in env_dir.iterdir() if p.name != "metrics.jsonl"] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
