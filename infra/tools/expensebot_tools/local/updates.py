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
        """A text message in the user's private chat with the bot; a leading /command gets its entity."""
        return {"update_id": self.next_update_id(), "message": self._text_message(user, self._private(user), text, at)}

    def group_message(self, user: FakeUser, text: str, at: datetime, *, group_id: int = -100_500) -> dict[str, Any]:
        chat = {"id": group_id, "type": "group", "title": "Family"}
        return {"update_id": self.next_update_id(), "message": self._text_message(user, chat, text, at)}

    def edited_message(self, user: FakeUser, text: str, at: datetime) -> dict[str, Any]:
        message = self._text_message(user, self._private(user), text, at)
        message["edit_date"] = message["date"]
        return {"update_id": self.next_update_id(), "edited_message": message}

    def sticker(self, user: FakeUser, at: datetime) -> dict[str, Any]:
        message = self._base(user, self._private(user), at)
        message["sticker"] = {
            "file_id": "CAACAgIAAxkBAAE", "file_unique_id": "AgADxx", "type": "regular",
            "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": "👍",
        }
        return {"update_id": self.next_update_id(), "message": message}

    def channel_post(self, text: str, at: datetime, *, channel_id: int = -100_200_300) -> dict[str, Any]:
        post = {
            "message_id": next(self._message_ids),
            "chat": {"id": channel_id, "type": "channel", "title": "News"},
            "date": int(at.timestamp()),
            "text": text,
        }
        return {"update_id": self.next_update_id(), "channel_post": post}

    def next_update_id(self) -> int:
        return next(self._update_ids)

    @staticmethod
    def _private(user: FakeUser) -> dict[str, Any]:
        return {"id": user.user_id, "type": "private", "first_name": user.first_name,
                **({"username": user.username} if user.username else {})}

    def _base(self, user: FakeUser, chat: dict[str, Any], at: datetime) -> dict[str, Any]:
        return {"message_id": next(self._message_ids), "from": user.as_telegram(), "chat": chat,
                "date": int(at.timestamp())}

    def _text_message(self, user: FakeUser, chat: dict[str, Any], text: str, at: datetime) -> dict[str, Any]:
        message = self._base(user, chat, at)
        message["text"] = text
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return message


class Conversation:
    """One user writing to the bot through the webhook handler (as API Gateway events), for tests, the
    demo and the benchmark: `say` posts one update and returns the replies it produced."""

    def __init__(self, system: Any, user: FakeUser, updates: UpdateFactory | None = None) -> None:
        self.system = system
        self.user = user
        self.updates = updates or UpdateFactory()
        self.last_response: dict[str, Any] = {}
        system.telegram.add_chat(user.user_id, first_name=user.first_name)

    def say(self, text: str, *, at: datetime | None = None) -> list[str]:
        return self.post(self.updates.message(self.user, text, at or self.system.clock.now()))

    def post(self, update: dict[str, Any]) -> list[str]:
        """Posts any update; the replies are the messages sent to this user's chat meanwhile."""
        before = len(self.system.telegram.sent_messages(self.user.user_id))
        self.last_response = self.system.post_update(update)
        sent = self.system.telegram.sent_messages(self.user.user_id)[before:]
        return [call.params["text"] for call in sent]

    def reply(self, text: str, *, at: datetime | None = None) -> str:
        """The one reply to one message (fails loudly when there is none, or more than one)."""
        replies = self.say(text, at=at)
        if len(replies) != 1:
            raise AssertionError(f"{text!r}: expected one reply, got {replies!r} ({self.last_response})")
        return replies[0]
