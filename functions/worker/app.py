"""Consumer of one SQS queue (the template gives each queue its own worker function): runs each task
message, and reports the ones that failed so SQS retries only those."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from expensebot.observability import logger, metrics, tracer
from expensebot.worker import handle_sqs_batch


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle_sqs_batch(event, context)
