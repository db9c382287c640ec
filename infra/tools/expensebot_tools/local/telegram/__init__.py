"""A local Telegram Bot API that behaves like Telegram: its limits, 429 with retry_after, 403 for a blocked user."""

from expensebot_tools.local.telegram.standin import RecordedCall, TelegramStandIn

__all__ = ["RecordedCall", "TelegramStandIn"]
