"""Telegram Update objects as Telegram sends them to a webhook, for tests, the demo and simulations."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FakeUser:
    user_id: int
    first_name: str
    username: str | None = None
    language_code: str = "ru"

    def as_telegram(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.user_id, "is_bot": False, "first_name": self.first_name,
                                "language_code": self.language_code}
        if self.username:
            user["username"] = self.username
        return user


class UpdateFactory:
    def __init__(self, first_update_id: int = 100_000) -> None:
        self._update_ids = itertools.count(first_update_id)
        self._message_ids = itertools.count(1)

    def message(self, user: FakeUser, text: str, at: datetime) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": user.as_telegram(),
            "chat": {"id": user.user_id, "type": "private", "first_name": user.first_name,
                     **({"username": user.username} if user.username else {})},
            "date": int(at.timestamp()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), "message": message}
