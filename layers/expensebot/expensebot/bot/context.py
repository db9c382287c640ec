"""What every handler gets besides the message: the transaction's cursor, the user's language and currency,
the runtime (settings, clock). The webhook opens the transaction; the middleware registers the user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject

from expensebot.bookkeeping import TelegramUser, touch_user
from expensebot.texts import language_for


class UserMiddleware(BaseMiddleware):
    """Registers (or reactivates) the sender of a private message. Anything else (a group, a channel, a
    message with no sender) is left unhandled: the bot keeps each user's data in their private chat, and
    the webhook acknowledges an unhandled update with 200 so Telegram does not retry it."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not (isinstance(event, Message) and event.from_user is not None and event.chat.type == "private"):
            return None
        sender = event.from_user
        data["currency"] = touch_user(
            data["cur"],
            TelegramUser(
                user_id=sender.id,
                chat_id=event.chat.id,
                first_name=sender.first_name,
                username=sender.username,
                language_code=sender.language_code,
            ),
            data["runtime"].clock.now(),
            data["runtime"].settings.default_currency,
        )
        data["lang"] = language_for(sender.language_code)
        return await handler(event, data)
