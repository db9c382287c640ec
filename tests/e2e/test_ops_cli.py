"""`expensebot ops` as an operator runs it: the installed command in its own process, against a moto server
through AWS_ENDPOINT_URL (as against the local stack) and the embedded database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from expensebot_tools.local.stack import LocalQueues, local_environment

EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def stack(template: Any, clean_database: str, telegram: Any) -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    queues = LocalQueues.create(template, sqs)
    env = {**os.environ, **AWS, "AWS_ENDPOINT_URL": endpoint, "COLUMNS": "160",
           **local_environment(template, queues, database_url=clean_database, telegram_api_base=telegram.base_url)}
    yield {"env": env, "sqs": sqs, "urls": queues.urls}
    server.stop()


def run(stack: dict[str, Any], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXPENSEBOT, "ops", *args], capture_output=True, text=True, timeout=120, input=stdin,
                          env=stack["env"])


def depths(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = run(stack, "queues", "--json")
    assert result.returncode == 0, result.stderr
    return {row["queue"]: row for row in json.loads(result.stdout)}


def test_send_then_queues_then_purge_with_confirmation(stack):
    sent = run(stack, "send", "default.debug_task", "--args", '{"note": "pipeline check"}')
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent default.debug_task to the 'default' queue: message ")
    assert depths(stack)["default"]["waiting"] == 1

    refused = run(stack, "purge", "default", stdin="n\n")
    assert refused.returncode == 1 and "nothing purged" in refused.stdout
    assert depths(stack)["default"]["waiting"] == 1

    purged = run(stack, "purge", "default", stdin="y\n")
    assert purged.returncode == 0, purged.stderr
    assert "Delete every message (about 1) in the 'default' queue?" in purged.stdout
    assert depths(stack)["default"]["waiting"] == 0


def test_dlq_show_then_redrive_moves_every_message_back_once(stack):
    sqs = stack["sqs"]
    policy = sqs.get_queue_attributes(QueueUrl=stack["urls"]["ReportsQueue"], AttributeNames=["RedrivePolicy"])
    dlq = sqs.get_queue_url(QueueName=json.loads(policy["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
                            .rsplit(":", 1)[1])["QueueUrl"]
    bodies = [json.dumps({"task": "reports.send_admin_report", "args": {"n": i}}) for i in range(12)]
    for body in bodies:
        sqs.send_message(QueueUrl=dlq, MessageBody=body, MessageAttributes={
            "error": {"DataType": "String", "StringValue": "TelegramError: chat not found"}})

    shown = run(stack, "dlq", "show", "reports")
    assert shown.returncode == 0, shown.stderr
    assert "12 message(s) shown (none consumed)" in shown.stdout and shown.stdout.count("TelegramError") == 12
    assert depths(stack)["reports"]["dead_letter"] == 12

    redriven = run(stack, "dlq", "redrive", "reports")
    assert redriven.returncode == 0, redriven.stderr
    after = depths(stack)["reports"]
    assert (after["waiting"], after["dead_letter"]) == (12, 0)
    received: list[str] = []
    while batch := sqs.receive_message(QueueUrl=stack["urls"]["ReportsQueue"], MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", []):
        received += [m["Body"] for m in batch]
        sqs.delete_message_batch(QueueUrl=stack["urls"]["ReportsQueue"],
                                 Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                          for i, m in enumerate(batch)])
    assert sorted(received) == sorted(bodies)


def test_tasks_and_status_tables(stack):
    tasks = run(stack, "tasks")
    assert tasks.returncode == 0, tasks.stderr
    for name in ("reports.send_monthly_report", "notifications.send_budget_alert", "default.debug_task"):
        assert name in tasks.stdout

    status = run(stack, "status")
    assert status.returncode == 0, status.stderr
    assert "Queues" in status.stdout and "Job runs" in status.stdout
