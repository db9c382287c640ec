"""Consumer of one SQS queue (the template gives each queue its own worker function): runs each task
message, and reports the ones that failed so SQS retries only those."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from expensebot.observability import logger, metrics, tracer
from expensebot.worker import run_task_record

# Even when every record failed, answer with the list instead of raising: each record has already been
# given its own retry delay, and an escaping exception would fail the batch as a whole.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=run_task_record, processor=processor, context=context
    )
