"""The Bot API methods the stand-in answers, and the bot state they read and change.

``BotApi`` holds one bot's chats, blocked users, messages, webhook and commands
and implements each supported method as ``(token, params, now) -> result``,
raising ``ApiError`` where Telegram would answer with an error. ``TelegramStandIn``
is a ``BotApi`` that adds the HTTP server, the lock (held around every method
call), fault injection and the record of calls.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from expensebot_tools.local.telegram.entities import visible_text
from expensebot_tools.local.telegram.errors import ApiError, bad_request
from expensebot_tools.local.telegram.limits import (
    MAX_CAPTION_LENGTH,
    MAX_DOCUMENT_BYTES,
    MAX_MESSAGE_LENGTH,
    MAX_PHOTO_BYTES,
    MAX_PHOTO_RATIO,
    MAX_PHOTO_SIDES_SUM,
    RateLimiter,
)
from expensebot_tools.local.telegram.params import is_true, validate_reply_markup
from expensebot_tools.local.telegram.uploads import Upload, image_sides

# Canonical spelling of every supported method, keyed by its lower-case form,
# because Telegram resolves method names case-insensitively.
METHODS: dict[str, str] = {
    name.lower(): name
    for name in (
        "getMe",
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "editMessageText",
        "deleteMessage",
        "sendChatAction",
        "answerCallbackQuery",
        "getUpdates",
        "setWebhook",
        "deleteWebhook",
        "getWebhookInfo",
        "setMyCommands",
        "deleteMyCommands",
        "getMyCommands",
    )
}

# The sides of the sizes Telegram makes of a photo (its thumbnails "s", "m", "x", "y"), the largest
# being at most "w": the photo scaled down to 2560 on its longer side.
_PHOTO_SIZES = (90, 320, 800, 1280)
_PHOTO_LARGEST = 2560

_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_BOT_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


# (token, params, now) -> result, or a full payload dict when it needs a description.
MethodHandler = Callable[[str, dict[str, Any], datetime], Any]


class BotApi:
    """One bot's state and the Bot API methods on it; callers hold the stand-in's lock."""

    def __init__(self, *, limiter: RateLimiter, enforce_limits: bool, accept_any_chat: bool) -> None:
        self._enforce_limits = enforce_limits
        self._accept_any_chat = accept_any_chat
        self._limiter = limiter
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: dict[int, str] = {}
        self._languages: dict[int, str] = {}
        self._last_message_id: dict[int, int] = {}
        self._messages: dict[int, dict[int, dict[str, Any]]] = {}
        self._webhook: dict[str, Any] = {}
        self._webhook_error: tuple[int, str] | None = None
        self._commands: dict[str, list[dict[str, Any]]] = {}
        # file_id -> the file, so that a file can be sent again by its id as on Telegram.
        self._files: dict[str, Upload] = {}
        # (how many more sends answer 429, with which retry_after): an injected flood limit.
        self._forced_429: tuple[int, int] = (0, 0)
        # Method name -> its implementation. Public so that a test can wrap one method to watch its calls.
        self.handlers: dict[str, MethodHandler] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "deleteMessage": self._delete_message,
            "sendChatAction": self._send_chat_action,
            "answerCallbackQuery": self._answer_callback_query,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
        }

    @staticmethod
    def _unix(moment: datetime) -> int:
        return int(moment.timestamp())

    def _bot_user(self, token: str) -> dict[str, Any]:
        prefix = token.split(":", 1)[0]
        return {
            "id": int(prefix) if prefix.isdigit() else 0,
            "is_bot": True,
            "first_name": "ExpenseBot",
            "username": "expensebot_local_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    # ------------------------------------------------------------- chats

    def _resolve_chat(self, params: Mapping[str, Any]) -> dict[str, Any]:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username") == raw[1:]:
                    return chat
            # An unknown @username cannot be invented: Telegram needs a numeric id.
            raise bad_request("chat not found")
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise bad_request("chat not found")
        if raw not in self._chats:
            if not self._accept_any_chat:
                raise bad_request("chat not found")
            if raw > 0:
                self._chats[raw] = {"id": raw, "type": "private", "first_name": "User"}
            else:
                kind = "supergroup" if str(raw).startswith("-100") else "group"
                self._chats[raw] = {"id": raw, "type": kind, "title": f"Chat {raw}"}
        return self._chats[raw]

    def _check_not_blocked(self, chat_id: int) -> None:
        if chat_id in self._blocked:
            raise ApiError(403, f"Forbidden: {self._blocked[chat_id]}")

    @staticmethod
    def _message_text(params: Mapping[str, Any]) -> str:
        raw = params.get("text")
        if raw is None or raw == "":
            raise bad_request("message text is empty")
        text = raw if isinstance(raw, str) else json.dumps(raw)
        parse_mode = params.get("parse_mode") or ""
        if not isinstance(parse_mode, str) or parse_mode.lower() not in {
            "",
            "html",
            "markdownv2",
            "markdown",
        }:
            raise bad_request("unsupported parse_mode")
        plain = visible_text(text, parse_mode)
        if not plain:
            raise bad_request("message text is empty")
        if len(plain) > MAX_MESSAGE_LENGTH:
            raise bad_request("message is too long")
        return plain

    # ----------------------------------------------------------- methods

    def _get_me(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        return self._bot_user(token)

    def _send_message(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        if params.get("chat_id") in {None, ""}:
            raise bad_request("chat_id is empty")
        # Same order as the Bot API server: text problems before chat problems.
        text = self._message_text(params)
        markup = validate_reply_markup(params.get("reply_markup"))
        chat = self._admit_send(params, now)
        message = self._new_message(token, chat, now)
        message["text"] = text
        if markup is not None:
            message["reply_markup"] = markup
        return message

    def _send_photo(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        if params.get("chat_id") in {None, ""}:
            raise bad_request("chat_id is empty")
        caption = self._caption(params)
        markup = validate_reply_markup(params.get("reply_markup"))
        photo = self._file_param(params, "photo")
        if photo.size > MAX_PHOTO_BYTES:
            # What Telegram answers a photo over 10 MB (the MTProto error the Bot API passes on).
            raise bad_request("PHOTO_SAVE_FILE_INVALID")
        sides = image_sides(photo.content)
        if sides is None or min(sides) == 0:
            raise bad_request("IMAGE_PROCESS_FAILED")
        width, height = sides
        if width + height > MAX_PHOTO_SIDES_SUM or max(sides) > MAX_PHOTO_RATIO * min(sides):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        chat = self._admit_send(params, now)
        message = self._new_message(token, chat, now)
        message["photo"] = self._photo_sizes(photo, width, height, message["message_id"])
        self._add_caption(message, caption, markup)
        return message

    def _send_document(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        if params.get("chat_id") in {None, ""}:
            raise bad_request("chat_id is empty")
        caption = self._caption(params)
        markup = validate_reply_markup(params.get("reply_markup"))
        document = self._file_param(params, "document")
        if document.size > MAX_DOCUMENT_BYTES:
            # Telegram's front end refuses the upload itself, before the Bot API reads it.
            raise ApiError(413, "Request Entity Too Large")
        chat = self._admit_send(params, now)
        message = self._new_message(token, chat, now)
        message["document"] = {
            "file_name": document.filename,
            "mime_type": document.mime_type,
            "file_id": self._store_file(document, "BQACAgIAAxkDAAI", message["message_id"]),
            "file_unique_id": document.file_unique_id,
            "file_size": document.size,
        }
        self._add_caption(message, caption, markup)
        return message

    # --------------------------------------------------------- sending

    def _admit_send(self, params: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """What every send goes through after its own checks: the chat, a block, an injected flood limit
        and the rate limits. Returns the chat."""
        chat = self._resolve_chat(params)
        chat_id: int = chat["id"]
        self._check_not_blocked(chat_id)
        remaining, forced_retry_after = self._forced_429
        if remaining > 0:
            self._forced_429 = (remaining - 1, forced_retry_after)
            raise ApiError(429, f"Too Many Requests: retry after {forced_retry_after}", retry_after=forced_retry_after)
        if self._enforce_limits:
            wait = self._limiter.wait_seconds(chat_id, is_true(params.get("allow_paid_broadcast")), now)
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
            self._limiter.consume(chat_id, now)
        return chat

    def _new_message(self, token: str, chat: dict[str, Any], now: datetime) -> dict[str, Any]:
        chat_id: int = chat["id"]
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": self._bot_user(token),
            "chat": dict(chat),
            "date": self._unix(now),
        }
        self._messages.setdefault(chat_id, {})[message_id] = message
        return message

    @staticmethod
    def _caption(params: Mapping[str, Any]) -> str:
        """The caption a user would see; Telegram counts its limit after entity parsing, like a text's."""
        raw = params.get("caption")
        if raw is None or raw == "":
            return ""
        text = raw if isinstance(raw, str) else json.dumps(raw)
        parse_mode = params.get("parse_mode") or ""
        if not isinstance(parse_mode, str) or parse_mode.lower() not in {"", "html", "markdownv2", "markdown"}:
            raise bad_request("unsupported parse_mode")
        plain = visible_text(text, parse_mode)
        if len(plain) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        return plain

    @staticmethod
    def _add_caption(message: dict[str, Any], caption: str, markup: dict[str, Any] | None) -> None:
        # Telegram leaves out an empty caption rather than sending "".
        if caption:
            message["caption"] = caption
        if markup is not None:
            message["reply_markup"] = markup

    def _file_param(self, params: Mapping[str, Any], field: str) -> Upload:
        value = params.get(field)
        if isinstance(value, str) and value.startswith("attach://"):
            # The file travels in a part of its own name, as aiogram sends every upload.
            value = params.get(value.removeprefix("attach://"))
            if not isinstance(value, Upload):
                raise bad_request(f"there is no {field} in the request")
        if isinstance(value, Upload):
            if value.size == 0:
                raise bad_request("file must be non-empty")
            return value
        if value is None or value == "":
            raise bad_request(f"there is no {field} in the request")
        # A string is a file_id of a file sent before (or a URL, which the stand-in cannot fetch).
        known = self._files.get(str(value))
        if known is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return known

    def _store_file(self, upload: Upload, prefix: str, message_id: int) -> str:
        file_id = f"{prefix}{message_id}{upload.file_unique_id}"
        self._files[file_id] = upload
        return file_id

    def _photo_sizes(self, photo: Upload, width: int, height: int, message_id: int) -> list[dict[str, Any]]:
        """The PhotoSize list Telegram answers with: thumbnails up to the photo itself (scaled to at most
        2560 on its longer side), smallest first. A scaled size's file_size is estimated from its area:
        Telegram recompresses, so no client can rely on it anyway."""
        longest = max(width, height)
        sides = [side for side in _PHOTO_SIZES if side < longest] + [min(longest, _PHOTO_LARGEST)]
        sizes = []
        for side in sides:
            scale = side / longest
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            # Each size is a file of its own on Telegram, with its own ids.
            variant = Upload(f"{side}-{photo.filename}", photo.content + side.to_bytes(2, "big"), photo.mime_type)
            sizes.append({
                "file_id": self._store_file(photo, "AgACAgIAAxkDAAI", message_id * 10 + len(sizes)),
                "file_unique_id": variant.file_unique_id,
                "file_size": max(1, round(photo.size * scale * scale)),
                "width": w,
                "height": h,
            })
        return sizes

    def _edit_message_text(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        text = self._message_text(params)
        markup = validate_reply_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            return True
        chat = self._resolve_chat(params)
        self._check_not_blocked(chat["id"])
        message = self._messages.get(chat["id"], {}).get(params.get("message_id", -1))
        if message is None:
            raise bad_request("message to edit not found")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        if message["text"] == text and message.get("reply_markup") == markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message.update(text=text, edit_date=self._unix(now))
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        return dict(message)

    def _delete_message(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        chat = self._resolve_chat(params)
        if self._messages.get(chat["id"], {}).pop(params.get("message_id", -1), None) is None:
            raise bad_request("message to delete not found")
        return True

    def _send_chat_action(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        chat = self._resolve_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._check_not_blocked(chat["id"])
        return True

    def _answer_callback_query(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        if not params.get("callback_query_id"):
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        return True

    def _get_updates(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        if self._webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        return []

    def _set_webhook(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        url = params.get("url") or ""
        if not url:
            had = bool(self._webhook)
            self._webhook = {}
            return {
                "ok": True,
                "result": True,
                "description": "Webhook was deleted" if had else "Webhook is already deleted",
            }
        # http:// is accepted (Telegram demands https) so a local simulation
        # can point at a plain local endpoint.
        if not isinstance(url, str) or urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).hostname:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret not in {None, ""} and not (isinstance(secret, str) and _SECRET_TOKEN_RE.fullmatch(secret)):
            raise bad_request("secret token contains unallowed characters")
        max_connections = params.get("max_connections", 40)
        if not isinstance(max_connections, int) or not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed_updates = params.get("allowed_updates")
        if allowed_updates is not None and not isinstance(allowed_updates, list):
            raise bad_request("can't parse allowed updates list")
        webhook: dict[str, Any] = {"url": url, "max_connections": max_connections}
        if secret:
            webhook["secret_token"] = secret
        if allowed_updates is not None:
            webhook["allowed_updates"] = allowed_updates
        if "drop_pending_updates" in params:
            webhook["drop_pending_updates"] = is_true(params["drop_pending_updates"])
        if "ip_address" in params:
            webhook["ip_address"] = params["ip_address"]
        already = self._webhook.get("url") == url
        self._webhook = webhook
        return {
            "ok": True,
            "result": True,
            "description": "Webhook is already set" if already else "Webhook was set",
        }

    def _delete_webhook(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        had = bool(self._webhook)
        self._webhook = {}
        return {
            "ok": True,
            "result": True,
            "description": "Webhook was deleted" if had else "Webhook is already deleted",
        }

    def _get_webhook_info(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        info: dict[str, Any] = {
            "url": self._webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        # Telegram omits optional keys that are unset.
        if self._webhook.get("url"):
            info["max_connections"] = self._webhook["max_connections"]
            if "ip_address" in self._webhook:
                info["ip_address"] = self._webhook["ip_address"]
            if self._webhook.get("allowed_updates"):
                info["allowed_updates"] = self._webhook["allowed_updates"]
        if self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    @staticmethod
    def _commands_key(params: Mapping[str, Any]) -> str:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)

    def _set_my_commands(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        commands = params.get("commands")
        if commands is None:
            raise bad_request('parameter "commands" is required')
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_RE.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(params)] = commands
        return True

    def _delete_my_commands(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _get_my_commands(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        return self._commands.get(self._commands_key(params), [])
