"""`expensebot local up` as a developer runs it: a real process on real ports, reached over HTTP and through
its AWS endpoint from outside, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
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

    def wait_for_line(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.strip().startswith(prefix):
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
         "--telegram-port", str(ports["telegram"]), "--outbox", str(outbox)],
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
    assert eventually(lambda: sent_to(ports["outbox"], ANNA.user_id)) == ["Месячный бюджет: 1\u00a0000,00\u00a0₽."]
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
