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
  ``entities._parse_markdown_v2``): reserved characters outside formatting
  must be backslash-escaped, formatting markers must be balanced and properly
  nested.
  Edge cases such as ``___`` ambiguity or expandable-blockquote markers are
  handled loosely.
* Text length is measured in Unicode code points after entity parsing and
  trimming of surrounding whitespace (Telegram trims too).
* The rate limiter is a sliding-window model (see ``limits.RateLimiter``),
  driven by the injected clock so tests can advance virtual time by hand.
* sendPhoto and sendDocument take multipart uploads with Telegram's limits
  (``limits``); a photo's sides are read from its PNG or JPEG header
  (``uploads``). Each file that went out is saved beside the outbox, in
  ``<outbox>.files/<chat id>/<message id>-<file name>``, so that a test or a
  person can open what the user got; ``RecordedCall.file_path`` names it.
* All tokens share one bot state (chats, message ids, limits, webhook); extra
  tokens exist mainly to tell "known" from "unknown" tokens.

This module holds the public ``TelegramStandIn`` (lifecycle, the test API,
request dispatch with fault injection and the outbox) and ``RecordedCall``;
the package's other modules hold the parts it is built from: ``errors``,
``entities`` (parse_mode text), ``params`` (request decoding), ``uploads``
(uploaded files), ``limits``
(rate limiting), ``methods`` (the Bot API methods and bot state) and
``server`` (HTTP).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from expensebot_tools.local.telegram.errors import ApiError
from expensebot_tools.local.telegram.limits import RateLimiter
from expensebot_tools.local.telegram.methods import METHODS, BotApi
from expensebot_tools.local.telegram.params import decode_params
from expensebot_tools.local.telegram.server import Server
from expensebot_tools.local.telegram.uploads import Upload

__all__ = ["RecordedCall", "TelegramStandIn"]


@dataclass(frozen=True)
class RecordedCall:
    """One request as the stand-in saw and answered it."""

    at: datetime
    token: str
    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]
    # Where the file a successful sendPhoto or sendDocument carried was saved (None without a files directory;
    # the bytes are in params' Upload either way).
    file_path: Path | None = None


class TelegramStandIn(BotApi):
    """HTTP server that answers like api.telegram.org for the methods our bot uses."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] = ("123456:TEST-TOKEN",),
        clock: Callable[[], datetime] | None = None,
        outbox_path: str | Path | None = None,
        files_dir: str | Path | None = None,
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
        # Files go beside the outbox unless told otherwise; with neither, they stay in memory only.
        if files_dir is None and self._outbox_path is not None:
            files_dir = self._outbox_path.with_name(self._outbox_path.name + ".files")
        self._files_dir = Path(files_dir) if files_dir is not None else None
        self._fail_fraction = fail_fraction
        self._timeout_fraction = timeout_fraction
        self._hang_seconds = hang_seconds
        self._random = random.Random(seed)
        super().__init__(
            limiter=RateLimiter(global_rate, paid_rate, per_chat_interval, group_per_minute),
            enforce_limits=enforce_limits,
            accept_any_chat=accept_any_chat,
        )
        # One lock serialises all state changes: handling takes microseconds,
        # and it makes "check limit, then consume it" atomic across threads.
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.calls: list[RecordedCall] = []
        # Unexpected exceptions inside the stand-in, kept rather than printed.
        self.errors: list[BaseException] = []

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
        self._server = Server((self._host, self._port), self._handle, self.errors)
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
        makes the next that many sends (sendMessage, sendPhoto, sendDocument) answer 429 with `retry_after`, as
        Telegram's flood control does to a bot it finds too fast, whatever the stand-in's own limits."""
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

    def sent_files(self, chat_id: int | None = None) -> list[RecordedCall]:
        """The photos and documents that went out, in order."""
        with self._lock:
            calls = list(self.calls)
        return [
            call
            for call in calls
            if call.method in {"sendPhoto", "sendDocument"}
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

    def _handle(self, raw_path: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        token, method = "", ""
        if split.path.startswith("/bot") and "/" in split.path[4:]:
            token, method = split.path[4:].split("/", 1)
        decode_error: ApiError | None = None
        try:
            params = decode_params(split.query, content_type, body)
        except ApiError as error:
            params, decode_error = {}, error

        hang = False
        with self._lock:
            now = self._now()
            canonical = METHODS.get(method.lower())
            early: ApiError | None = None
            if not token or "/" in method:
                early = ApiError(404, "Not Found")
            elif token not in self._tokens:
                early = ApiError(401, "Unauthorized")
            elif canonical is None:
                early = ApiError(404, "Not Found")
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
                result = self.handlers[canonical](token, params, now)
            except ApiError as error:
                return self._record(now, token, canonical, params, error.code, error.payload())
            except Exception as error:  # a bug in the stand-in, not a client error
                self.errors.append(error)
                failure = ApiError(500, "Internal Server Error")
                return self._record(now, token, canonical, params, 500, failure.payload())
            payload = result if isinstance(result, dict) and "ok" in result else {"ok": True, "result": result}
            return self._record(now, token, canonical, params, 200, payload)

    def _draw_fault(self) -> tuple[ApiError | None, bool]:
        if self._fail_fraction <= 0 and self._timeout_fraction <= 0:
            return None, False
        if self._random.random() < self._fail_fraction:
            if self._random.random() < 0.5:
                return ApiError(502, "Bad Gateway"), False
            return ApiError(500, "Internal Server Error"), False
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
        file_path = self._save_file(params, payload) if status == 200 else None
        self.calls.append(RecordedCall(now, token, method, params, status, payload, file_path))
        if self._outbox_path is not None:
            line: dict[str, Any] = {"at": now.isoformat(), "method": method, "status": status}
            # Params can never overwrite the fixed keys; the token is never written; a file is written as its
            # name, type and size, and where it was saved.
            for key, value in params.items():
                if key in line:
                    continue
                if isinstance(value, Upload):
                    value = {**value.summary(), **({"path": str(file_path)} if file_path is not None else {})}
                line[key] = value
            if not payload.get("ok"):
                line.setdefault("error", payload.get("description"))
            with self._outbox_path.open("a", encoding="utf-8") as outbox:
                outbox.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        return status, payload

    def _save_file(self, params: dict[str, Any], payload: dict[str, Any]) -> Path | None:
        upload = next((value for value in params.values() if isinstance(value, Upload)), None)
        result = payload.get("result")
        if upload is None or self._files_dir is None or not isinstance(result, dict) or "chat" not in result:
            return None
        # The message id makes the name unique in its chat; the client's file name is reduced to its last part
        # so that no name can write outside the directory.
        name = Path(upload.filename.replace("\\", "/")).name or "file"
        path = self._files_dir / str(result["chat"]["id"]) / f"{result['message_id']}-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.content)
        return path
