"""The Bot API over HTTPS with urllib3 (already in the Lambda runtime through botocore): job and worker
functions send messages without importing aiogram, whose import alone costs seconds of cold start."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3

from expensebot.errors import (
    ConfigurationError,
    TelegramBadRequest,
    TelegramChatUnavailable,
    TelegramError,
    TelegramRetryAfter,
    TelegramUnavailable,
)

# Telegram's 400 descriptions that mean the chat is gone for good, like a 403.
# https://core.telegram.org/bots/api#making-requests
_GONE_CHAT_MARKERS = ("chat not found", "user not found", "bot was kicked", "group chat was upgraded")


class TelegramClient:
    def __init__(self, api_base: str, token: Callable[[], str], *, timeout: float = 10.0) -> None:
        self._api_base = api_base.rstrip("/")
        self._token = token
        self._timeout = urllib3.Timeout(connect=min(3.0, timeout), read=timeout)
        self._pool: urllib3.PoolManager | None = None

    @property
    def pool(self) -> urllib3.PoolManager:
        # One pool per execution environment keeps the TLS connection to Telegram warm between sends.
        if self._pool is None:
            self._pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)
        return self._pool

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        body = json.dumps({k: v for k, v in (params or {}).items() if v is not None}).encode()
        return self._post(method, body, "application/json")

    def upload(self, method: str, field: str, file: InputFile, params: dict[str, Any]) -> Any:
        """A method that carries a file: Telegram takes uploads only as multipart/form-data, where every other
        parameter is a form field too (JSON-encoded when it is not a string or a number, as the Bot API reads
        form fields)."""
        fields: dict[str, Any] = {}
        for key, value in params.items():
            if value is None:
                continue
            if isinstance(value, bool):
                fields[key] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                fields[key] = str(value)
            else:
                fields[key] = json.dumps(value)
        fields[field] = (file.filename, file.content, file.mime_type)
        # urllib3's own encoder (no new dependency); it writes a non-ASCII file name as UTF-8 the way browsers
        # do (HTML5 form encoding), which Telegram reads.
        body, content_type = urllib3.encode_multipart_formdata(fields)
        return self._post(method, body, content_type)

    def _post(self, method: str, body: bytes, content_type: str) -> Any:
        url = f"{self._api_base}/bot{self._token()}/{method}"
        try:
            response = self.pool.request(
                "POST", url, body=body, headers={"Content-Type": content_type}, timeout=self._timeout
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TelegramUnavailable(method, 0, f"network error: {type(exc).__name__}") from exc
        try:
            payload = json.loads(response.data or b"{}")
        except json.JSONDecodeError:
            payload = {}
        if response.status == 200 and payload.get("ok"):
            return payload.get("result")
        raise _error_from(method, response.status, payload)

    def send_message(self, chat_id: int, text: str, **extra: Any) -> dict[str, Any]:
        return self.call("sendMessage", {"chat_id": chat_id, "text": text, **extra})

    def send_photo(self, chat_id: int, photo: InputFile, *, caption: str = "", **extra: Any) -> dict[str, Any]:
        return self.upload("sendPhoto", "photo", photo, {"chat_id": chat_id, "caption": caption or None, **extra})

    def send_document(self, chat_id: int, document: InputFile, *, caption: str = "", **extra: Any) -> dict[str, Any]:
        return self.upload(
            "sendDocument", "document", document, {"chat_id": chat_id, "caption": caption or None, **extra}
        )


@dataclass(frozen=True)
class InputFile:
    """A file to upload: what Telegram shows as its name, its bytes and its MIME type."""

    filename: str
    content: bytes
    mime_type: str


def _error_from(method: str, status: int, payload: dict[str, Any]) -> TelegramError:
    code = int(payload.get("error_code") or status)
    description = str(payload.get("description") or f"HTTP {status}")
    if code == 429:
        retry_after = int((payload.get("parameters") or {}).get("retry_after") or 1)
        return TelegramRetryAfter(method, description, retry_after)
    if code == 403 or (code == 400 and any(m in description.lower() for m in _GONE_CHAT_MARKERS)):
        return TelegramChatUnavailable(method, code, description)
    if code == 401 or code == 404:
        # Telegram answers 401/404 to a wrong token: no message will ever get through.
        return ConfigurationErrorFromTelegram(method, code, description)
    if code == 400 or code == 413:
        # 413: a file over Telegram's upload limit; sending it again cannot help either.
        return TelegramBadRequest(method, code, description)
    return TelegramUnavailable(method, code, description)


class ConfigurationErrorFromTelegram(TelegramError, ConfigurationError):
    """The bot token is wrong or revoked."""
