"""What a worker function runs for one SQS record: parse the envelope, find the task, run it.

Powertools' BatchProcessor calls `run_task_record` once per record and reports the ones that raise as
batch item failures, so one bad record never fails the others. Around that:

- a record that no retry can fix (not a task message, an unknown task, invalid arguments, a message
  Telegram refuses with 400) goes straight to the queue's DLQ with its error, and is not retried;
- a record that failed otherwise comes back after a growing delay (its visibility timeout is changed),
  not after the queue's whole 3600 s visibility timeout; after maxReceiveCount receives SQS moves it to
  the DLQ;
- a message held back by the global pacing or by Telegram's 429 comes back after the wait as a fresh
  copy (SendMessage with DelaySeconds, then the record succeeds), so waiting never uses up the
  maxReceiveCount that only real failures should spend; a message another worker is sending comes back
  when that worker's claim lapses;
- at the soft time limit (Celery's task_soft_time_limit) the records not yet started are handed back at
  once, as batch item failures, instead of being cut off by the function timeout.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from expensebot.adapters.queues import SQS_MAX_DELAY_SECONDS, OutgoingMessage
from expensebot.bootstrap import Runtime, get_runtime
from expensebot.errors import ExpenseBotError, InvalidMessage, TelegramBadRequest, TelegramRetryAfter
from expensebot.observability import logger, metrics
from expensebot.scheduling import Deadline, LambdaContextLike, current_deadline, task_deadline
from expensebot.tasks import lookup, parse_message

if TYPE_CHECKING:
    # Imported with the first batch, not at import (`expensebot dev import-times`): Powertools' batch module
    # brings asyncio and all its event classes (about 45 ms here), and delivery and pacing bring the settings
    # model (pydantic-settings) and the Telegram client.
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from expensebot.delivery import Outbox
    from expensebot.pacing import HeldBack

BACKOFF_FIRST_SECONDS = 30
BACKOFF_MAX_SECONDS = 900

# Errors that a retry cannot fix: the message is parked in the DLQ at once.
FINAL_ERRORS = (InvalidMessage, TelegramBadRequest)


def retry_delay(receive_count: int, error: BaseException, *, lease_seconds: int) -> int:
    """Seconds until a failed record is received again: 30, 60, 120, 240, … capped at 15 minutes."""
    from expensebot.delivery import DeliveryInProgress

    if isinstance(error, TelegramRetryAfter):
        return max(1, error.retry_after)
    if isinstance(error, DeliveryInProgress):
        return lease_seconds
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(0, receive_count - 1))


class NotStarted(ExpenseBotError):
    """The batch reached its soft time limit before this record began: it goes back to the queue now."""


RECORD_LOG_KEYS = ["task", "task_id", "job_run_id"]


@cache
def _processor() -> BatchProcessor:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    # Even when every record failed, answer with the list instead of raising: each record has already been
    # given its own retry delay, and an escaping exception would fail the batch as a whole.
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def handle_sqs_batch(event: dict[str, Any], context: LambdaContextLike | None) -> dict[str, Any]:
    """What a worker function's lambda_handler calls: every record of the batch, under one soft deadline
    measured from the batch's start; then the parts that waited for their chat (delivery.Outbox), whose
    failures are their records' own."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    from expensebot.delivery import batch_outbox

    runtime = get_runtime()
    deadline = Deadline(runtime.settings.soft_time_limit_seconds, context)
    with task_deadline(deadline), batch_outbox() as outbox:
        response: dict[str, Any] = process_partial_response(
            event=event, record_handler=run_task_record, processor=_processor(), context=context,  # type: ignore[arg-type]
        )
        if len(outbox):
            reported = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
            response["batchItemFailures"] += [
                {"itemIdentifier": message_id} for message_id in _flush(runtime, outbox, deadline)
                if message_id not in reported
            ]
    return response


def _flush(runtime: Runtime, outbox: Outbox, deadline: Deadline) -> list[str]:
    """Sends the outbox's waiting parts; the records whose parts failed and must come back."""
    failed: list[str] = []

    def settle(record: SQSRecord, outcome: Any) -> None:
        if isinstance(outcome, Exception) and _settle_failure(runtime, record, outcome, task_name=None):
            failed.append(record.message_id)

    outbox.flush(runtime, settle, deadline.remaining)
    return list(dict.fromkeys(failed))


def run_task_record(record: SQSRecord) -> Any:
    from expensebot.delivery import current_outbox

    outbox = current_outbox()
    if outbox is not None:
        outbox.owner = record  # a part this record's task leaves to the outbox is the record's
    try:
        if current_deadline(get_runtime().settings.soft_time_limit_seconds).expired():
            _hand_back_unstarted(record)
        return _run(record)
    finally:
        # The next record of the batch must not be logged under this one's task.
        logger.remove_keys(RECORD_LOG_KEYS)


def _run(record: SQSRecord) -> Any:
    runtime = get_runtime()
    task_name: str | None = None
    try:
        message = parse_message(record.body)
        task_name = message.task
        logger.append_keys(task=message.task, task_id=message.id, job_run_id=message.job_run_id)
        registered = lookup(message.task)
        consumer_queue = os.environ.get("QUEUE_NAME")
        if consumer_queue and registered.queue != consumer_queue:
            # Still run it (any worker can), but say so: its own queue's settings were bypassed.
            logger.warning("task arrived on another queue", extra={"queue": consumer_queue,
                                                                   "task_queue": registered.queue})
            metrics.add_metric(name="MisroutedTasks", unit="Count", value=1)
        return registered.run(runtime, message.args, message_id=message.id)
    except Exception as exc:
        if _settle_failure(runtime, record, exc, task_name):
            raise
        return None


def _settle_failure(runtime: Runtime, record: SQSRecord, exc: Exception, task_name: str | None) -> bool:
    """What becomes of a record whose task (or a part it left to the outbox) raised: parked, held back, handed
    back, or retried after a delay. True when the batch must report it failed."""
    from expensebot.delivery import OutboxTimeout, claim_lease_seconds
    from expensebot.pacing import HeldBack

    if isinstance(exc, FINAL_ERRORS):
        _park(runtime, record, exc, task_name)
        return False
    if isinstance(exc, HeldBack):
        _hold(runtime, record, exc)
        return False
    if isinstance(exc, OutboxTimeout):
        metrics.add_metric(name="RecordsHandedBackAtSoftLimit", unit="Count", value=1)
        logger.warning("soft time limit reached with parts waiting: record handed back",
                       extra={"message_id": record.message_id})
        _delay_redelivery(runtime, record, 0)
        return True
    receive_count = int(record.attributes.approximate_receive_count or 1)
    delay = retry_delay(receive_count, exc, lease_seconds=claim_lease_seconds(runtime.settings))
    metrics.add_metric(name="RetriedTasks", unit="Count", value=1)
    logger.error("task failed; retrying later", exc_info=exc,
                 extra={"receive_count": receive_count, "retry_in": delay})
    _delay_redelivery(runtime, record, delay)
    return True


def _hand_back_unstarted(record: SQSRecord) -> None:
    runtime = get_runtime()
    metrics.add_metric(name="RecordsHandedBackAtSoftLimit", unit="Count", value=1)
    logger.warning("soft time limit reached: record handed back unstarted", extra={"message_id": record.message_id})
    # Visible again at once, for the next invocation, rather than after the queue's visibility timeout.
    _delay_redelivery(runtime, record, 0)
    raise NotStarted(f"message {record.message_id} not started: the batch reached its soft time limit")


def _hold(runtime: Runtime, record: SQSRecord, held: HeldBack) -> None:
    """Re-sends the record as a new message due after the wait; the original then succeeds and is deleted.
    A crash between the two leaves two copies, which the delivery claim turns into one send."""
    queue_url = runtime.queues.url_for_arn(record.event_source_arn)
    delay = min(SQS_MAX_DELAY_SECONDS, held.seconds)  # a longer wait is held again when it comes back
    runtime.queues.send_to_url(queue_url, [OutgoingMessage(record.body, delay_seconds=delay)])
    metrics.add_metric(name="HeldBackTasks", unit="Count", value=1)
    logger.info("held back", extra={"reason": held.reason, "retry_in": delay})


def _park(runtime: Runtime, record: SQSRecord, exc: Exception, task_name: str | None) -> None:
    queue_url = runtime.queues.url_for_arn(record.event_source_arn)
    # If parking fails the exception escapes: the record is retried instead of lost.
    runtime.queues.park(queue_url, record.body, error=f"{type(exc).__name__}: {exc}", task=task_name)
    metrics.add_metric(name="ParkedTasks", unit="Count", value=1)
    logger.error("message cannot succeed; moved to the dead-letter queue", extra={"error": str(exc)})


def _delay_redelivery(runtime: Runtime, record: SQSRecord, seconds: int) -> None:
    try:
        queue_url = runtime.queues.url_for_arn(record.event_source_arn)
        runtime.queues.change_visibility(queue_url, record.receipt_handle, seconds)
    except Exception:
        # Without it the record still comes back, after the queue's visibility timeout.
        logger.exception("could not shorten the visibility timeout")
