"""Telegram's webhook behind API Gateway: the only function that imports aiogram."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from expensebot.bot.webhook import handle_webhook_event
from expensebot.observability import logger, metrics, tracer


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle_webhook_event(event)
