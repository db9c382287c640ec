"""Where each resource of template.yaml lives in the deployment `ops` talks to, by its logical id.

- In AWS: `EXPENSEBOT_STACK_NAME` (or `--stack`) names the CloudFormation stack; ListStackResources maps
  every logical id to its physical id (a queue's URL, a function's or log group's name, an event source
  mapping's UUID, a schedule's name). SAM names a function's SQS event source mapping `<Function><Event>`,
  so the worker `NotificationsWorkerFunction`'s is `NotificationsWorkerFunctionQueue`.
- Locally: `expensebot local up` writes the same map as JSON to `.expensebot/resources.json` and exports
  `EXPENSEBOT_RESOURCES_FILE` in `.expensebot/local.env`.
- Without either, the five queues and their DLQs still come from the functions' own variables
  (`QUEUE_URL_*`, `DEAD_LETTER_QUEUE_URL_*`), and the jobs' two DLQs from `JOB_FAILURE_QUEUE_URL` and
  `SCHEDULER_DEAD_LETTER_QUEUE_URL` (the stack's outputs JobFailureQueueUrl, SchedulerDeadLetterQueueUrl);
  anything else says which variable to set.

A queue is named by the operator as the library names it (`notifications`), by its logical id
(`NotificationsQueue`, `NotificationsDeadLetterQueue`, `JobFailureQueue`), or by its SQS queue name (the last
part of its URL): `find_queue` turns any of these into a `QueueRef`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from expensebot_tools.console import CliError

STACK_VARIABLE = "EXPENSEBOT_STACK_NAME"
RESOURCES_FILE_VARIABLE = "EXPENSEBOT_RESOURCES_FILE"

# The five task queues by their name in the library (QUEUE_URL_<NAME>), with their logical ids.
TASK_QUEUES = {
    "default": ("DefaultQueue", "DefaultDeadLetterQueue"),
    "reports": ("ReportsQueue", "ReportsDeadLetterQueue"),
    "recurring": ("RecurringQueue", "RecurringDeadLetterQueue"),
    "maintenance": ("MaintenanceQueue", "MaintenanceDeadLetterQueue"),
    "notifications": ("NotificationsQueue", "NotificationsDeadLetterQueue"),
}
# The two queues no worker consumes: Lambda's async failure records of the jobs, Scheduler's failed deliveries.
JOB_FAILURE_QUEUE = "JobFailureQueue"
SCHEDULER_DEAD_LETTER_QUEUE = "SchedulerDeadLetterQueue"
DEAD_LETTER_QUEUES = (*(dlq for _, dlq in TASK_QUEUES.values()), SCHEDULER_DEAD_LETTER_QUEUE, JOB_FAILURE_QUEUE)
JOB_DEAD_LETTER_QUEUES = (JOB_FAILURE_QUEUE, SCHEDULER_DEAD_LETTER_QUEUE)
# Without a stack or a resources file, the variables an operator's shell sets for the jobs' two DLQs.
JOB_DEAD_LETTER_VARIABLES = {JOB_FAILURE_QUEUE: "JOB_FAILURE_QUEUE_URL",
                             SCHEDULER_DEAD_LETTER_QUEUE: "SCHEDULER_DEAD_LETTER_QUEUE_URL"}


@dataclass(frozen=True)
class QueueRef:
    """One of the template's queues: its logical id, and for a task queue or its DLQ the library's name of
    the task queue (`notifications`)."""

    logical_id: str
    task_queue: str | None = None

    @property
    def is_dead_letter(self) -> bool:
        return self.logical_id in DEAD_LETTER_QUEUES

    @property
    def holds_jobs(self) -> bool:
        """JobFailureQueue or SchedulerDeadLetterQueue: failed job deliveries, with no queue to go back to."""
        return self.logical_id in JOB_DEAD_LETTER_QUEUES

    @property
    def source_logical_id(self) -> str | None:
        """The task queue whose DLQ this is (or which this is)."""
        return TASK_QUEUES[self.task_queue][0] if self.task_queue else None

    @property
    def dead_letter_logical_id(self) -> str:
        """This queue's DLQ (a DLQ is its own)."""
        if self.is_dead_letter or not self.task_queue:
            return self.logical_id
        return TASK_QUEUES[self.task_queue][1]

    @property
    def label(self) -> str:
        if self.task_queue and not self.is_dead_letter:
            return self.task_queue
        return self.logical_id


def queue_refs() -> list[QueueRef]:
    """Every queue of the template: the five task queues, their DLQs, then the jobs' two DLQs."""
    refs = [QueueRef(queue_id, name) for name, (queue_id, _) in TASK_QUEUES.items()]
    refs += [QueueRef(dlq_id, name) for name, (_, dlq_id) in TASK_QUEUES.items()]
    return refs + [QueueRef(logical_id) for logical_id in JOB_DEAD_LETTER_QUEUES]


def queue_names_help() -> str:
    return f"{', '.join(TASK_QUEUES)}, a logical id such as {TASK_QUEUES['notifications'][1]} or " \
        f"{', '.join(JOB_DEAD_LETTER_QUEUES)}, or an SQS queue name"


def event_source_mapping_id(function_logical_id: str, event_name: str = "Queue") -> str:
    """SAM's logical id for a function's SQS event source mapping."""
    return f"{function_logical_id}{event_name}"


@dataclass
class Deployment:
    """Logical id → physical id, with where the map came from (for error messages)."""

    resources: dict[str, str] = field(default_factory=dict)
    source: str = "the environment"

    @classmethod
    def from_environment(cls, stack_name: str | None = None, cloudformation: Any = None) -> Deployment:
        stack_name = stack_name or os.environ.get(STACK_VARIABLE)
        if stack_name:
            return cls.from_stack(stack_name, cloudformation)
        path = os.environ.get(RESOURCES_FILE_VARIABLE)
        if path:
            return cls.from_file(Path(path))
        return cls(_from_queue_variables(), "QUEUE_URL_* and DEAD_LETTER_QUEUE_URL_*")

    @classmethod
    def from_file(cls, path: Path) -> Deployment:
        try:
            resources = json.loads(path.read_text())
        except FileNotFoundError:
            message = f"{RESOURCES_FILE_VARIABLE}={path}: no such file (is `expensebot local up` running?)"
            raise CliError(message) from None
        except ValueError as exc:
            raise CliError(f"{RESOURCES_FILE_VARIABLE}={path}: not JSON: {exc}") from None
        if not isinstance(resources, dict):
            raise CliError(f"{RESOURCES_FILE_VARIABLE}={path}: expected an object of logical id → physical id")
        return cls({str(k): str(v) for k, v in resources.items()}, str(path))

    @classmethod
    def from_stack(cls, stack_name: str, cloudformation: Any = None) -> Deployment:
        import boto3
        from botocore.exceptions import ClientError

        client = cloudformation or boto3.client("cloudformation")
        resources: dict[str, str] = {}
        try:
            for page in client.get_paginator("list_stack_resources").paginate(StackName=stack_name):
                for summary in page["StackResourceSummaries"]:
                    if summary.get("PhysicalResourceId"):
                        resources[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
        except ClientError as exc:
            raise CliError(f"stack {stack_name}: {exc.response['Error'].get('Message', exc)}") from None
        return cls(resources, f"stack {stack_name}")

    def physical_id(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise CliError(
                f"{logical_id} is not known from {self.source}: set {STACK_VARIABLE} to the stack's name "
                f"(AWS), or source .expensebot/local.env (local up)"
            ) from None

    def queue_url(self, logical_id: str) -> str:
        return self.physical_id(logical_id)

    def function_name(self, logical_id: str) -> str:
        return self.physical_id(logical_id)

    def event_source_mapping_uuid(self, function_logical_id: str) -> str:
        return self.physical_id(event_source_mapping_id(function_logical_id))

    def knows(self, logical_id: str) -> bool:
        return logical_id in self.resources

    def lookup(self, logical_id: str) -> str | None:
        """The physical id, or None where this deployment does not say."""
        return self.resources.get(logical_id)

    def find_queue(self, text: str) -> QueueRef:
        """A queue by the library's name, its logical id, or its SQS queue name (case-insensitive)."""
        wanted = text.strip()
        refs = queue_refs()
        by_name = {name.lower(): QueueRef(queue_id, name) for name, (queue_id, _) in TASK_QUEUES.items()}
        if wanted.lower() in by_name:
            return by_name[wanted.lower()]
        for ref in refs:
            if ref.logical_id.lower() == wanted.lower():
                return ref
        for ref in refs:
            url = self.resources.get(ref.logical_id)
            if url and url.rstrip("/").rsplit("/", 1)[-1] == wanted:
                return ref
        raise CliError(f"unknown queue {text!r}; queues are {queue_names_help()}")


def _from_queue_variables() -> dict[str, str]:
    resources: dict[str, str] = {}
    for name, (queue_id, dead_letter_id) in TASK_QUEUES.items():
        if url := os.environ.get(f"QUEUE_URL_{name.upper()}"):
            resources[queue_id] = url
        if url := os.environ.get(f"DEAD_LETTER_QUEUE_URL_{name.upper()}"):
            resources[dead_letter_id] = url
    for logical_id, variable in JOB_DEAD_LETTER_VARIABLES.items():
        if url := os.environ.get(variable):
            resources[logical_id] = url
    return resources


@lru_cache(maxsize=1)
def _template() -> Any:
    from expensebot_tools.project.template import Template

    return Template()


def worker_of(queue_logical_id: str, template: Any = None) -> tuple[str, str]:
    """The function consuming a task queue and the logical id of its event source mapping, read from
    template.yaml (the SQS event of a function whose Queue is the queue's Arn)."""
    template = template or _template()
    for function_id, spec in template.functions.items():
        for event_name, event in spec.properties.get("Events", {}).items():
            if event["Type"] == "SQS" and event["Properties"]["Queue"]["Fn::GetAtt"][0] == queue_logical_id:
                return function_id, event_source_mapping_id(function_id, event_name)
    raise CliError(f"no function of template.yaml consumes {queue_logical_id}")


def job_function(job: str, template: Any = None) -> str | None:
    """The logical id of the function whose schedule runs `job` (its schedule's Input names the job)."""
    template = template or _template()
    for schedule in template.schedules():
        try:
            if json.loads(schedule.input).get("job") == job:
                return schedule.function_id
        except (ValueError, AttributeError):
            continue
    return None
