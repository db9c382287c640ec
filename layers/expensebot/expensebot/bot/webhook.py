"""The webhook: API Gateway (HTTP API, payload 2.0) → secret check → one update, processed once.

- The secret token header is compared in constant time; a wrong or missing one is refused with 401.
- The update is marked processed in the same transaction as its effects, so Telegram's redelivery of
  a slow or failed update never stores a second expense.
- A failure a retry can fix (database down) answers 503 and Telegram retries; a failure no retry can
  fix while handling an update answers 200 (logged and counted), because Telegram holds the chat's
  later updates behind a failing one for up to a day. A body that is not a Telegram update at all
  answers 400 naming the field (413 when over 1 MiB): Telegram itself never sends one, so it is a
  caller's mistake to report (payload.py says what is refused and why).
- A command addressed to the bot by name ("/undo@expensebot") needs the bot's username, which aiogram
  asks Telegram for (`getMe`) once per execution environment. That call is made before the update's
  transaction, and a Telegram failure there answers 503 so that Telegram redelivers the update: it never
  runs inside the transaction, where a failure would have acknowledged the update with nothing stored.
- Updates run through `Dispatcher.feed_update`, awaited: `feed_webhook_update` hands slow handlers to a
  background task that Lambda would freeze once the invocation returns.
- SnapStart: init imports aiogram and builds the dispatcher (no ids, no connections); the restore hooks
  close whatever connection an environment holds, so that a restored copy opens its own, and reseed
  `random`, whose state would otherwise be the same in every copy of the snapshot.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import random
import sys
from functools import cache
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from pydantic import ValidationError

from expensebot.bootstrap import Runtime, get_runtime
from expensebot.bot.context import UserMiddleware
from expensebot.bot.handlers import get_routers
from expensebot.bot.payload import BadBody, read_update
from expensebot.errors import ConfigurationError, DatabaseUnavailable, EnqueueError
from expensebot.observability import logger, metrics

SECRET_HEADER = "x-telegram-bot-api-secret-token"


class _BotApp:
    """One event loop, one Bot (and its HTTP session) and one Dispatcher per execution environment, kept
    across warm invocations: a session bound to a closed loop fails with "Event loop is closed"."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.bot = Bot(
            runtime.bot_token(),
            session=AiohttpSession(api=TelegramAPIServer.from_base(runtime.settings.telegram_api_base)),
        )
        self.dispatcher = _dispatcher()

    def close(self) -> None:
        self.loop.run_until_complete(self.bot.session.close())
        self.loop.close()


@cache
def _dispatcher() -> Dispatcher:
    # One per process: the feature routers are module-level and attach to a single parent.
    dispatcher = Dispatcher()
    dispatcher.message.outer_middleware(UserMiddleware())
    dispatcher.include_routers(*get_routers())
    return dispatcher


_app: _BotApp | None = None


def _get_app() -> _BotApp:
    global _app
    runtime = get_runtime()
    if _app is None or _app.runtime is not runtime:
        if _app is not None:
            _app.close()
        _app = _BotApp(runtime)
    return _app


def reset() -> None:
    """Forget the bot and its loop, so the next update builds them anew (tests; the SnapStart hooks)."""
    global _app
    if _app is not None:
        _app.close()
    _app = None


def warm_up() -> None:
    """What init can do ahead of the first update without opening a connection or creating anything
    unique: build the dispatcher and its routers, which SnapStart then keeps in the snapshot."""
    _dispatcher()


def before_snapshot() -> None:
    """No connection goes into a snapshot: its peer would see one socket used by many restored copies."""
    _close_connections()


def after_restore() -> None:
    """A restored environment opens its own database and HTTP connections on first use, in a new event
    loop, and draws random numbers from its own seed."""
    _close_connections()
    random.seed()


def _close_connections() -> None:
    if _app is not None:
        _app.runtime.db.close()
    reset()


def register_snapstart_hooks() -> bool:
    """Registers the hooks with the Lambda runtime's `snapshot_restore_py`; False where it is not
    installed (outside Lambda), where there are no snapshots to take."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    return True


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def handle_webhook_event(event: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway HTTP API event in, an HTTP response out."""
    runtime = get_runtime()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        expected = runtime.webhook_secret()
    except ConfigurationError:
        logger.exception("webhook secret not configured")
        return _response(503, {"error": "webhook secret not configured"})
    given = headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        metrics.add_metric(name="WebhookUnauthorized", unit="Count", value=1)
        return _response(401, {"error": "wrong or missing secret token"})

    try:
        payload = _decode_body(event)
    except BadBody as exc:
        metrics.add_metric(name="WebhookBadRequests", unit="Count", value=1)
        return _response(exc.status, {"error": str(exc)})

    try:
        app = _get_app()
    except ConfigurationError:
        # The bot token's secret could not be read: a retry helps once it can.
        logger.exception("bot not configured")
        return _response(503, {"error": "bot not configured"})
    try:
        update = Update.model_validate(payload, context={"bot": app.bot})
    except ValidationError as exc:
        metrics.add_metric(name="WebhookBadRequests", unit="Count", value=1)
        return _response(400, {"error": f"not a Telegram update: {_first_problem(exc)}"})
    try:
        return app.loop.run_until_complete(_process(app, update))
    except Exception as exc:
        # Outside the transaction (the reply, the bookkeeping of a failure): whatever it is, this update
        # caused it and a retry would meet it again, so it is acknowledged rather than left to hold the chat.
        logger.exception("update failed outside its transaction; acknowledged so the chat is not blocked")
        metrics.add_metric(name="FailedUpdates", unit="Count", value=1)
        _mark_failed(app.runtime, update.update_id, exc)
        return _response(200, {"status": "failed"})


def _decode_body(event: dict[str, Any]) -> dict[str, Any]:
    body: str | bytes = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadBody("body is not valid base64") from exc
    return read_update(body)


def _first_problem(exc: ValidationError) -> str:
    """The first field pydantic refused and why ("message.chat: Field required"), plus how many more:
    enough to fix a request, without the input values (or pydantic's links) echoed back."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _command_to_a_bot(update: Update) -> bool:
    """Whether aiogram's Command filters will need the bot's own username for this update: a message
    whose first word is "/command@name" (the same split as `CommandObject` / `Command.extract_command`)."""
    message = update.message
    text = message and (message.text or message.caption)
    if not text or not text.startswith("/"):
        return False
    return bool(text.split(maxsplit=1)[0][1:].partition("@")[2])


async def _process(app: _BotApp, update: Update) -> dict[str, Any]:
    runtime = app.runtime
    logger.append_keys(update_id=update.update_id)
    if _command_to_a_bot(update):
        try:
            await app.bot.me()  # cached on the Bot after the first call: one getMe per environment
        except (TelegramAPIError, OSError, TimeoutError):
            # Nothing of the update is stored yet and nothing in it caused this: Telegram retries it.
            logger.exception("getMe failed; Telegram will redeliver the update")
            metrics.add_metric(name="RetriedUpdates", unit="Count", value=1)
            return _response(503, {"error": "temporarily unavailable"})
    try:
        with runtime.db.transaction() as cur:
            cur.execute(
                "INSERT INTO processed_updates (update_id, processed_at, outcome) VALUES (%s, %s, 'handled')"
                " ON CONFLICT (update_id) DO NOTHING RETURNING update_id",
                (update.update_id, runtime.clock.now()),
            )
            if cur.fetchone() is None:
                metrics.add_metric(name="DuplicateUpdates", unit="Count", value=1)
                return _response(200, {"status": "duplicate"})
            result = await app.dispatcher.feed_update(app.bot, update, cur=cur, runtime=runtime)
            if not isinstance(result, TelegramMethod):
                cur.execute("UPDATE processed_updates SET outcome = 'ignored' WHERE update_id = %s",
                            (update.update_id,))
    except Exception as exc:
        if _retryable(exc):
            logger.exception("a retry can fix this: Telegram will redeliver the update")
            metrics.add_metric(name="RetriedUpdates", unit="Count", value=1)
            return _response(503, {"error": "temporarily unavailable"})
        # A bug hit by this one update: answering 5xx would hold the chat's later updates for a day.
        logger.exception("update failed; acknowledged so the chat is not blocked")
        metrics.add_metric(name="FailedUpdates", unit="Count", value=1)
        _mark_failed(runtime, update.update_id, exc)
        return _response(200, {"status": "failed"})

    # The reply goes out after the commit: a stored expense is never lost to a failed reply.
    if isinstance(result, TelegramMethod):
        try:
            await app.bot(result)
        except TelegramAPIError:
            logger.exception("reply not delivered")
            metrics.add_metric(name="FailedReplies", unit="Count", value=1)
        return _response(200, {"status": "handled"})
    return _response(200, {"status": "ignored"})


def _retryable(exc: Exception) -> bool:
    """The database, SQS (the /report enqueue) or Telegram could not be reached, or Telegram's token was
    refused: the same update will work later. (Replies are sent after the commit and never get here; a
    Telegram call inside the transaction is one the update's handling waits for, such as getMe.)"""
    if isinstance(exc, DatabaseUnavailable | EnqueueError):
        return True
    if isinstance(exc, TelegramNetworkError | TelegramServerError | TelegramRetryAfter | TelegramUnauthorizedError):
        return True
    # botocore is loaded only once an SQS client was built; without it, no SQS error can have happened.
    boto_errors = sys.modules.get("botocore.exceptions")
    return boto_errors is not None and isinstance(exc, boto_errors.BotoCoreError | boto_errors.ClientError)


def _mark_failed(runtime: Runtime, update_id: int, exc: Exception) -> None:
    try:
        with runtime.db.transaction() as cur:
            cur.execute(
                "INSERT INTO processed_updates (update_id, processed_at, outcome) VALUES (%s, %s, %s)"
                " ON CONFLICT (update_id) DO NOTHING",
                (update_id, runtime.clock.now(), f"failed: {type(exc).__name__}"[:200]),
            )
    except Exception:
        # Logged and counted already; the record is bookkeeping, and failing to write it (the database
        # down, or the same poison that failed the update) must not turn the 200 into API Gateway's 500.
        logger.warning("could not record the failed update", exc_info=True)
