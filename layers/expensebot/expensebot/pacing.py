"""Global pacing of Telegram sends across every concurrent worker.

Telegram gives one bot token about 30 messages per second in total, one per second to the same private
chat and 20 per minute to a group, and answers faster senders with 429 and `retry_after`. Each worker
Lambda pacing itself would let N workers send N × 30/s, so the schedule lives where every worker already
goes: two small tables in PostgreSQL. Before each send a worker reserves the next free send time of the
bot (its global slot) and of the chat, in one short transaction that holds the bot's row lock for a few
milliseconds. A slot within `PACING_MAX_WAIT_SECONDS` is slept to (briefly); a later one is not reserved
at all: the message is held back and comes again after the wait, without holding the batch.

A 429 pauses every worker until the moment Telegram named (`paused_until`, shared by the bot's row) and
lowers the rate by a fifth; each send afterwards wins back 2 % of it (additive increase, multiplicative
decrease).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from expensebot.bootstrap import Runtime
from expensebot.config import Settings
from expensebot.errors import ExpenseBotError

SLOWEST_RATE_FACTOR = 0.1
# A 429 takes a fifth off the rate; each send afterwards wins back 2 % of the full rate. A lone 429 (a
# send that left late and landed in a crowded second) costs ten sends at a slightly lower rate; a limit
# that is really lower than configured brings the rate down within a few 429s.
RATE_AFTER_429 = 0.8
RECOVERY_PER_SEND = 0.02


class HeldBack(ExpenseBotError):
    """The message may not be sent for `seconds` yet (pacing or a 429): bring it back then. Not a failure:
    it must not use up the message's receive count."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"held back {seconds:.1f} s: {reason}")
        self.seconds = max(1, math.ceil(seconds))
        self.reason = reason


@dataclass(frozen=True)
class PacingLimits:
    global_interval: float  # seconds between two sends of the bot at full rate
    chat_interval: float  # seconds between two sends to one private chat
    group_interval: float  # seconds between two sends to one group (20 per minute → 3 s)
    max_wait: float  # the longest a worker sleeps for a slot

    @classmethod
    def from_settings(cls, settings: Settings) -> PacingLimits:
        rate = settings.telegram_paid_rate_per_second if settings.telegram_paid_broadcast else (
            settings.telegram_rate_per_second
        )
        return cls(
            global_interval=1.0 / (rate * settings.pacing_safety_margin),
            chat_interval=settings.telegram_chat_interval_seconds,
            group_interval=60.0 / settings.telegram_group_messages_per_minute,
            max_wait=settings.pacing_max_wait_seconds,
        )


@dataclass(frozen=True)
class BotPacing:
    next_send_at: datetime
    paused_until: datetime | None
    rate_factor: float


@dataclass(frozen=True)
class Slot:
    """A reserved send time, and what the bot's and the chat's next free times become."""

    send_at: datetime
    bot_next: datetime
    chat_next: datetime
    rate_factor: float


def plan_send(
    now: datetime, bot: BotPacing, chat_next: datetime | None, chat_id: int, limits: PacingLimits
) -> Slot | HeldBack:
    """The earliest moment this chat may get a message, or how long to hold it when that is too far off."""
    # No reservation is ever made further ahead than this, so a time beyond it means the clock went back
    # (a virtual clock replaying a period again, a host's clock corrected): it is forgotten.
    horizon = now + timedelta(seconds=limits.max_wait + max(limits.chat_interval, limits.group_interval) + 1)
    paused = bot.paused_until if bot.paused_until is not None and bot.paused_until > now else None
    bot_next = bot.next_send_at
    if bot_next > horizon and (paused is None or bot_next > paused + timedelta(seconds=1)):
        bot_next = now
    if chat_next is not None and chat_next > horizon:
        chat_next = now
    bot = BotPacing(bot_next, paused, bot.rate_factor)
    candidates = [now, bot.next_send_at, chat_next or now]
    if bot.paused_until is not None:
        candidates.append(bot.paused_until)
    send_at = max(candidates)
    wait = (send_at - now).total_seconds()
    if wait > limits.max_wait:
        if bot.paused_until is not None and send_at == bot.paused_until:
            reason = "Telegram asked every sender to wait (429)"
        elif chat_next is not None and send_at == chat_next:
            reason = "this chat's limit"
        else:
            reason = "the bot's global rate"
        # Come back a moment before the slot frees, so the message can claim it then.
        return HeldBack(wait - limits.max_wait / 2, reason)
    interval = limits.global_interval / max(SLOWEST_RATE_FACTOR, bot.rate_factor)
    per_chat = limits.group_interval if chat_id < 0 else limits.chat_interval
    return Slot(
        send_at=send_at,
        bot_next=send_at + timedelta(seconds=interval),
        chat_next=send_at + timedelta(seconds=per_chat),
        rate_factor=min(1.0, bot.rate_factor + RECOVERY_PER_SEND),
    )


def after_429(now: datetime, bot: BotPacing, retry_after: int) -> BotPacing:
    """Every worker waits until Telegram's moment; the rate halves."""
    until = now + timedelta(seconds=retry_after)
    return BotPacing(
        next_send_at=max(bot.next_send_at, until),
        paused_until=max(until, bot.paused_until) if bot.paused_until else until,
        rate_factor=max(SLOWEST_RATE_FACTOR, bot.rate_factor * RATE_AFTER_429),
    )


# The upserts lock the bot's row (and the chat's) for the transaction and return the current values:
# `DO UPDATE SET` of a column to itself makes RETURNING give the existing row.
_LOCK_BOT = """
INSERT INTO telegram_pacing (bot_id, next_send_at, rate_factor) VALUES (%(bot)s, %(now)s, 1.0)
ON CONFLICT (bot_id) DO UPDATE SET bot_id = EXCLUDED.bot_id
RETURNING next_send_at, paused_until, rate_factor
"""
_LOCK_CHAT = """
INSERT INTO chat_pacing (bot_id, chat_id, next_send_at) VALUES (%(bot)s, %(chat)s, %(now)s)
ON CONFLICT (bot_id, chat_id) DO UPDATE SET chat_id = EXCLUDED.chat_id
RETURNING next_send_at
"""


class Pacer:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._limits = PacingLimits.from_settings(runtime.settings)

    @property
    def bot_id(self) -> str:
        # The numeric part of the token names the bot: one token, one rate budget.
        return self._runtime.bot_token().split(":", 1)[0]

    def reserve(self, chat_id: int, cur: Any = None) -> Slot:
        """Reserves the chat's next send time; raises HeldBack when it is more than max_wait away. Given a
        cursor, the reservation joins that transaction (the delivery claim's), so a claim and its slot are
        both kept or both rolled back."""
        now = self._runtime.clock.now()
        if not self._runtime.settings.telegram_pacing:
            return Slot(send_at=now, bot_next=now, chat_next=now, rate_factor=1.0)
        if cur is None:
            with self._runtime.db.transaction() as own:
                return self.reserve(chat_id, own)
        params = {"bot": self.bot_id, "chat": chat_id, "now": now}
        cur.execute(_LOCK_BOT, params)
        row = cur.fetchone()
        bot = BotPacing(row["next_send_at"], row["paused_until"], float(row["rate_factor"]))
        cur.execute(_LOCK_CHAT, params)
        chat_next = cur.fetchone()["next_send_at"]
        planned = plan_send(now, bot, chat_next, chat_id, self._limits)
        if isinstance(planned, HeldBack):
            raise planned
        cur.execute(
            "UPDATE telegram_pacing SET next_send_at = %s, rate_factor = %s WHERE bot_id = %s",
            (planned.bot_next, planned.rate_factor, self.bot_id),
        )
        cur.execute(
            "UPDATE chat_pacing SET next_send_at = %s WHERE bot_id = %s AND chat_id = %s",
            (planned.chat_next, self.bot_id, chat_id),
        )
        return planned

    def wait_for(self, slot: Slot) -> None:
        wait = (slot.send_at - self._runtime.clock.now()).total_seconds()
        if wait > 0:
            self._runtime.clock.sleep(wait)

    def pause(self, retry_after: int) -> None:
        """Telegram said 429: every worker of this bot waits, and the rate drops."""
        if not self._runtime.settings.telegram_pacing:
            return
        now = self._runtime.clock.now()
        with self._runtime.db.transaction() as cur:
            cur.execute(_LOCK_BOT, {"bot": self.bot_id, "now": now})
            row = cur.fetchone()
            paused = after_429(now, BotPacing(row["next_send_at"], row["paused_until"], float(row["rate_factor"])),
                               retry_after)
            cur.execute(
                "UPDATE telegram_pacing SET next_send_at = %s, paused_until = %s, rate_factor = %s WHERE bot_id = %s",
                (paused.next_send_at, paused.paused_until, paused.rate_factor, self.bot_id),
            )
