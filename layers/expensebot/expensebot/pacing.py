"""Global pacing of Telegram sends across every concurrent worker.

Telegram gives one bot token about 30 messages per second in total (1,000 with paid broadcasts), one per
second to the same private chat and 20 per minute to a group, and answers faster senders with 429 and
`retry_after`. Each worker Lambda pacing itself would let N workers send N × 30/s, so the schedule lives
where every worker already goes: two small tables in PostgreSQL. Before each send a worker reserves the next
free send time of the bot (its global slot) and of the chat. `plan_send` is the rule; the server applies it
(reserve_telegram_slot, migration 0011) in the same statement that claims the message, run as its own
transaction, so the bot's row, which every send needs, is never held across a client round trip (`make bench
BENCH=pacing` measures why that matters). A slot within `PACING_MAX_WAIT_SECONDS` is slept to (briefly); a
later one is not reserved at all: the message is held back and comes again after the wait, without holding
the batch.

A 429 pauses every worker until the moment Telegram named (`paused_until`, shared by the bot's row) and
lowers the rate by a fifth; each send afterwards wins back 2 % of it (additive increase, multiplicative
decrease).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg2 import Error as PostgresError

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
        # The chats' spacing gets the same margin as the bot's rate: a part leaves a little after its slot,
        # unevenly, and one that reaches Telegram a few milliseconds sooner after its slot than the chat's last
        # part did lands under a second after it, which Telegram answers with 429 (make bench BENCH=report_batch).
        margin = settings.pacing_safety_margin
        return cls(
            global_interval=1.0 / (rate * margin),
            chat_interval=settings.telegram_chat_interval_seconds / margin,
            group_interval=60.0 / (settings.telegram_group_messages_per_minute * margin),
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


@dataclass(frozen=True)
class ChatBusy:
    """The chat may not get a message before `until` (its own spacing) although the bot has a slot sooner.
    Nothing is booked: booking the bot's slot at the chat's time would push the bot's whole schedule that far
    ahead, and every other chat would wait for this one (a report's chart and PDF, each a second after its
    text, would slow a whole broadcast to a part per worker per second). Ask again at `until`."""

    until: datetime


def current_times(
    now: datetime, bot: BotPacing, chat_next: datetime | None, limits: PacingLimits
) -> tuple[datetime, datetime | None, datetime | None]:
    """The bot's next free time, its pause (None once over) and the chat's next free time, as the rule reads them.
    No reservation is ever made further ahead than the horizon, so a time beyond it means the clock went back (a
    virtual clock replaying a period again, a host's clock corrected): it is forgotten."""
    horizon = now + timedelta(seconds=limits.max_wait + max(limits.chat_interval, limits.group_interval) + 1)
    paused = bot.paused_until if bot.paused_until is not None and bot.paused_until > now else None
    bot_next = bot.next_send_at
    if bot_next > horizon and (paused is None or bot_next > paused + timedelta(seconds=1)):
        bot_next = now
    if chat_next is not None and chat_next > horizon:
        chat_next = now
    return bot_next, paused, chat_next


def plan_send(
    now: datetime, bot: BotPacing, chat_next: datetime | None, chat_id: int, limits: PacingLimits
) -> Slot | ChatBusy | HeldBack:
    """The bot's earliest free slot when the chat is free by then; when the chat is not, the moment to ask
    again; or how long to hold the message when either is too far off. reserve_telegram_slot (migration 0011)
    applies this rule in the server; a test holds the two to the same answers."""
    bot_next, paused, chat_next = current_times(now, bot, chat_next, limits)
    send_at = max([now, bot_next] + ([paused] if paused is not None else []))
    if chat_next is not None and chat_next > send_at:
        chat_wait = (chat_next - now).total_seconds()
        if chat_wait > limits.max_wait:
            # Come back a moment before the slot frees, so the message can claim it then.
            return HeldBack(chat_wait - limits.max_wait / 2, "this chat's limit")
        return ChatBusy(chat_next)
    wait = (send_at - now).total_seconds()
    if wait > limits.max_wait:
        reason = ("Telegram asked every sender to wait (429)" if paused is not None and send_at == paused
                  else "the bot's global rate")
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


# The 429 pause locks the bot's row for its transaction and reads it: `DO UPDATE SET` of a column to itself makes
# RETURNING give the existing row. A 429 is rare, so holding the row across this transaction's round trips
# costs nothing; every send's reservation takes it for one statement only (reserve_telegram_slot).
_LOCK_BOT = """
INSERT INTO telegram_pacing (bot_id, next_send_at, rate_factor) VALUES (%(bot)s, %(now)s, 1.0)
ON CONFLICT (bot_id) DO UPDATE SET bot_id = EXCLUDED.bot_id
RETURNING next_send_at, paused_until, rate_factor
"""
# Migration 0011: plan_send's rule inside the server, taking the chat's row and then the bot's, committed by
# the server before it answers when run in autocommit. It raises HELD_BACK_SQLSTATE instead of booking a slot
# further off than max_wait or one the chat is not free for (plan_send's HeldBack and ChatBusy).
_RESERVE = """reserve_telegram_slot(%(bot)s, {chat}, %(now)s, %(global_interval)s, %(chat_interval)s,
%(group_interval)s, %(max_wait)s, %(slowest_rate_factor)s, %(recovery_per_send)s)"""
HELD_BACK_SQLSTATE = "EBHLD"
_HELD_BACK_REASONS = {
    "paused": "Telegram asked every sender to wait (429)",
    "chat": "this chat's limit",
    "bot": "the bot's global rate",
}


class Pacer:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._limits = PacingLimits.from_settings(runtime.settings)

    @property
    def bot_id(self) -> str:
        # The numeric part of the token names the bot: one token, one rate budget.
        return self._runtime.bot_token().split(":", 1)[0]

    def claim_and_reserve(
        self, claim_sql: str, params: dict[str, Any], *, wait_for_chat: bool = True
    ) -> tuple[int, Slot] | None:
        """Runs `claim_sql` (an INSERT … RETURNING id, chat_id that claims a message part) and, when it claimed
        the part, reserves the chat's next send time in the same statement: one round trip, its own
        transaction, so the claim and its slot are both kept or neither is. None when nothing was claimed;
        raises HeldBack (having claimed nothing) when the slot is more than max_wait away. A chat not free
        yet is waited for, or with wait_for_chat=False raises ChatNotFree (having claimed nothing)."""
        if not self._runtime.settings.telegram_pacing:
            with self._runtime.db.transaction() as cur:
                cur.execute(claim_sql, params)
                claimed = cur.fetchone()
            return None if claimed is None else (claimed["id"], _unpaced(self._runtime.clock.now()))
        reserve = _RESERVE.format(chat="claimed.chat_id")
        sql = (f"WITH claimed AS ({claim_sql}) SELECT claimed.id, slot.send_at, slot.rate_factor"
               f" FROM claimed CROSS JOIN LATERAL {reserve} AS slot")
        row = self._reserve_when_chat_free(sql, params, wait_for_chat=wait_for_chat)
        return None if row is None else (row[0], self._slot(row[1], row[2], params["chat_id"]))

    def reserve(self, chat_id: int) -> Slot:
        """Reserves the chat's next send time on its own (no claim); raises HeldBack when it is more than
        max_wait away."""
        if not self._runtime.settings.telegram_pacing:
            return _unpaced(self._runtime.clock.now())
        sql = "SELECT slot.send_at, slot.rate_factor FROM " + _RESERVE.format(chat="%(chat_id)s") + " AS slot"
        row = self._reserve_when_chat_free(sql, {"chat_id": chat_id})
        assert row is not None  # the function returns its slot or raises
        return self._slot(row[0], row[1], chat_id)

    def _reserve_when_chat_free(
        self, sql: str, params: dict[str, Any], *, wait_for_chat: bool = True
    ) -> tuple[Any, ...] | None:
        """Runs the reserving statement; while the chat is not free yet (ChatBusy), sleeps until it is and asks
        again (or raises ChatNotFree without wait_for_chat), for at most max_wait in all, then holds the message
        back."""
        deadline = self._runtime.clock.now() + timedelta(seconds=self._limits.max_wait)
        while True:
            now = self._runtime.clock.now()
            try:
                return self._run(sql, {**params, **self._reservation_params(now)})
            except ChatNotFree as busy:
                if busy.until > deadline:
                    raise HeldBack((busy.until - now).total_seconds() - self._limits.max_wait / 2,
                                   _HELD_BACK_REASONS["chat"]) from None
                if not wait_for_chat:
                    raise
                self._runtime.clock.sleep((busy.until - now).total_seconds())

    def _reservation_params(self, now: datetime) -> dict[str, Any]:
        return {
            "bot": self.bot_id,
            "now": now,
            "global_interval": self._limits.global_interval,
            "chat_interval": self._limits.chat_interval,
            "group_interval": self._limits.group_interval,
            "max_wait": self._limits.max_wait,
            "slowest_rate_factor": SLOWEST_RATE_FACTOR,
            "recovery_per_send": RECOVERY_PER_SEND,
        }

    def _run(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        try:
            # Plain rows: this runs before every send, and a dict per row costs more than the statement here.
            with self._runtime.db.single_statement(dict_rows=False) as cur:
                cur.execute(sql, params)
                return cur.fetchone()
        except PostgresError as exc:
            if exc.pgcode != HELD_BACK_SQLSTATE:
                raise
            detail = json.loads(exc.diag.message_detail or "{}")
            wait = float(detail.get("wait", self._limits.max_wait))
            if detail.get("reason") == "chat" and wait <= self._limits.max_wait:
                raise ChatNotFree(self._runtime.clock.now() + timedelta(seconds=wait)) from None
            # Come back a moment before the slot frees, so the message can claim it then.
            raise HeldBack(wait - self._limits.max_wait / 2,
                           _HELD_BACK_REASONS.get(detail.get("reason"), "pacing")) from None

    def _slot(self, send_at: datetime, rate_factor: float, chat_id: int) -> Slot:
        per_chat = self._limits.group_interval if chat_id < 0 else self._limits.chat_interval
        # What the function booked, for the caller's information (the rows hold the truth).
        return Slot(
            send_at=send_at,
            bot_next=send_at + timedelta(seconds=self._limits.global_interval / max(SLOWEST_RATE_FACTOR, rate_factor)),
            chat_next=send_at + timedelta(seconds=per_chat),
            rate_factor=rate_factor,
        )

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


class ChatNotFree(ExpenseBotError):
    """The server's ChatBusy: the chat is free at `until`; nothing was claimed or booked."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"the chat is free at {until}")
        self.until = until


def _unpaced(now: datetime) -> Slot:
    return Slot(send_at=now, bot_next=now, chat_next=now, rate_factor=1.0)
