"""The project's own exceptions: adapters translate driver errors into these, so callers never catch
psycopg2 or botocore errors by their text."""

from __future__ import annotations


class ExpenseBotError(Exception):
    """Base of every error the library raises on purpose."""


class ConfigurationError(ExpenseBotError):
    """A setting is missing or invalid; the message says which and what to do."""


class DatabaseUnavailable(ExpenseBotError):
    """The database could not be reached; a retry may succeed."""


class InvalidMessage(ExpenseBotError):
    """A queue message that no retry can fix: unknown task or a payload that does not validate."""


class EnqueueError(ExpenseBotError):
    """SQS refused some messages even after retrying them."""


class TelegramError(ExpenseBotError):
    """The Bot API answered with an error."""

    def __init__(self, method: str, error_code: int, description: str) -> None:
        super().__init__(f"{method}: {error_code} {description}")
        self.method = method
        self.error_code = error_code
        self.description = description


class TelegramRetryAfter(TelegramError):
    """429: Telegram asks us to wait `retry_after` seconds."""

    def __init__(self, method: str, description: str, retry_after: int) -> None:
        super().__init__(method, 429, description)
        self.retry_after = retry_after


class TelegramChatUnavailable(TelegramError):
    """403 (blocked by the user, user deactivated) or 400 chat not found: final for this chat."""


class TelegramBadRequest(TelegramError):
    """Another 400: the message itself is wrong; retrying cannot help."""


class TelegramUnavailable(TelegramError):
    """5xx, a timeout or a network error: retry with backoff."""
