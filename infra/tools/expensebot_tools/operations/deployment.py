"""Where each resource of template.yaml lives in the deployment `ops` talks to, by its logical id.

- In AWS: `EXPENSEBOT_STACK_NAME` (or `--stack`) names the CloudFormation stack; ListStackResources maps
  every logical id to its physical id (a queue's URL, a function's or log group's name, an event source
  mapping's UUID, a schedule's name). SAM names a function's SQS event source mapping `<Function><Event>`,
  so the worker `NotificationsWorkerFunction`'s is `NotificationsWorkerFunctionQueue`.
- Locally: `expensebot local up` writes the same map as JSON to `.expensebot/resources.json` and exports
  `EXPENSEBOT_RESOURCES_FILE` in `.expensebot/local.env`.
- Without either, the five queues and their DLQs still come from the functions' own variables
  (`QUEUE_URL_*`, `DEAD_LETTER_QUEUE_URL_*`); anything else says which variable to set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
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


def _from_queue_variables() -> dict[str, str]:
    resources: dict[str, str] = {}
    for name, (queue_id, dead_letter_id) in TASK_QUEUES.items():
        if url := os.environ.get(f"QUEUE_URL_{name.upper()}"):
            resources[queue_id] = url
        if url := os.environ.get(f"DEAD_LETTER_QUEUE_URL_{name.upper()}"):
            resources[dead_letter_id] = url
    return resources
