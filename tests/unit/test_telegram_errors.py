"""Bot API error answers, sorted into what the caller should do about them."""

from __future__ import annotations

from typing import Any

import pytest

from expensebot.adapters.telegram import _error_from
from expensebot.errors import (
    ConfigurationError,
    TelegramBadRequest,
    TelegramChatUnavailable,
    TelegramError,
    TelegramRetryAfter,
    TelegramUnavailable,
)


def api_error(code: int, description: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error_code": code, "description": description, **extra}


def test_a_429_asks_to_retry_after_the_seconds_telegram_gives() -> None:
    error = _error_from(
        "sendMessage", 429, api_error(429, "Too Many Requests: retry after 7", parameters={"retry_after": 7})
    )

    assert isinstance(error, TelegramRetryAfter)
    assert error.retry_after == 7
    assert error.error_code == 429
    assert error.method == "sendMessage"


def test_a_429_without_retry_after_still_waits_a_little() -> None:
    error = _error_from("sendMessage", 429, api_error(429, "Too Many Requests"))

    assert isinstance(error, TelegramRetryAfter)
    assert error.retry_after >= 1


@pytest.mark.parametrize(
    ("code", "description"),
    [
        (403, "Forbidden: bot was blocked by the user"),
        (403, "Forbidden: user is deactivated"),
        (400, "Bad Request: chat not found"),
    ],
)
def test_a_chat_that_is_gone_for_good_is_unavailable(code: int, description: str) -> None:
    error = _error_from("sendMessage", code, api_error(code, description))

    assert isinstance(error, TelegramChatUnavailable)
    assert error.error_code == code
    assert error.description == description


@pytest.mark.parametrize(
    "description", ["Bad Request: message text is empty", "Bad Request: can't parse entities", "Bad Request"]
)
def test_another_400_is_a_bad_request(description: str) -> None:
    error = _error_from("sendMessage", 400, api_error(400, description))

    assert isinstance(error, TelegramBadRequest)
    assert not isinstance(error, TelegramChatUnavailable)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_unavailable_and_worth_retrying(status: int) -> None:
    error = _error_from("sendMessage", status, api_error(status, "Internal Server Error"))

    assert isinstance(error, TelegramUnavailable)
    assert error.error_code == status


def test_a_502_from_a_proxy_without_a_json_body_is_unavailable() -> None:
    error = _error_from("sendMessage", 502, {})

    assert isinstance(error, TelegramUnavailable)
    assert error.error_code == 502
    assert "502" in error.description


@pytest.mark.parametrize(("code", "description"), [(401, "Unauthorized"), (404, "Not Found")])
def test_a_wrong_token_is_a_configuration_error(code: int, description: str) -> None:
    error = _error_from("getMe", code, api_error(code, description))

    assert isinstance(error, ConfigurationError)
    assert isinstance(error, TelegramError)
    assert not isinstance(error, TelegramUnavailable)


def test_the_error_message_names_the_method_the_code_and_the_description() -> None:
    error = _error_from("sendMessage", 400, api_error(400, "Bad Request: message text is empty"))

    assert str(error) == "sendMessage: 400 Bad Request: message text is empty"
