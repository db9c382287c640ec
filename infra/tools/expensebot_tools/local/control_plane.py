"""The AWS control plane of `expensebot local up`, in the moto server it runs: what a deploy of
template.yaml creates besides the queues, so `expensebot ops` finds locally what it finds in AWS.

- a Lambda function per template function (`expensebot-local-<LogicalId>`, a placeholder zip: the code runs
  in-process, moto only holds the configuration), with an IAM role;
- each worker's SQS event source mapping (`ops queues pause/resume` disables/enables it, the local poller
  reads its state before each receive);
- the five schedules in EventBridge Scheduler as SAM expands them (name, expression, time zone, state,
  flexible window, Input, retry policy, DLQ), which the local scheduler reads and fires from;
- each function's log group, where its log lines go (`ops logs` reads them with FilterLogEvents);
- the hand-over: `.expensebot/local.env` (export lines for another terminal) and `.expensebot/resources.json`
  (logical id → physical id, read by operations/deployment.py).
"""

from __future__ import annotations

import io
import json
import logging
import shlex
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from expensebot_tools.project.template import PROJECT_ROOT, Resolver, Template

STACK_NAME = "expensebot-local"  # the Resolver's AWS::StackName, so log group names match template.yaml's
FUNCTION_PREFIX = "expensebot-local-"
ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
HANDOVER_DIR = PROJECT_ROOT / ".expensebot"
METRICS_FILE = "metrics.jsonl"  # the functions' EMF lines while `local up` runs (ops dashboard --from-emf)
ENV_FILE = "local.env"
RESOURCES_FILE = "resources.json"
RESOURCES_FILE_VARIABLE = "EXPENSEBOT_RESOURCES_FILE"  # operations/deployment.py reads it
# Variables of the functions' environment that configure the function itself, not what `ops` talks to.
_NOT_HANDED_OVER = ("POWERTOOLS_", "AWS_LAMBDA_")

_LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
_SCHEDULER_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def _placeholder_zip() -> bytes:
    """Lambda wants code; the functions run in-process from the project's files, so moto gets a stub."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "expensebot local up runs this function in-process from the project.\n")
    return buffer.getvalue()


def _detach_sqs_trigger(queue_arn: str) -> None:
    """moto's SQS calls an Enabled mapping's function itself on every SendMessage: through Docker (which
    fails, but only after it has received the message, so each send costs the message a receive and pushes
    it towards its DLQ by the redrive policy), or with `lambda.use_docker: false` through a stub that
    reports success, so moto deletes the message unprocessed. Neither is what Lambda does here, where
    `local up`'s own poller is the mapping. So the mapping is created through the API (Lambda's backend keeps
    it: get/list/update, State, Enabled) and then unhooked from the queue's in-process trigger list, the
    one place moto's SQS reads it. The moto server runs in this process, so its backends are at hand."""
    from moto.sqs.models import sqs_backends

    for queue in sqs_backends[ACCOUNT_ID][REGION].queues.values():
        if queue.queue_arn == queue_arn:
            queue.lambda_event_source_mappings.clear()


@dataclass
class ControlPlane:
    """What was created, by logical id (the resources map), plus the lookups the local loops need."""

    resources: dict[str, str] = field(default_factory=dict)
    function_arns: dict[str, str] = field(default_factory=dict)  # function logical id → ARN
    mappings: dict[str, str] = field(default_factory=dict)  # queue logical id → event source mapping UUID
    log_groups: dict[str, str] = field(default_factory=dict)  # function logical id → log group name
    schedule_names: list[str] = field(default_factory=list)

    def function_for_arn(self, arn: str) -> str | None:
        """The function logical id of a target ARN (also with a version or alias qualifier)."""
        base = ":".join(arn.split(":")[:7])
        return next((fid for fid, known in self.function_arns.items() if known == base), None)


def create_control_plane(template: Template, resolver: Resolver, queue_urls: dict[str, str],
                         queue_arns: dict[str, str], session: Any) -> ControlPlane:
    """Creates it all in (moto's) AWS through `session`'s clients."""
    iam = session.client("iam")
    lam = session.client("lambda")
    logs = session.client("logs")
    scheduler = session.client("scheduler")
    plane = ControlPlane(resources=dict(queue_urls))
    function_role = iam.create_role(RoleName=f"{FUNCTION_PREFIX}function-role",
                                    AssumeRolePolicyDocument=json.dumps(_LAMBDA_TRUST))["Role"]["Arn"]
    scheduler_role = iam.create_role(RoleName=f"{FUNCTION_PREFIX}scheduler-role",
                                     AssumeRolePolicyDocument=json.dumps(_SCHEDULER_TRUST))["Role"]["Arn"]
    runtime = str(template.globals.get("Runtime", "python3.13"))
    code = _placeholder_zip()

    for logical_id, resource in template.of_type("AWS::Logs::LogGroup").items():
        name = resolver.resolve(resource.get("Properties", {}).get("LogGroupName"))
        if not name:
            continue  # a group CloudFormation names itself (the API's access log): no function writes there
        logs.create_log_group(logGroupName=str(name))
        retention = resolver.resolve(resource["Properties"].get("RetentionInDays"))
        if retention:
            logs.put_retention_policy(logGroupName=str(name), retentionInDays=int(retention))
        plane.resources[logical_id] = str(name)

    for function_id, spec in template.functions.items():
        name = FUNCTION_PREFIX + function_id
        created = lam.create_function(FunctionName=name, Runtime=runtime, Role=function_role, Handler=spec.handler,
                                      Code={"ZipFile": code}, Timeout=spec.timeout)
        plane.function_arns[function_id] = created["FunctionArn"]
        plane.resources[function_id] = name
        group = (spec.properties.get("LoggingConfig") or {}).get("LogGroup")
        if isinstance(group, dict) and group.get("Ref") in plane.resources:
            plane.log_groups[function_id] = plane.resources[group["Ref"]]
        else:  # Lambda's default group
            plane.log_groups[function_id] = f"/aws/lambda/{name}"
            logs.create_log_group(logGroupName=plane.log_groups[function_id])

    for subscription in template.subscriptions():
        event_name, props = next((event_name, event["Properties"]) for event_name, event in
                                 template.functions[subscription.function_id].properties["Events"].items()
                                 if event["Type"] == "SQS")
        mapping: dict[str, Any] = {
            "EventSourceArn": queue_arns[subscription.queue_id],
            "FunctionName": FUNCTION_PREFIX + subscription.function_id,
            "BatchSize": subscription.batch_size, "Enabled": bool(resolver.resolve(props.get("Enabled", True))),
            "FunctionResponseTypes": list(props.get("FunctionResponseTypes", [])),
        }
        if "MaximumBatchingWindowInSeconds" in props:
            mapping["MaximumBatchingWindowInSeconds"] = int(props["MaximumBatchingWindowInSeconds"])
        if subscription.maximum_concurrency:
            mapping["ScalingConfig"] = {"MaximumConcurrency": int(subscription.maximum_concurrency)}
        uuid = lam.create_event_source_mapping(**mapping)["UUID"]
        _detach_sqs_trigger(queue_arns[subscription.queue_id])
        plane.mappings[subscription.queue_id] = uuid
        plane.resources[f"{subscription.function_id}{event_name}"] = uuid  # SAM's logical id

    for function_id, spec in template.functions.items():
        for event_name, event in spec.properties.get("Events", {}).items():
            if event["Type"] != "ScheduleV2":
                continue
            props = resolver.resolve(event["Properties"])
            target: dict[str, Any] = {"Arn": plane.function_arns[function_id], "RoleArn": scheduler_role,
                                      "Input": props.get("Input", "{}")}
            if "RetryPolicy" in props:
                target["RetryPolicy"] = {k: int(v) for k, v in props["RetryPolicy"].items()}
            if "DeadLetterConfig" in props:
                target["DeadLetterConfig"] = {"Arn": props["DeadLetterConfig"]["Arn"]}
            name = str(props.get("Name") or f"{function_id}{event_name}")
            scheduler.create_schedule(
                Name=name, ScheduleExpression=props["ScheduleExpression"],
                ScheduleExpressionTimezone=str(props.get("ScheduleExpressionTimezone") or "UTC"),
                State=str(props.get("State") or "ENABLED"),
                FlexibleTimeWindow=props.get("FlexibleTimeWindow") or {"Mode": "OFF"}, Target=target)
            plane.schedule_names.append(name)
            plane.resources[f"{function_id}{event_name}"] = name  # SAM's logical id of the schedule
    return plane


# ------------------------------------------------------------------------------------------------ hand-over


def handover_variables(function_environment: dict[str, str], *, database_url: str, resources_file: Path,
                       aws: dict[str, str]) -> dict[str, str]:
    """What another terminal needs to reach this stack as the functions do: their shared settings (queue URLs,
    Telegram, time zone, ...), the database over TCP, the AWS endpoint and credentials, the resources map."""
    found = {name: value for name, value in function_environment.items()
             if value and not name.startswith(_NOT_HANDED_OVER) and name != "DATABASE_URL"}
    found.update(aws)
    found["DATABASE_URL"] = database_url
    found[RESOURCES_FILE_VARIABLE] = str(resources_file)
    return dict(sorted(found.items()))


def env_file_text(variables: dict[str, str], *, started: datetime) -> str:
    lines = [f"# expensebot local up, started {started.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}; removed when it stops.",
             "# In another terminal: source this file, then `expensebot ops ...`, boto3 or the AWS CLI v2."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    return "\n".join(lines) + "\n"


@contextmanager
def handed_over(directory: Path, variables: dict[str, str], resources: dict[str, str]) -> Iterator[Path]:
    """Writes local.env and resources.json for the block; removes them when the stack stops, so a later
    `ops` says the map is missing instead of timing out on a dead endpoint. Yields the env file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    env_file, resources_file = directory / ENV_FILE, directory / RESOURCES_FILE
    _write_atomically(resources_file, json.dumps(resources, indent=1, sort_keys=True) + "\n")
    # The env file last: a reader waiting for it finds the map already there.
    _write_atomically(env_file, env_file_text(variables, started=datetime.now(UTC)))
    try:
        yield env_file
    finally:
        for path in (env_file, resources_file):
            with suppress(FileNotFoundError):
                path.unlink()


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


# ----------------------------------------------------------------------------------------------------- logs


class FunctionLogs(logging.Handler):
    """Sends each function's log lines to its CloudWatch Logs group, as Lambda does with a function's
    stdout: one stream per caller thread (a worker's poller, the scheduler, the webhook) and day. The
    lines are collected during an invocation (all run on one invoker thread, see up.py) and put after it."""

    def __init__(self, logs_client: Any, groups: dict[str, str], formatter: logging.Formatter | None) -> None:
        super().__init__(level=logging.DEBUG)
        if formatter is not None:
            self.setFormatter(formatter)
        self._logs = logs_client
        self._groups = groups
        self._current: str | None = None
        self._lines: list[tuple[int, str]] = []
        self._streams: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if self._current is None:
            return
        try:
            line = self.format(record)
        except Exception:  # a line that cannot be formatted must not fail the invocation
            self.handleError(record)
            return
        with self._lock:
            self._lines.append((int(record.created * 1000), line))

    def add_line(self, line: str) -> None:
        """A line the runtime itself writes (an unhandled error), not the function's logger."""
        with self._lock:
            self._lines.append((int(datetime.now(UTC).timestamp() * 1000), line))

    @contextmanager
    def invocation(self, function_id: str, caller: str) -> Iterator[None]:
        with self._lock:
            self._current, self._lines = function_id, []
        try:
            yield
        finally:
            with self._lock:
                lines, self._current, self._lines = self._lines, None, []
            self._put(function_id, caller, lines)

    def _put(self, function_id: str, caller: str, lines: list[tuple[int, str]]) -> None:
        group = self._groups.get(function_id)
        if not lines or group is None:
            return
        stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{caller}"
        if (group, stream) not in self._streams:
            with suppress(self._logs.exceptions.ResourceAlreadyExistsException):
                self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
            self._streams.add((group, stream))
        events = [{"timestamp": at, "message": message} for at, message in sorted(lines, key=lambda item: item[0])]
        for start in range(0, len(events), 1000):
            self._logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start:start + 1000])
