"""The one path every message a worker sends takes: split it to Telegram's size, and for each part claim
it under its dedupe key, wait for its send slot (global pacing, pacing.py), send it, confirm it.

Telegram's sendMessage has no idempotency key, so a send Telegram accepted just before the worker died
cannot be told from one that failed. The claim carries a lease (`claim_lease_seconds`): a duplicate
delivery while the lease runs waits (the message returns to its queue); after the lease, the message is
sent again. Messages therefore err towards at least once, never towards silently lost (the README lists
each kind).

A message may carry files (a report's chart and its PDF, an export's CSV and XLSX): its text goes first, then
each file, and every one of them is a part of its own, claimed under its own key and paced like a text, so a
redelivery after a crash or a 429 sends only the parts that did not go out.

What Telegram answers decides the rest: a 429 pauses every worker of the bot and holds the message back
until `retry_after` (`HeldBack`, which does not use up the message's attempts); a chat that is gone drops
the message and deactivates its user; other errors are the worker's to retry or park."""

from __future__ import annotations

import enum
import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from expensebot.adapters.telegram import InputFile
from expensebot.bootstrap import Runtime
from expensebot.config import Settings
from expensebot.errors import ExpenseBotError, TelegramChatUnavailable, TelegramError, TelegramRetryAfter
from expensebot.observability import METRICS_NAMESPACE, logger, metrics
from expensebot.pacing import ChatNotFree, HeldBack, Pacer, Slot

# Telegram's limit for one message's text, counted in UTF-16 code units.
MAX_MESSAGE_LENGTH = 4096
# Telegram's limit for a photo's or a document's caption, in characters after entity parsing.
MAX_CAPTION_LENGTH = 1024


def claim_lease_seconds(settings: Settings) -> int:
    """Longer than one send can take (its slot wait, connect and read timeouts, with room to spare), short
    enough that a worker's crash delays the message little."""
    return int(settings.pacing_max_wait_seconds + settings.telegram_timeout_seconds * 2) + 30


class DeliveryInProgress(ExpenseBotError):
    """Another worker holds the claim on this message: let SQS deliver it again later."""


class Delivery(enum.Enum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    DROPPED = "dropped"  # the chat is gone (blocked, deactivated, not found): never retried
    # Its next part waits for the chat (a second after the last part, three for a group) in the batch's outbox,
    # sent when the batch's other records have run (Outbox.flush).
    DEFERRED = "deferred"


@dataclass(frozen=True)
class Attachment:
    """A file sent after the message's text: a photo (shown inline, Telegram recompresses it) or a document
    (delivered byte for byte)."""

    method: Literal["sendPhoto", "sendDocument"]
    filename: str
    content: bytes
    mime_type: str
    caption: str = ""  # plain text (no parse mode), at most MAX_CAPTION_LENGTH characters

    def __post_init__(self) -> None:
        # Caught where the message is built, not as a 400 from Telegram after the text already went out.
        if len(self.caption.strip()) > MAX_CAPTION_LENGTH:
            raise ValueError(f"a caption has at most {MAX_CAPTION_LENGTH} characters, {self.filename}'s has "
                             f"{len(self.caption.strip())}")


@dataclass(frozen=True)
class OutboundMessage:
    dedupe_key: str
    kind: str
    chat_id: int
    text: str
    user_id: int | None = None
    attachments: tuple[Attachment, ...] = ()


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_message(text: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """Parts of at most `limit` UTF-16 units, cut at line ends; a single line longer than that is cut at
    a space, and only a word longer than the limit is cut inside. Messages are plain text (no parse
    mode), so there is no entity a cut could break and nothing to escape."""
    if _utf16_length(text) <= limit:
        return [text]
    # Lines, with a line longer than a message cut into pieces (the cut space becomes a line end).
    pieces = [
        piece
        for line in text.split("\n")
        for piece in (_split_line(line, limit) if _utf16_length(line) > limit else [line])
    ]
    parts: list[str] = []
    current: str | None = None
    for piece in pieces:
        candidate = piece if current is None else f"{current}\n{piece}"
        if _utf16_length(candidate) <= limit:
            current = candidate
            continue
        if current is not None:
            parts.append(current)
        current = piece
    if current is not None:
        parts.append(current)
    return [part for part in parts if part.strip()]


def _split_line(line: str, limit: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if _utf16_length(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while _utf16_length(word) > limit:  # a "word" longer than a message: cut it
            cut = limit
            while _utf16_length(word[:cut]) > limit:
                cut -= 1
            pieces.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        pieces.append(current)
    return pieces


def count(name: str, kind: str, value: float = 1) -> None:
    """A metric in total and per message kind (a dimension of its own, so the totals keep theirs)."""
    metrics.add_metric(name=name, unit="Count", value=value)
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
        return
    from aws_lambda_powertools.metrics import single_metric

    try:
        with single_metric(name=name, unit="Count", value=value, namespace=METRICS_NAMESPACE) as metric:
            metric.add_dimension(name="kind", value=kind)
    except Exception:  # a metric must never turn a message that went out into a retry
        logger.exception("could not emit a metric", extra={"metric": name})


_CLAIM = """
INSERT INTO notifications (dedupe_key, kind, user_id, chat_id, status, attempts, lease_until, created_at)
VALUES (%(key)s, %(kind)s, %(user_id)s, %(chat_id)s, 'sending', 1, %(lease_until)s, %(now)s)
ON CONFLICT (dedupe_key) DO UPDATE
   SET status = 'sending', attempts = notifications.attempts + 1, lease_until = EXCLUDED.lease_until
 WHERE notifications.status IN ('failed', 'held')
    OR (notifications.status = 'sending' AND notifications.lease_until < %(now)s)
RETURNING id, chat_id
"""


# Sends one part: (runtime's Telegram client, extra parameters such as allow_paid_broadcast) -> the Message.
_Send = Callable[[Runtime, dict[str, Any]], dict[str, Any]]


def attachment_key(dedupe_key: str, number: int) -> str:
    """The claim key of a message's `number`th file (from 1)."""
    return f"{dedupe_key}#file{number}"


def deliver(runtime: Runtime, message: OutboundMessage) -> Delivery:
    """Sends every part of the message once, text first and then each file in order; SENT when this call
    sent anything. A chat that is gone drops the rest of the message. Inside a worker's batch (an Outbox is
    open), a part whose chat is not free yet is left to the outbox instead of the worker sleeping (DEFERRED)."""
    return _deliver_parts(runtime, message, _parts(message), _OUTBOX.get())


def _deliver_parts(
    runtime: Runtime, message: OutboundMessage, parts: list[tuple[str, _Send]], outbox: Outbox | None,
    sent_before: bool = False,
) -> Delivery:
    outcomes = [Delivery.SENT] if sent_before else []
    for index, (key, send) in enumerate(parts):
        try:
            outcome = _deliver_part(runtime, message, key, send, wait_for_chat=outbox is None)
        except ChatNotFree as busy:
            assert outbox is not None  # only raised when there is an outbox to wait in
            outbox.defer(message, parts[index:], busy.until, sent_before=Delivery.SENT in outcomes)
            return Delivery.DEFERRED
        if outcome is Delivery.DROPPED:
            return outcome
        if outcome is None:
            # An earlier delivery found the chat gone at this part: the parts after it are not tried again.
            break
        outcomes.append(outcome)
    return Delivery.SENT if Delivery.SENT in outcomes else Delivery.ALREADY_SENT


@dataclass
class _Waiting:
    until: datetime
    order: int
    message: OutboundMessage
    parts: list[tuple[str, _Send]]
    owner: Any
    sent_before: bool


class Outbox:
    """The parts of a batch's messages that wait for their chat. Telegram takes one message a second in a
    private chat (one in three seconds in a group), so a month's report (its text, chart and PDF) keeps its
    chat busy for two seconds. A worker sleeping through that would send a batch of ten reports in twenty
    seconds; with the outbox the worker runs the batch's other records meanwhile and sends the waiting parts
    after them (`flush`), the whole batch in about the two seconds of one report.

    The parts still go in order and each under its own claim: a worker that dies with parts in the outbox
    returns no answer for its batch, so every record comes back and sends only what did not go out."""

    def __init__(self) -> None:
        self._waiting: list[_Waiting] = []
        self._order = itertools.count()
        # What the batch is running now (the worker's record): a waiting part's outcome is that record's.
        self.owner: Any = None

    def __len__(self) -> int:
        return len(self._waiting)

    def defer(self, message: OutboundMessage, parts: list[tuple[str, _Send]], until: datetime, *,
              sent_before: bool) -> None:
        self._waiting.append(_Waiting(until, next(self._order), message, parts, self.owner, sent_before))

    def flush(
        self,
        runtime: Runtime,
        settle: Callable[[Any, Delivery | Exception], None],
        time_left: Callable[[], float] = lambda: float("inf"),
    ) -> None:
        """Sends the waiting parts, each when its chat is free, the earliest first; `settle(owner, outcome)`
        learns each message's end (a Delivery, or the exception its part raised). A part that would have to
        wait beyond `time_left()` seconds, and every one after it, is settled with OutboxTimeout instead."""
        token = _OUTBOX.set(self)
        try:
            while self._waiting:
                waiting = min(self._waiting, key=lambda entry: (entry.until, entry.order))
                self._waiting.remove(waiting)
                wait = (waiting.until - runtime.clock.now()).total_seconds()
                if wait >= time_left():
                    for entry in [waiting, *self._waiting]:
                        settle(entry.owner, OutboxTimeout(f"{entry.message.dedupe_key}: no time left to send it"))
                    self._waiting.clear()
                    return
                if wait > 0:
                    runtime.clock.sleep(wait)
                self.owner = waiting.owner
                try:
                    outcome = _deliver_parts(runtime, waiting.message, waiting.parts, self, waiting.sent_before)
                except Exception as exc:
                    settle(waiting.owner, exc)
                    continue
                if outcome is not Delivery.DEFERRED:
                    settle(waiting.owner, outcome)
        finally:
            _OUTBOX.reset(token)
            self.owner = None


class OutboxTimeout(ExpenseBotError):
    """The batch ran out of time before a waiting part's chat was free: its record comes back and sends it."""


_OUTBOX: ContextVar[Outbox | None] = ContextVar("expensebot_outbox", default=None)


def current_outbox() -> Outbox | None:
    """The outbox of the batch running now, if any."""
    return _OUTBOX.get()


@contextmanager
def batch_outbox() -> Iterator[Outbox]:
    """Opens an outbox for a batch: deliver() inside the block leaves parts that wait for their chat to it."""
    outbox = Outbox()
    token = _OUTBOX.set(outbox)
    try:
        yield outbox
    finally:
        _OUTBOX.reset(token)


def _parts(message: OutboundMessage) -> list[tuple[str, _Send]]:
    parts: list[tuple[str, _Send]] = []
    # A message of files alone has no text part; a message without files always has one, so that an empty
    # text is refused by Telegram (a bug to see) rather than silently sending nothing.
    if message.text or not message.attachments:
        for number, text in enumerate(split_message(message.text), start=1):
            # The first part keeps the message's key, so a message that fits in one part is keyed as before.
            key = message.dedupe_key if number == 1 else f"{message.dedupe_key}#{number}"
            parts.append((key, _text_sender(message.chat_id, text)))
    for number, attachment in enumerate(message.attachments, start=1):
        parts.append((attachment_key(message.dedupe_key, number), _file_sender(message.chat_id, attachment)))
    return parts


def _text_sender(chat_id: int, text: str) -> _Send:
    return lambda runtime, extra: runtime.telegram.send_message(chat_id, text, **extra)


def _file_sender(chat_id: int, attachment: Attachment) -> _Send:
    file = InputFile(attachment.filename, attachment.content, attachment.mime_type)
    if attachment.method == "sendPhoto":
        return lambda runtime, extra: runtime.telegram.send_photo(chat_id, file, caption=attachment.caption, **extra)
    return lambda runtime, extra: runtime.telegram.send_document(chat_id, file, caption=attachment.caption, **extra)


def claim_and_reserve(
    runtime: Runtime, pacer: Pacer, message: OutboundMessage, key: str, now: datetime, *, wait_for_chat: bool = True
) -> tuple[int, Slot] | str:
    """Claims the part and reserves its send slot in one statement (its own transaction), or returns the status
    of a part handled already ('sent' or 'dropped'); a HeldBack (or a ChatNotFree, without wait_for_chat) leaves
    nothing claimed and no slot booked."""
    claimed = pacer.claim_and_reserve(
        _CLAIM,
        {
            "key": key,
            "kind": message.kind,
            "user_id": message.user_id,
            "chat_id": message.chat_id,
            "lease_until": now + timedelta(seconds=claim_lease_seconds(runtime.settings)),
            "now": now,
        },
        wait_for_chat=wait_for_chat,
    )
    if claimed is not None:
        return claimed
    with runtime.db.transaction() as cur:
        cur.execute("SELECT status FROM notifications WHERE dedupe_key = %s", (key,))
        status = cur.fetchone()["status"]
    if status == "sending":
        raise DeliveryInProgress(f"{key} is being sent by another worker")
    logger.info("already delivered", extra={"dedupe_key": key, "status": status})
    return str(status)


def _deliver_part(
    runtime: Runtime, message: OutboundMessage, key: str, send: _Send, *, wait_for_chat: bool = True
) -> Delivery | None:
    """The part's outcome; None when an earlier delivery dropped it (the chat was gone)."""
    now = runtime.clock.now()
    pacer = Pacer(runtime)
    try:
        claim = claim_and_reserve(runtime, pacer, message, key, now, wait_for_chat=wait_for_chat)
    except HeldBack:
        count("HeldBack", message.kind)
        raise
    if isinstance(claim, str):
        return None if claim == "dropped" else Delivery.ALREADY_SENT
    notification_id, slot = claim
    pacer.wait_for(slot)
    extra = {"allow_paid_broadcast": True} if runtime.settings.telegram_paid_broadcast else {}
    try:
        sent = send(runtime, extra)
    except TelegramRetryAfter as exc:
        pacer.pause(exc.retry_after)
        _record(runtime, notification_id, status="held", error=str(exc))
        count("RetriedAfter429", message.kind)
        logger.warning("Telegram said 429: every worker waits", extra={"retry_after": exc.retry_after})
        raise HeldBack(exc.retry_after, "Telegram answered 429") from exc
    except TelegramChatUnavailable as exc:
        _record(runtime, notification_id, status="dropped", error=exc.description, deactivate_user=message.user_id)
        count("BlockedUsers", message.kind)
        logger.warning("chat unavailable: message dropped", extra={"chat_id": message.chat_id, "error": str(exc)})
        return Delivery.DROPPED
    except TelegramError as exc:
        _record(runtime, notification_id, status="failed", error=str(exc))
        count("FailedSends", message.kind)
        logger.warning("send failed", extra={"chat_id": message.chat_id, "error": exc.description})
        raise
    _record(runtime, notification_id, status="sent", telegram_message_id=sent.get("message_id"))
    count("MessagesSent", message.kind)
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
    # One statement, its own transaction (one round trip): the part's outcome and, for a chat that is gone, its
    # user set inactive, whom later jobs skip until they write to the bot again. Committed as usual, waiting for
    # the disk: 'sent' is what keeps a redelivery from sending the part twice.
    with runtime.db.single_statement() as cur:
        cur.execute(
            "WITH deactivated AS ("
            " UPDATE users SET is_active = false, deactivated_reason = %(error)s WHERE user_id = %(user)s)"
            " UPDATE notifications SET status = %(status)s, last_error = %(error)s, lease_until = NULL,"
            " telegram_message_id = COALESCE(%(message_id)s, telegram_message_id),"
            " sent_at = CASE WHEN %(status)s = 'sent' THEN %(now)s ELSE sent_at END"
            " WHERE id = %(id)s",
            {"status": status, "error": error, "user": deactivate_user, "message_id": telegram_message_id,
             "now": runtime.clock.now(), "id": notification_id},
        )
