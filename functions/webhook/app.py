"""Telegram's webhook behind API Gateway: the only function that imports aiogram.

Init (module import) does the slow part once: aiogram and the routers. With SnapStart that work is in
the snapshot, and the restore hooks make each restored copy open its own connections."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from expensebot.bot.webhook import handle_webhook_event, register_snapstart_hooks, warm_up
from expensebot.observability import logger, metrics, tracer

warm_up()
register_snapstart_hooks()


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle_webhook_event(event)
