"""Telegram's error envelope, shared by every part of the stand-in.

Request decoding, entity parsing and the methods all fail the same way, with
Telegram's ``{"ok": false, "error_code", "description"}`` answer, so the error
type lives in its own small module that each of them imports (and that imports
none of them back).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised by handlers; turned into Telegram's error envelope."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")
