"""Decoding of a Bot API request's parameters, the way Telegram reads them.

A method's parameters arrive in the query string, a JSON body, a form or a
multipart body; they are merged into one dict and coerced (integers, booleans,
JSON fields) so that the methods see the same values however the client encoded
them. The check of ``reply_markup``'s shapes is here too: it is about what a
parameter may contain, not about any method's state.
"""

from __future__ import annotations

import json
import re
from email.message import Message as _MimeHeaders
from email.parser import HeaderParser
from typing import Any
from urllib.parse import parse_qsl

from expensebot_tools.local.telegram.errors import bad_request
from expensebot_tools.local.telegram.limits import MAX_CALLBACK_DATA_BYTES
from expensebot_tools.local.telegram.uploads import upload_from_part

# Form encodings (aiogram, curl) carry everything as strings; these sets say
# which parameters Telegram would interpret as JSON, booleans or integers so
# handlers see the same values regardless of how the client encoded them.
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "link_preview_options",
        "allowed_updates",
        "entities",
        "caption_entities",
        "reply_parameters",
        "commands",
        "scope",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "allow_paid_broadcast",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "drop_pending_updates",
        "show_alert",
    }
)
_INT_FIELDS = frozenset(
    {
        "message_id",
        "message_thread_id",
        "reply_to_message_id",
        "max_connections",
        "cache_time",
        "offset",
        "limit",
        "timeout",
    }
)
_INTEGER_RE = re.compile(r"-?\d+")


def _header_params(content_type: str) -> tuple[str, dict[str, str]]:
    headers = _MimeHeaders()
    headers["content-type"] = content_type
    params = {key.lower(): str(value) for key, value in headers.get_params(failobj=[])[1:]}
    return headers.get_content_type(), params


def _parse_multipart(body: bytes, boundary: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    # Prefixing CRLF lets the first delimiter match the same pattern as the rest.
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    for chunk in (b"\r\n" + body).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        part = HeaderParser().parsestr(head.lstrip(b"\r\n").decode("utf-8", "surrogateescape"))
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_filename()
        if filename is not None:
            # A file part keeps its bytes (sendPhoto measures the image, the
            # stand-in saves the file); the outbox writes only its summary.
            content_type = part.get_content_type() if "content-type" in part else None
            fields[name] = upload_from_part(filename, data, content_type)
        else:
            charset = part.get_content_charset() or "utf-8"
            fields[name] = data.decode(charset, "replace")
    return fields


def _coerce(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in {"chat_id", "user_id"} and _INTEGER_RE.fullmatch(value):
        return int(value)
    if key in _INT_FIELDS and _INTEGER_RE.fullmatch(value):
        return int(value)
    if key in _BOOL_FIELDS and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    if key in _JSON_FIELDS and value.lstrip()[:1] in {"{", "["}:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def decode_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Merge query string and body into one dict; the body wins on conflicts."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    mime, options = _header_params(content_type) if content_type else ("", {})
    if body:
        if mime == "application/json":
            try:
                decoded = json.loads(body.decode(options.get("charset", "utf-8")))
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(decoded, dict):
                raise bad_request("can't parse JSON object")
            params.update(decoded)
        elif mime == "multipart/form-data":
            params.update(_parse_multipart(body, options.get("boundary", "")))
        else:
            # Telegram treats an unlabelled body as a form, and so do we.
            text = body.decode(options.get("charset", "utf-8"), "replace")
            params.update(parse_qsl(text, keep_blank_values=True))
    return {key: _coerce(key, value) for key, value in params.items()}


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def validate_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Check the reply_markup shapes Telegram rejects; return the markup to echo, if any."""
    if markup is None or markup == "":
        return None
    cant_parse = bad_request("can't parse reply keyboard markup JSON object")
    if not isinstance(markup, dict):
        raise cant_parse
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise cant_parse
                if set(button) == {"text"}:
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                    raise bad_request("BUTTON_DATA_INVALID")
        # Telegram echoes inline keyboards back in the Message, nothing else.
        return markup
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
        return None
    if "remove_keyboard" in markup or "force_reply" in markup:
        return None
    raise cant_parse
