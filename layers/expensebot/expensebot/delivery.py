"""The one path every outgoing message takes: claim it under its dedupe key, send it, confirm it.

Telegram's sendMessage has no idempotency key, so a send Telegram accepted just before the worker died
cannot be told from one that failed. The claim carries a lease (`claim_lease_seconds`): a duplicate
delivery while the lease runs waits (the message returns to its queue); after the lease, the message is
sent again. Messages therefore err towards at least once, never towards silently lost (the README lists
each kind)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from expensebot.bootstrap import Runtime
from expensebot.config import Settings
from expensebot.errors import ExpenseBotError, TelegramChatUnavailable, TelegramError
from expensebot.observability import logger, metrics


def claim_lease_seconds(settings: Settings) -> int:
    """Longer than one send can take (connect and read timeouts, with room to spare), short enough that a
    worker's crash delays the message little."""
    return int(settings.telegram_timeout_seconds * 2) + 30


class DeliveryInProgress(ExpenseBotError):
    """Another worker holds the claim on this message: let SQS deliver it again later."""


class Delivery(enum.Enum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    DROPPED = "dropped"  # the chat is gone (blocked, deactivated, not found): never retried


@dataclass(frozen=True)
class OutboundMessage:
    dedupe_key: str
    kind: str
    chat_id: int
    text: str
    user_id: int | None = None


_CLAIM = """
INSERT INTO notifications (dedupe_key, kind, user_id, chat_id, status, attempts, lease_until, created_at)
VALUES (%(key)s, %(kind)s, %(user_id)s, %(chat_id)s, 'sending', 1, %(lease_until)s, %(now)s)
ON CONFLICT (dedupe_key) DO UPDATE
   SET status = 'sending', attempts = notifications.attempts + 1, lease_until = EXCLUDED.lease_until
 WHERE notifications.status = 'failed'
    OR (notifications.status = 'sending' AND notifications.lease_until < %(now)s)
RETURNING id
"""


def deliver(runtime: Runtime, message: OutboundMessage) -> Delivery:
    now = runtime.clock.now()
    with runtime.db.transaction() as cur:
        cur.execute(
            _CLAIM,
            {
                "key": message.dedupe_key,
                "kind": message.kind,
                "user_id": message.user_id,
                "chat_id": message.chat_id,
                "lease_until": now + timedelta(seconds=claim_lease_seconds(runtime.settings)),
                "now": now,
            },
        )
        claimed = cur.fetchone()
        if claimed is None:
            cur.execute("SELECT status FROM notifications WHERE dedupe_key = %s", (message.dedupe_key,))
            status = cur.fetchone()["status"]
    if claimed is None:
        if status == "sending":
            raise DeliveryInProgress(f"{message.dedupe_key} is being sent by another worker")
        logger.info("already delivered", extra={"dedupe_key": message.dedupe_key, "status": status})
        return Delivery.ALREADY_SENT
    notification_id = claimed["id"]

    try:
        sent = runtime.telegram.send_message(message.chat_id, message.text)
    except TelegramChatUnavailable as exc:
        _record(runtime, notification_id, status="dropped", error=exc.description, deactivate_user=message.user_id)
        metrics.add_metric(name="BlockedUsers", unit="Count", value=1)
        logger.warning("chat unavailable: message dropped", extra={"chat_id": message.chat_id, "error": str(exc)})
        return Delivery.DROPPED
    except TelegramError as exc:
        _record(runtime, notification_id, status="failed", error=str(exc))
        metrics.add_metric(name="FailedSends", unit="Count", value=1)
        raise
    _record(runtime, notification_id, status="sent", telegram_message_id=sent.get("message_id"))
    metrics.add_metric(name="MessagesSent", unit="Count", value=1)
    return Delivery.SENT


def _record(
    runtime: Runtime,
    notification_id: int,
    *,
    status: str,
    error: str | None = None,
    telegram_message_id: int | None = None,
    deactivate_user: int | None = None,
) -> None:
    with runtime.db.transaction() as cur:
        if deactivate_user is not None:
            # Later jobs skip the user until they write to the bot again.
            cur.execute(
                "UPDATE users SET is_active = false, deactivated_reason = %s WHERE user_id = %s",
                (error, deactivate_user),
            )
        cur.execute(
            "UPDATE notifications SET status = %s, last_error = %s, lease_until = NULL,"
            " telegram_message_id = COALESCE(%s, telegram_message_id),"
            " sent_at = CASE WHEN %s = 'sent' THEN %s ELSE sent_at END"
            " WHERE id = %s",
            (status, error, telegram_message_id, status, runtime.clock.now(), notification_id),
        )
