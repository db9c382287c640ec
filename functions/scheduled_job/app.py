"""Target of the five EventBridge Scheduler schedules: one job run per scheduled slot.

The schedule's Input names the job and carries Scheduler's context attributes (template.yaml)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from expensebot.observability import logger, metrics, tracer
from expensebot.scheduling import handle_scheduled_event


@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=True, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle_scheduled_event(event, context)
