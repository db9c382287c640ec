"""The Bot API over HTTPS with urllib3 (already in the Lambda runtime through botocore): job and worker
functions send messages without importing aiogram, whose import alone costs seconds of cold start."""

from __future__ import annotations

import json
from collections.abc import Callable
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
        url = f"{self._api_base}/bot{self._token()}/{method}"
        body = json.dumps({k: v for k, v in (params or {}).items() if v is not None}).encode()
        try:
            response = self.pool.request(
                "POST", url, body=body, headers={"Content-Type": "application/json"}, timeout=self._timeout
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
    if code == 400:
        return TelegramBadRequest(method, code, description)
    return TelegramUnavailable(method, code, description)


class ConfigurationErrorFromTelegram(TelegramError, ConfigurationError):
    """The bot token is wrong or revoked."""
