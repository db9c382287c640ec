"""With the template's Tracing: Active, a worker invocation sends its X-Ray segments: the worker runs in a
process of its own, as in Lambda (LAMBDA_TASK_ROOT and the invocation's _X_AMZN_TRACE_ID set), and the X-Ray
SDK sends over UDP to AWS_XRAY_DAEMON_ADDRESS, here a socket this test reads instead of the daemon."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from expensebot_tools.local.stack import LOCAL_BOT_TOKEN
from expensebot_tools.project.import_times import lambda_environment
from expensebot_tools.project.template import PROJECT_ROOT, Template
from tests.conftest import load_event

# Lambda's bootstrap, reduced to what the handler sees: the module loaded by path from the function's folder
# with the layer on sys.path, and one invocation with a context.
_INVOKE = """
import importlib.util, json, sys
sys.path[:0] = [{layer!r}, {folder!r}]
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

class Context:
    function_name = "expensebot-DefaultWorker"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:expensebot-DefaultWorker"
    memory_limit_in_mb = 512
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/expensebot-DefaultWorker"
    log_stream_name = "2026/03/10/[$LATEST]0123456789"
    def get_remaining_time_in_millis(self):
        return 600_000

print(json.dumps(module.lambda_handler(json.load(sys.stdin), Context())))
"""


def _trace_header() -> tuple[str, str, str]:
    """A trace id and a parent (the function's segment, which Lambda records), as Lambda sets them."""
    root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    parent = secrets.token_hex(8)
    return root, parent, f"Root={root};Parent={parent};Sampled=1"


def _documents(daemon: socket.socket) -> Iterator[dict[str, Any]]:
    """The segment documents received: each datagram is the daemon protocol's JSON header, a newline, then
    one segment or subsegment."""
    while True:
        try:
            datagram = daemon.recv(65_536)
        except TimeoutError:
            return
        header, _, body = datagram.decode().partition("\n")
        assert json.loads(header) == {"format": "json", "version": 1}
        yield json.loads(body)


def _flatten(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    pending = list(documents)
    while pending:
        entity = pending.pop()
        found.append(entity)
        pending.extend(entity.get("subsegments", []))
    return found


def test_with_tracing_active_a_worker_invocation_sends_its_segments_to_the_x_ray_daemon(clean_database, telegram):
    telegram.add_chat(4242, first_name="operator")
    event = load_event("sqs_default_debug_task.json")
    body = json.loads(event["Records"][0]["body"])
    body["args"] |= {"chat_id": 4242, "note": "traced", "request_id": "traced-1"}
    event["Records"][0]["body"] = json.dumps(body)

    spec = Template().functions["DefaultWorkerFunction"]
    root, parent, header = _trace_header()
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(2.0)
    env = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG")}
    env.update(
        lambda_environment(tracing="Active"),
        QUEUE_NAME="default",
        LAMBDA_TASK_ROOT=str(spec.module_path.parent),
        AWS_LAMBDA_FUNCTION_NAME="expensebot-DefaultWorker",
        AWS_REGION="us-east-1",
        AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{daemon.getsockname()[1]}",
        _X_AMZN_TRACE_ID=header,
        DATABASE_URL=clean_database,
        TELEGRAM_BOT_TOKEN=LOCAL_BOT_TOKEN,
        TELEGRAM_API_BASE=telegram.base_url,
    )
    assert env["POWERTOOLS_TRACE_DISABLED"] == "false" and env["POWERTOOLS_SERVICE_NAME"] == "expensebot"
    code = _INVOKE.format(layer=str(PROJECT_ROOT / "layers" / "expensebot"), folder=str(spec.module_path.parent),
                          path=str(spec.module_path))
    try:
        result = subprocess.run([sys.executable, "-c", code], input=json.dumps(event), capture_output=True,
                                text=True, env=env, cwd=spec.module_path.parent, timeout=120)
        documents = list(_documents(daemon))
    finally:
        daemon.close()

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}
    (message,) = telegram.sent_messages(4242)
    assert "traced" in message.params["text"]

    entities = _flatten(documents)
    assert entities and all(entity["trace_id"] == root for entity in documents)
    (handler,) = [entity for entity in entities if entity["name"] == "## lambda_handler"]
    # Under the function's segment, which Lambda records and names in the trace header.
    assert handler["parent_id"] == parent and handler["type"] == "subsegment"
    assert handler["annotations"] == {"ColdStart": True, "Service": "expensebot"}
    assert handler["metadata"]["expensebot"]["lambda_handler response"] == {"batchItemFailures": []}
    # Powertools patched psycopg2: the delivery's SQL statements are subsegments of the handler's, in the same
    # trace. (http.client is not patched by default, so the call to Telegram is not one.)
    handler_ids = {handler["id"]} | {entity["id"] for entity in _flatten(handler.get("subsegments", []))}
    statements = [entity for entity in entities if "sql" in entity]
    assert statements and all(entity["parent_id"] in handler_ids for entity in statements)
    assert {entity["sql"]["url"].rsplit("/", 1)[-1] for entity in statements} == {"expensebot_test"}
    assert {entity["namespace"] for entity in statements} == {"remote"}
