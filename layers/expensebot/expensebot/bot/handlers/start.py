"""/start and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.methods import SendMessage
from aiogram.types import Message

from expensebot.texts import t

router = Router(name="start")


@router.message(CommandStart())
async def cmd_start(message: Message, lang: str) -> SendMessage:
    name = message.from_user.first_name if message.from_user else ""
    return message.answer(t(lang, "start", name=name, commands=t(lang, "commands")))


@router.message(Command("help"))
async def cmd_help(message: Message, lang: str) -> SendMessage:
    return message.answer(t(lang, "help", commands=t(lang, "commands")))
