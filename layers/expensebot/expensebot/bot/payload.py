"""Reading a webhook body into a JSON object that Telegram could have sent, or saying which field is wrong.

aiogram's models are pydantic in lax mode, which takes what Telegram never sends and reads it as something
else: `"update_id": true` as update 1, a float as an integer, a `date` above 2·10^10 as milliseconds, an ISO
string as a naive datetime. And Python's json module takes NaN, reads 1e400 as infinity, and raises
RecursionError on deep nesting. Each of those is refused here, naming the field, before aiogram sees the
body; the webhook answers 400 (Telegram itself never sends such a body, so no retry of it is lost).

What Telegram sends (https://core.telegram.org/bots/api): integers of at most 52 significant bits for user
and chat ids and never more than 64 bits anywhere; Unix times in whole seconds; text as valid UTF-8 JSON.
Pure functions of the body: no aiogram, no I/O."""

from __future__ import annotations

import json
import math
from typing import Any

# A real update is a few kilobytes (4,096 characters of text and their entities, a replied-to message);
# anything this large did not come from Telegram and is refused before it is parsed.
MAX_BODY_BYTES = 1024 * 1024
# Updates nest a handful of levels (update → message → reply_to_message → entities → user); the JSON
# parser itself recurses and fails near Python's recursion limit (1,000) with RecursionError.
MAX_DEPTH = 32
# Every Telegram Integer fits a signed 64-bit integer (ids have at most 52 significant bits), and so
# every id column here is a bigint.
MAX_INTEGER = 2**63 - 1
# pydantic reads an integer datetime above 2·10^10 as milliseconds; Telegram's dates are whole seconds.
MAX_UNIX_SECONDS = 2 * 10**10


class BadBody(ValueError):
    """The body is not a Telegram update; the message names what is wrong (the webhook's 400 answer).
    `status` is 413 for a body too large to read."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _refuse_constant(name: str) -> Any:
    raise BadBody(f"body is not JSON Telegram sends: {name} is not a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadBody(f"body is not JSON Telegram sends: {text[:20]} is out of range")
    return value


def read_update(body: str | bytes) -> dict[str, Any]:
    """The update as a JSON object, every value of a kind Telegram sends; BadBody naming the first field
    that is not."""
    # surrogatepass: a lone surrogate is refused below, naming its field, not here as a crash.
    size = len(body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body)
    if size > MAX_BODY_BYTES:
        raise BadBody(f"body is {size} bytes; a Telegram update is at most {MAX_BODY_BYTES}", status=413)
    try:
        payload = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise BadBody(f"body nests deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise BadBody(f"body is not JSON: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise BadBody("body is not UTF-8") from exc
    except ValueError as exc:
        if isinstance(exc, BadBody):
            raise
        # int() refuses more than 4,300 digits (CVE-2020-10735); no Telegram integer has 20.
        raise BadBody("body is not JSON Telegram sends: a number has too many digits") from exc
    if not isinstance(payload, dict):
        raise BadBody("not a Telegram update: the body is not a JSON object")
    update_id = payload.get("update_id")
    if type(update_id) is not int or not 0 <= update_id <= MAX_INTEGER:
        raise BadBody(f"update_id must be a whole number from 0 to {MAX_INTEGER}")
    _check_values(payload)
    return payload


def _check_values(payload: dict[str, Any]) -> None:
    """Walks the whole object (iteratively: the depth is what is checked) once."""
    stack: list[tuple[str, Any, int]] = [("", payload, 1)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadBody(f"body nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                field = f"{path}.{key}" if path else key
                _check_field(field, key, item)
                stack.append((field, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item, depth + 1) for index, item in enumerate(value))
        else:
            _check_scalar(path, value)


def _check_field(field: str, key: str, value: Any) -> None:
    # Telegram's ids are Integer or String, never Boolean or Float; pydantic would read true as 1, 7.0 as 7.
    if (key == "id" or key.endswith("_id")) and isinstance(value, bool | float):
        raise BadBody(f"{field} must be a whole number or a string")
    is_date = key == "date" or key.endswith("_date")
    if is_date and not (type(value) is int and 0 <= value < MAX_UNIX_SECONDS):
        raise BadBody(f"{field} must be a Unix time in whole seconds (0 to {MAX_UNIX_SECONDS - 1})")


def _check_scalar(field: str, value: Any) -> None:
    if type(value) is int and not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
        raise BadBody(f"{field} is out of range for a Telegram Integer (64 bits)")
    if isinstance(value, str):
        # PostgreSQL's text cannot hold U+0000, and a lone surrogate ("\ud800") is no UTF-8 at all: Telegram
        # sends neither, and storing either would fail the update's transaction.
        if "\x00" in value:
            raise BadBody(f"{field} contains a NUL character")
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise BadBody(f"{field} is not valid Unicode (a lone surrogate)") from exc
