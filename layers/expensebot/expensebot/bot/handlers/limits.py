"""A message longer than Telegram's 4,096 characters: Telegram never delivers one, so it did not come from a
user's client; it is answered with what the limit is and never parsed (parsing.MAX_TEXT_LENGTH)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.methods import SendMessage
from aiogram.types import Message

from expensebot.parsing import MAX_TEXT_LENGTH
from expensebot.texts import t

router = Router(name="limits")


@router.message(F.text.len() > MAX_TEXT_LENGTH)
async def on_too_long_text(message: Message, lang: str) -> SendMessage:
    return message.answer(t(lang, "text_too_long", max=MAX_TEXT_LENGTH))
