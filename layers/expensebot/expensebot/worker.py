"""What a worker function runs for one SQS record: parse the envelope, find the task, run it.
Powertools' BatchProcessor calls `run_task_record` once per record and reports the ones that raise
as batch item failures, so one bad record never fails the others."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from expensebot.bootstrap import get_runtime
from expensebot.observability import logger, metrics
from expensebot.tasks import lookup, parse_message


def run_task_record(record: SQSRecord) -> Any:
    message = parse_message(record.body)
    registered = lookup(message.task)
    logger.append_keys(task=message.task, task_id=message.id, job_run_id=message.job_run_id)
    try:
        return registered.run(get_runtime(), message.args)
    except Exception:
        metrics.add_metric(name="FailedTasks", unit="Count", value=1)
        logger.exception("task failed", extra={"receive_count": record.attributes.approximate_receive_count})
        raise
