"""A local stand-in for the Telegram Bot API (api.telegram.org).

The project's real HTTP clients (our urllib3 JSON client and aiogram 3's
``AiohttpSession`` via ``TelegramAPIServer.from_base(base_url)``) talk to this
server over real HTTP, so tests and the local simulation exercise the same
request encoding, error decoding and retry logic that runs against Telegram.

Fidelity choices worth knowing (each is deliberate):

* Errors use Telegram's exact envelope and, where we know them, Telegram's
  wording, because client code branches on ``error_code`` and sometimes on the
  description.
* HTML validation is *stricter* than Telegram: Telegram tolerates a bare ``&``
  or ``>`` in text, we reject them, so that a missing ``html.escape`` in our
  own code fails in tests instead of surfacing later when a user types ``<``.
* MarkdownV2 validation approximates tdlib's parser (see
  ``_parse_markdown_v2``): reserved characters outside formatting must be
  backslash-escaped, formatting markers must be balanced and properly nested.
  Edge cases such as ``___`` ambiguity or expandable-blockquote markers are
  handled loosely.
* Text length is measured in Unicode code points after entity parsing and
  trimming of surrounding whitespace (Telegram trims too).
* The rate limiter is a sliding-window model (see ``_RateLimiter``), driven by
  the injected clock so tests can advance virtual time by hand.
* All tokens share one bot state (chats, message ids, limits, webhook); extra
  tokens exist mainly to tell "known" from "unknown" tokens.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message as _MimeHeaders
from email.parser import HeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = ["RecordedCall", "TelegramStandIn"]

MAX_MESSAGE_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64

# Canonical spelling of every supported method, keyed by its lower-case form,
# because Telegram resolves method names case-insensitively.
_METHODS: dict[str, str] = {
    name.lower(): name
    for name in (
        "getMe",
        "sendMessage",
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


@dataclass(frozen=True)
class RecordedCall:
    """One request as the stand-in saw and answered it."""

    at: datetime
    token: str
    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]


class _ApiError(Exception):
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


def _bad_request(reason: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {reason}")


class _EntityError(Exception):
    """A formatting problem; becomes "can't parse entities: <reason>"."""


def _byte_offset(text: str, index: int) -> int:
    # Telegram reports positions in UTF-8 bytes, not characters.
    return len(text[:index].encode("utf-8"))


# --------------------------------------------------------------------------
# Formatting parsers: each returns the plain text a user would see, or raises
# _EntityError with a reason worded like Telegram's.
# --------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_HTML_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#[xX][0-9a-fA-F]+);")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_START_TAG_RE = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)")
_HTML_ATTR_RE = re.compile(r"""\s+([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


def _decode_html_entity(match: re.Match[str]) -> str | None:
    name = match.group(1)
    if name in _HTML_NAMED:
        return _HTML_NAMED[name]
    code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    if code <= 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _decode_attribute(value: str) -> str:
    # Inside attribute values (mostly hrefs with query strings) we stay as
    # lenient as Telegram: unknown '&' sequences are kept verbatim.
    def replace(match: re.Match[str]) -> str:
        decoded = _decode_html_entity(match)
        return match.group(0) if decoded is None else decoded

    return _HTML_ENTITY_RE.sub(replace, value)


def _parse_html(text: str) -> str:
    out: list[str] = []
    stack: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "&":
            match = _HTML_ENTITY_RE.match(text, i)
            decoded = _decode_html_entity(match) if match else None
            if match is None or decoded is None:
                raise _EntityError(f'Unescaped "&" at byte offset {_byte_offset(text, i)}')
            out.append(decoded)
            i = match.end()
        elif char == ">":
            raise _EntityError(f'Unescaped ">" at byte offset {_byte_offset(text, i)}')
        elif char != "<":
            out.append(char)
            i += 1
        elif text.startswith("</", i):
            close = text.find(">", i)
            if close < 0:
                raise _EntityError(f"Unclosed end tag at byte offset {_byte_offset(text, i)}")
            name = text[i + 2 : close].strip().lower()
            if not stack:
                raise _EntityError(f"Unexpected end tag at byte offset {_byte_offset(text, i)}")
            if name != stack[-1]:
                raise _EntityError(
                    f"Unmatched end tag at byte offset {_byte_offset(text, i)}, "
                    f'expected "</{stack[-1]}>", found "</{name}>"'
                )
            stack.pop()
            i = close + 1
        else:
            i = _parse_html_start_tag(text, i, stack)
    if stack:
        raise _EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _parse_html_start_tag(text: str, start: int, stack: list[str]) -> int:
    """Validate one start tag at ``start``, push it, return the index after it."""
    match = _HTML_START_TAG_RE.match(text, start)
    if match is None:
        raise _EntityError(f'Unescaped "<" at byte offset {_byte_offset(text, start)}')
    name = match.group(1).lower()
    if name not in _HTML_TAGS:
        raise _EntityError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, start)}')
    attributes: dict[str, str] = {}
    pos = match.end()
    while attr := _HTML_ATTR_RE.match(text, pos):
        raw_value = attr.group(2) or ""
        if raw_value[:1] in {'"', "'"}:
            raw_value = raw_value[1:-1]
        attributes[attr.group(1).lower()] = _decode_attribute(raw_value)
        pos = attr.end()
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text) or text[pos] != ">":
        raise _EntityError(f"Unclosed start tag at byte offset {_byte_offset(text, start)}")
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise _EntityError('Tag "span" must have class "tg-spoiler"')
    if name == "tg-emoji" and not attributes.get("emoji-id"):
        raise _EntityError('Tag "tg-emoji" must have attribute "emoji-id"')
    stack.append(name)
    return pos + 1


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strike": "Strikethrough",
    "spoiler": "Spoiler",
    "text_url": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "code": "Code",
    "pre": "Pre",
}


def _is_mdv2_escape(text: str, i: int) -> bool:
    # Telegram lets a backslash escape any character with code 1..126.
    return text[i] == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) <= 126


def _parse_markdown_v2(text: str) -> str:
    """Approximation of tdlib's MarkdownV2 parser.

    Only the innermost open entity can be closed (as in tdlib). Inside code and
    pre everything except the closing marker and backslash escapes is literal.
    '>' is accepted at the start of a line (blockquote), and '**>' / a trailing
    '||' on such a line are accepted as expandable-blockquote markers.
    """
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    i = 0
    n = len(text)
    quote_line = False
    while i < n:
        char = text[i]
        top = stack[-1][0] if stack else None
        if char == "\n":
            quote_line = False
        if _is_mdv2_escape(text, i):
            out.append(text[i + 1])
            i += 2
            continue
        if top in {"code", "pre"}:
            marker = "```" if top == "pre" else "`"
            if text.startswith(marker, i):
                stack.pop()
                i += len(marker)
            else:
                out.append(char)
                i += 1
            continue
        at_line_start = i == 0 or text[i - 1] == "\n"
        if at_line_start and text.startswith("**>", i):
            quote_line = True
            i += 3
            continue
        if at_line_start and char == ">":
            quote_line = True
            i += 1
            continue
        if char not in _MDV2_RESERVED:
            out.append(char)
            i += 1
            continue
        i = _mdv2_marker(text, i, stack, quote_line)
    if stack:
        kind, start = stack[-1]
        raise _EntityError(f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {_byte_offset(text, start)}")
    return "".join(out)


def _mdv2_marker(text: str, i: int, stack: list[tuple[str, int]], quote_line: bool) -> int:
    """Handle a reserved character outside code; return the next index."""
    char = text[i]
    top = stack[-1][0] if stack else None
    n = len(text)
    # Closing the innermost entity takes precedence over opening a new one.
    if top == "bold" and char == "*":
        stack.pop()
        return i + 1
    if top == "underline" and text.startswith("__", i):
        stack.pop()
        return i + 2
    if top == "italic" and char == "_":
        stack.pop()
        return i + 1
    if top == "strike" and char == "~":
        stack.pop()
        return i + 1
    if top == "spoiler" and text.startswith("||", i):
        stack.pop()
        return i + 2
    if top in {"text_url", "custom_emoji"} and char == "]":
        kind = top
        stack.pop()
        if i + 1 < n and text[i + 1] == "(":
            return _skip_mdv2_url(text, i + 1)
        if kind == "custom_emoji":
            raise _EntityError(
                f"Custom emoji entity must contain a tg://emoji URL at byte offset {_byte_offset(text, i)}"
            )
        return i + 1
    if quote_line and text.startswith("||", i) and (i + 2 == n or text[i + 2] == "\n"):
        return i + 2
    if text.startswith("__", i):
        stack.append(("underline", i))
        return i + 2
    openers = {"*": "bold", "_": "italic", "~": "strike", "[": "text_url"}
    if char in openers:
        stack.append((openers[char], i))
        return i + 1
    if text.startswith("||", i):
        stack.append(("spoiler", i))
        return i + 2
    if text.startswith("![", i):
        stack.append(("custom_emoji", i))
        return i + 2
    if text.startswith("```", i):
        stack.append(("pre", i))
        return _skip_pre_language(text, i + 3)
    if char == "`":
        stack.append(("code", i))
        return i + 1
    raise _EntityError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


def _skip_mdv2_url(text: str, open_paren: int) -> int:
    i = open_paren + 1
    while i < len(text):
        if _is_mdv2_escape(text, i):
            i += 2
            continue
        if text[i] == ")":
            return i + 1
        i += 1
    raise _EntityError(f"Can't find end of a URL at byte offset {_byte_offset(text, open_paren)}")


def _skip_pre_language(text: str, i: int) -> int:
    # "```python\ncode```": a first line without spaces names the language and
    # is not part of the visible text.
    newline = text.find("\n", i)
    if newline >= 0 and text.find("```", i) > newline:
        first_line = text[i:newline]
        if first_line and not any(c.isspace() for c in first_line):
            return newline + 1
    return i


def _parse_markdown_legacy(text: str) -> str:
    """Telegram's legacy Markdown: no nesting, only unclosed markers fail."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.append(char)
            i += 1
            continue
        start = i
        if text.startswith("```", i):
            end_marker = "```"
            i = _skip_pre_language(text, i + 3)
        else:
            end_marker = "]" if char == "[" else char
            i += 1
        end = text.find(end_marker, i)
        if end < 0:
            raise _EntityError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, start)}")
        out.append(text[i:end])
        i = end + len(end_marker)
        if char == "[" and i < n and text[i] == "(":
            close = text.find(")", i)
            if close >= 0:
                i = close + 1
    return "".join(out)


def _visible_text(text: str, parse_mode: str) -> str:
    mode = parse_mode.lower()
    try:
        if mode == "html":
            plain = _parse_html(text)
        elif mode == "markdownv2":
            plain = _parse_markdown_v2(text)
        elif mode == "markdown":
            plain = _parse_markdown_legacy(text)
        else:
            plain = text
    except _EntityError as error:
        raise _bad_request(f"can't parse entities: {error}") from None
    return plain.strip()


# --------------------------------------------------------------------------
# Request decoding
# --------------------------------------------------------------------------


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
            # Uploads are summarised: tests care that a file arrived, and raw
            # bytes would not survive the JSON outbox anyway.
            fields[name] = {"filename": filename, "size": len(data)}
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


def _decode_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Merge query string and body into one dict; the body wins on conflicts."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    mime, options = _header_params(content_type) if content_type else ("", {})
    if body:
        if mime == "application/json":
            try:
                decoded = json.loads(body.decode(options.get("charset", "utf-8")))
            except ValueError:
                raise _bad_request("can't parse JSON object") from None
            if not isinstance(decoded, dict):
                raise _bad_request("can't parse JSON object")
            params.update(decoded)
        elif mime == "multipart/form-data":
            params.update(_parse_multipart(body, options.get("boundary", "")))
        else:
            # Telegram treats an unlabelled body as a form, and so do we.
            text = body.decode(options.get("charset", "utf-8"), "replace")
            params.update(parse_qsl(text, keep_blank_values=True))
    return {key: _coerce(key, value) for key, value in params.items()}


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _validate_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Check the reply_markup shapes Telegram rejects; return the markup to echo, if any."""
    if markup is None or markup == "":
        return None
    cant_parse = _bad_request("can't parse reply keyboard markup JSON object")
    if not isinstance(markup, dict):
        raise cant_parse
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise cant_parse
                if set(button) == {"text"}:
                    raise _bad_request("text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                    raise _bad_request("BUTTON_DATA_INVALID")
        # Telegram echoes inline keyboards back in the Message, nothing else.
        return markup
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
        return None
    if "remove_keyboard" in markup or "force_reply" in markup:
        return None
    raise cant_parse


# --------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------


def _window_for(rate: float) -> tuple[timedelta, int]:
    """Model "rate per second" as "at most N sends in any window of T seconds".

    For rate >= 1 this is N = floor(rate) per 1 s; slower rates widen the
    window so that e.g. 0.5/s becomes 1 send per 2 s instead of never.
    """
    seconds = max(1.0, 1.0 / rate) if rate > 0 else 1.0
    allowed = max(1, math.floor(rate * seconds + 1e-9))
    return timedelta(seconds=seconds), allowed


class _RateLimiter:
    """Sliding-window limiter; callers hold the stand-in's lock.

    Paid and ordinary sends share one log of global sends: a paid send is only
    measured against ``paid_rate``, but it still counts against the ordinary
    budget, so ordinary sends stall while a paid burst is in flight.
    """

    def __init__(self, global_rate: float, paid_rate: float, per_chat_interval: float, group_per_minute: int) -> None:
        self._normal = _window_for(global_rate)
        self._paid = _window_for(paid_rate)
        self._chat_interval = timedelta(seconds=per_chat_interval)
        self._group_window = timedelta(minutes=1)
        self._group_allowed = max(1, group_per_minute)
        self.clear()

    def clear(self) -> None:
        self._global: deque[datetime] = deque()
        self._last_private: dict[int, datetime] = {}
        self._group: dict[int, deque[datetime]] = {}

    @staticmethod
    def _wait_in_window(sends: Iterable[datetime], now: datetime, window: timedelta, allowed: int) -> float:
        recent = [at for at in sends if at > now - window]
        if len(recent) < allowed:
            return 0.0
        # The send that has to leave the window before one more fits.
        return (recent[len(recent) - allowed] + window - now).total_seconds()

    def wait_seconds(self, chat_id: int, paid: bool, now: datetime) -> float:
        window, allowed = self._paid if paid else self._normal
        waits = [self._wait_in_window(self._global, now, window, allowed)]
        if chat_id < 0:
            waits.append(
                self._wait_in_window(self._group.get(chat_id, ()), now, self._group_window, self._group_allowed)
            )
        elif chat_id in self._last_private:
            waits.append((self._last_private[chat_id] + self._chat_interval - now).total_seconds())
        return max(waits)

    def consume(self, chat_id: int, now: datetime) -> None:
        self._global.append(now)
        horizon = max(self._normal[0], self._paid[0])
        while self._global and self._global[0] <= now - horizon:
            self._global.popleft()
        if chat_id < 0:
            sends = self._group.setdefault(chat_id, deque())
            sends.append(now)
            while sends and sends[0] <= now - self._group_window:
                sends.popleft()
        else:
            self._last_private[chat_id] = now


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    # Handler threads are daemons so a forgotten stop() never blocks interpreter
    # exit; socketserver does not track daemon threads, so stop() joins them
    # itself (see join_workers) after unblocking them.
    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog of 5 resets connections when a
    # simulation fans out dozens of concurrent sends.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], standin: TelegramStandIn) -> None:
        self.standin = standin
        self._open: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Registered before the thread starts, so stop() can never miss a
        # connection and then wait on an idle keep-alive read.
        worker = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="telegram-standin-request",
            daemon=True,
        )
        with self._open_lock:
            self._open.add(request)
            self._workers = [thread for thread in self._workers if thread.is_alive()]
            self._workers.append(worker)
        worker.start()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def abort_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._open_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out (timeout injection) close early; the late write
        # fails and that is expected. Anything else is kept for inspection
        # instead of being printed, as the stand-in must stay quiet.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError | TimeoutError):
            self.standin.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive matters: aiohttp and urllib3 pool connections, and the local
    # simulation sends thousands of messages.
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 60
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add
    # ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Drain optional trailers up to the blank line.
                    while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            status, payload = 400, _bad_request("invalid request body").payload()
            self.close_connection = True
        else:
            status, payload = self.server.standin._handle(self.path, self.headers.get("Content-Type", ""), body)
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# (token, params, now) -> result, or a full payload dict when it needs a description.
_MethodHandler = Callable[[str, dict[str, Any], datetime], Any]


class TelegramStandIn:
    """HTTP server that answers like api.telegram.org for the methods our bot uses."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] = ("123456:TEST-TOKEN",),
        clock: Callable[[], datetime] | None = None,
        outbox_path: str | Path | None = None,
        global_rate: float = 30.0,
        paid_rate: float = 1000.0,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        enforce_limits: bool = True,
        accept_any_chat: bool = False,
        fail_fraction: float = 0.0,
        timeout_fraction: float = 0.0,
        hang_seconds: float = 30.0,
        seed: int = 0,
    ) -> None:
        self._host = host
        self._port = port
        self._tokens = frozenset(tokens)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._outbox_path = Path(outbox_path) if outbox_path is not None else None
        self._enforce_limits = enforce_limits
        self._accept_any_chat = accept_any_chat
        self._fail_fraction = fail_fraction
        self._timeout_fraction = timeout_fraction
        # (how many more sendMessage calls answer 429, with which retry_after): an injected flood limit.
        self._forced_429: tuple[int, int] = (0, 0)
        self._hang_seconds = hang_seconds
        self._random = random.Random(seed)
        self._limiter = _RateLimiter(global_rate, paid_rate, per_chat_interval, group_per_minute)
        # One lock serialises all state changes: handling takes microseconds,
        # and it makes "check limit, then consume it" atomic across threads.
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: dict[int, str] = {}
        self._languages: dict[int, str] = {}
        self._last_message_id: dict[int, int] = {}
        self._messages: dict[int, dict[int, dict[str, Any]]] = {}
        self._webhook: dict[str, Any] = {}
        self._webhook_error: tuple[int, str] | None = None
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[RecordedCall] = []
        # Unexpected exceptions inside the stand-in, kept rather than printed.
        self.errors: list[BaseException] = []
        self._handlers: dict[str, _MethodHandler] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
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

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("TelegramStandIn is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self._host, self._port), self)
        # A short poll interval keeps stop() fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="telegram-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes requests that are "hanging"
        server.shutdown()
        server.server_close()  # no new connections from here on
        server.abort_connections()  # wakes handlers idling on keep-alive reads
        # Bounded so that a handler stuck somewhere unforeseen cannot hang the
        # caller; such a thread is a daemon and dies with the process.
        server.join_workers(timeout=5.0)
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------- test API

    def add_chat(
        self,
        chat_id: int,
        *,
        type: str = "private",  # mirrors Telegram's field name
        first_name: str = "User",
        username: str | None = None,
        language_code: str = "ru",
        title: str | None = None,
    ) -> None:
        chat: dict[str, Any] = {"id": chat_id, "type": type}
        if type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = title or first_name
        if username is not None:
            chat["username"] = username
        with self._lock:
            self._chats[chat_id] = chat
            # Not part of a Chat object, but kept for anyone building updates.
            self._languages[chat_id] = language_code

    def block(self, chat_id: int, reason: str = "bot was blocked by the user") -> None:
        with self._lock:
            self._blocked[chat_id] = reason

    def unblock(self, chat_id: int) -> None:
        with self._lock:
            self._blocked.pop(chat_id, None)

    def set_failures(self, *, fail_fraction: float | None = None, timeout_fraction: float | None = None,
                     too_many_requests: int | None = None, retry_after: int = 30) -> None:
        """Changes the injected failure rates while running (an outage starts or ends); `too_many_requests`
        makes the next that many sendMessage calls answer 429 with `retry_after`, as Telegram's flood control
        does to a bot it finds too fast, whatever the stand-in's own limits."""
        with self._lock:
            if too_many_requests is not None:
                self._forced_429 = (max(0, too_many_requests), max(1, retry_after))
            if fail_fraction is not None:
                self._fail_fraction = fail_fraction
            if timeout_fraction is not None:
                self._timeout_fraction = timeout_fraction

    def sent_messages(self, chat_id: int | None = None) -> list[RecordedCall]:
        with self._lock:
            calls = list(self.calls)
        return [
            call
            for call in calls
            if call.method == "sendMessage"
            and call.status == 200
            and (chat_id is None or call.response["result"]["chat"]["id"] == chat_id)
        ]

    def reset(self) -> None:
        with self._lock:
            # Cleared in place so references handed out earlier stay live.
            self.calls.clear()
            self._limiter.clear()

    @property
    def webhook(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._webhook)

    def set_webhook_error(self, message: str | None) -> None:
        with self._lock:
            self._webhook_error = None if message is None else (self._unix(self._now()), message)

    # ----------------------------------------------------------- internals

    def _now(self) -> datetime:
        now = self._clock()
        # A naive clock is taken to be UTC rather than local time, so results
        # do not depend on the machine's time zone.
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

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

    def _handle(self, raw_path: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        token, method = "", ""
        if split.path.startswith("/bot") and "/" in split.path[4:]:
            token, method = split.path[4:].split("/", 1)
        decode_error: _ApiError | None = None
        try:
            params = _decode_params(split.query, content_type, body)
        except _ApiError as error:
            params, decode_error = {}, error

        hang = False
        with self._lock:
            now = self._now()
            canonical = _METHODS.get(method.lower())
            early: _ApiError | None = None
            if not token or "/" in method:
                early = _ApiError(404, "Not Found")
            elif token not in self._tokens:
                early = _ApiError(401, "Unauthorized")
            elif canonical is None:
                early = _ApiError(404, "Not Found")
            elif decode_error is not None:
                early = decode_error
            else:
                early, hang = self._draw_fault()
            if early is not None:
                return self._record(now, token, canonical or method, params, early.code, early.payload())

        if hang:
            # Waiting on the stop event (not time.sleep) lets stop() finish fast.
            self._stopping.wait(self._hang_seconds)

        assert canonical is not None
        with self._lock:
            now = self._now()
            try:
                result = self._handlers[canonical](token, params, now)
            except _ApiError as error:
                return self._record(now, token, canonical, params, error.code, error.payload())
            except Exception as error:  # a bug in the stand-in, not a client error
                self.errors.append(error)
                failure = _ApiError(500, "Internal Server Error")
                return self._record(now, token, canonical, params, 500, failure.payload())
            payload = result if isinstance(result, dict) and "ok" in result else {"ok": True, "result": result}
            return self._record(now, token, canonical, params, 200, payload)

    def _draw_fault(self) -> tuple[_ApiError | None, bool]:
        if self._fail_fraction <= 0 and self._timeout_fraction <= 0:
            return None, False
        if self._random.random() < self._fail_fraction:
            if self._random.random() < 0.5:
                return _ApiError(502, "Bad Gateway"), False
            return _ApiError(500, "Internal Server Error"), False
        return None, self._random.random() < self._timeout_fraction

    def _record(
        self,
        now: datetime,
        token: str,
        method: str,
        params: dict[str, Any],
        status: int,
        payload: dict[str, Any],
    ) -> tuple[int, dict[str, Any]]:
        self.calls.append(RecordedCall(now, token, method, params, status, payload))
        if self._outbox_path is not None:
            line: dict[str, Any] = {"at": now.isoformat(), "method": method, "status": status}
            # Params can never overwrite the fixed keys; the token is never written.
            line.update({key: value for key, value in params.items() if key not in line})
            if not payload.get("ok"):
                line.setdefault("error", payload.get("description"))
            with self._outbox_path.open("a", encoding="utf-8") as outbox:
                outbox.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        return status, payload

    # ------------------------------------------------------------- chats

    def _resolve_chat(self, params: Mapping[str, Any]) -> dict[str, Any]:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username") == raw[1:]:
                    return chat
            # An unknown @username cannot be invented: Telegram needs a numeric id.
            raise _bad_request("chat not found")
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise _bad_request("chat not found")
        if raw not in self._chats:
            if not self._accept_any_chat:
                raise _bad_request("chat not found")
            if raw > 0:
                self._chats[raw] = {"id": raw, "type": "private", "first_name": "User"}
            else:
                kind = "supergroup" if str(raw).startswith("-100") else "group"
                self._chats[raw] = {"id": raw, "type": kind, "title": f"Chat {raw}"}
        return self._chats[raw]

    def _check_not_blocked(self, chat_id: int) -> None:
        if chat_id in self._blocked:
            raise _ApiError(403, f"Forbidden: {self._blocked[chat_id]}")

    @staticmethod
    def _message_text(params: Mapping[str, Any]) -> str:
        raw = params.get("text")
        if raw is None or raw == "":
            raise _bad_request("message text is empty")
        text = raw if isinstance(raw, str) else json.dumps(raw)
        parse_mode = params.get("parse_mode") or ""
        if not isinstance(parse_mode, str) or parse_mode.lower() not in {
            "",
            "html",
            "markdownv2",
            "markdown",
        }:
            raise _bad_request("unsupported parse_mode")
        plain = _visible_text(text, parse_mode)
        if not plain:
            raise _bad_request("message text is empty")
        if len(plain) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        return plain

    # ----------------------------------------------------------- methods

    def _get_me(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        return self._bot_user(token)

    def _send_message(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        if params.get("chat_id") in {None, ""}:
            raise _bad_request("chat_id is empty")
        # Same order as the Bot API server: text problems before chat problems.
        text = self._message_text(params)
        markup = _validate_reply_markup(params.get("reply_markup"))
        chat = self._resolve_chat(params)
        chat_id: int = chat["id"]
        self._check_not_blocked(chat_id)
        remaining, forced_retry_after = self._forced_429
        if remaining > 0:
            self._forced_429 = (remaining - 1, forced_retry_after)
            raise _ApiError(429, f"Too Many Requests: retry after {forced_retry_after}", retry_after=forced_retry_after)
        if self._enforce_limits:
            wait = self._limiter.wait_seconds(chat_id, _is_true(params.get("allow_paid_broadcast")), now)
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                raise _ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
            self._limiter.consume(chat_id, now)
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": self._bot_user(token),
            "chat": dict(chat),
            "date": self._unix(now),
            "text": text,
        }
        if markup is not None:
            message["reply_markup"] = markup
        self._messages.setdefault(chat_id, {})[message_id] = message
        return message

    def _edit_message_text(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        text = self._message_text(params)
        markup = _validate_reply_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            return True
        chat = self._resolve_chat(params)
        self._check_not_blocked(chat["id"])
        message = self._messages.get(chat["id"], {}).get(params.get("message_id", -1))
        if message is None:
            raise _bad_request("message to edit not found")
        if message["text"] == text and message.get("reply_markup") == markup:
            raise _bad_request(
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
            raise _bad_request("message to delete not found")
        return True

    def _send_chat_action(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        chat = self._resolve_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        self._check_not_blocked(chat["id"])
        return True

    def _answer_callback_query(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        if not params.get("callback_query_id"):
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        return True

    def _get_updates(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        if self._webhook.get("url"):
            raise _ApiError(
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
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret not in {None, ""} and not (isinstance(secret, str) and _SECRET_TOKEN_RE.fullmatch(secret)):
            raise _bad_request("secret token contains unallowed characters")
        max_connections = params.get("max_connections", 40)
        if not isinstance(max_connections, int) or not 1 <= max_connections <= 100:
            raise _bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed_updates = params.get("allowed_updates")
        if allowed_updates is not None and not isinstance(allowed_updates, list):
            raise _bad_request("can't parse allowed updates list")
        webhook: dict[str, Any] = {"url": url, "max_connections": max_connections}
        if secret:
            webhook["secret_token"] = secret
        if allowed_updates is not None:
            webhook["allowed_updates"] = allowed_updates
        if "drop_pending_updates" in params:
            webhook["drop_pending_updates"] = _is_true(params["drop_pending_updates"])
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
            raise _bad_request('parameter "commands" is required')
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_RE.fullmatch(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(params)] = commands
        return True

    def _delete_my_commands(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _get_my_commands(self, token: str, params: dict[str, Any], now: datetime) -> Any:
        return self._commands.get(self._commands_key(params), [])
