"""The send-slot reservation as the server takes it (reserve_telegram_slot, migration 0011): the same answers as
the rule's Python model (pacing.plan_send) over many random states, exact spacing under concurrent workers, and a
claim and its slot kept or dropped together."""

from __future__ import annotations

import itertools
import json
import random
import threading
from datetime import datetime, timedelta
from typing import Any

import psycopg2
import psycopg2.extras
import pytest

from expensebot.bootstrap import build_runtime
from expensebot.clock import SystemClock, VirtualClock
from expensebot.config import Settings
from expensebot.delivery import OutboundMessage, claim_and_reserve
from expensebot.pacing import (
    HELD_BACK_SQLSTATE,
    RECOVERY_PER_SEND,
    SLOWEST_RATE_FACTOR,
    BotPacing,
    ChatBusy,
    HeldBack,
    Pacer,
    PacingLimits,
    Slot,
    plan_send,
)
from expensebot_tools.local.stack import LOCAL_BOT_TOKEN
from tests.conftest import MOSCOW

NOW = datetime(2026, 11, 30, 21, 0, tzinfo=MOSCOW)
BOT = LOCAL_BOT_TOKEN.split(":", 1)[0]
MICROSECOND = timedelta(microseconds=1)


def _runtime(database_url: str, clock: Any, **settings: str) -> Any:
    return build_runtime(
        Settings(_env_file=None, DATABASE_URL=database_url, TELEGRAM_BOT_TOKEN=LOCAL_BOT_TOKEN,
                 APP_TIMEZONE="Europe/Moscow", **settings),
        clock=clock,
    )


def _rows(database_url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def _random_state(rng: random.Random) -> tuple[BotPacing | None, datetime | None, int]:
    """A bot row (or none yet), a chat row (or none yet) and a chat: times around now, past and future, some
    beyond the horizon (a clock that went back), pauses running and over, rates lowered by 429s."""

    def moment() -> datetime:
        return NOW + timedelta(seconds=rng.choice([-600, -1, -0.01, 0, 0.01, 0.5, 1, 2.9, 3.0, 3.1, 5, 40, 600])
                               * rng.random() ** rng.choice([0, 1]))

    bot = None if rng.random() < 0.1 else BotPacing(
        next_send_at=moment(),
        paused_until=None if rng.random() < 0.5 else moment(),
        rate_factor=rng.choice([1.0, 0.8, 0.5, 0.1, 0.12345]),
    )
    chat_next = None if rng.random() < 0.3 else moment()
    chat = rng.choice([42, 4242, -100500, -1001234567890])
    return bot, chat_next, chat


def _server_reservation(database_url: str, now: datetime, chat: int, limits: PacingLimits) -> dict[str, Any]:
    """What reserve_telegram_slot answers: the slot it took, or what it raised (reason and wait)."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(
                "SELECT * FROM reserve_telegram_slot(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (BOT, chat, now, limits.global_interval, limits.chat_interval, limits.group_interval,
                 limits.max_wait, SLOWEST_RATE_FACTOR, RECOVERY_PER_SEND),
            )
            return dict(cur.fetchone())
    except psycopg2.Error as exc:
        assert exc.pgcode == HELD_BACK_SQLSTATE, exc
        return json.loads(exc.diag.message_detail)
    finally:
        conn.close()


def test_the_server_takes_the_same_slots_the_rule_plans(clean_database):
    limits = PacingLimits.from_settings(_runtime(clean_database, VirtualClock(NOW)).settings)
    rng = random.Random(16)
    outcomes = []
    for case in range(400):
        bot, chat_next, chat = _random_state(rng)
        _rows(clean_database, "TRUNCATE telegram_pacing, chat_pacing")
        if bot is not None:
            _rows(clean_database, "INSERT INTO telegram_pacing VALUES (%s, %s, %s, %s)",
                  (BOT, bot.next_send_at, bot.paused_until, bot.rate_factor))
        if chat_next is not None:
            _rows(clean_database, "INSERT INTO chat_pacing VALUES (%s, %s, %s)", (BOT, chat, chat_next))
        # A bot or chat without a row is one idle until now (the function creates the row at now).
        planned = plan_send(NOW, bot or BotPacing(NOW, None, 1.0), chat_next or NOW, chat, limits)
        taken = _server_reservation(clean_database, NOW, chat, limits)
        context = f"case {case}: bot={bot} chat_next={chat_next} chat={chat}: server {taken}, rule {planned}"
        if isinstance(planned, ChatBusy):
            assert taken["reason"] == "chat", context
            assert taken["wait"] == pytest.approx((planned.until - NOW).total_seconds(), abs=1e-6), context
            outcomes.append("busy")
        elif isinstance(planned, HeldBack):
            assert "send_at" not in taken, context
            reason = {"paused": "Telegram asked every sender to wait (429)", "chat": "this chat's limit",
                      "bot": "the bot's global rate"}[taken["reason"]]
            assert (HeldBack(taken["wait"] - limits.max_wait / 2, reason).seconds, reason) == (
                planned.seconds, planned.reason), context
            outcomes.append("held")
        else:
            (bot_row,) = _rows(clean_database, "SELECT next_send_at, rate_factor FROM telegram_pacing")
            (chat_row,) = _rows(clean_database, "SELECT next_send_at FROM chat_pacing WHERE chat_id = %s", (chat,))
            assert taken.get("send_at") == planned.send_at, context
            assert abs(bot_row["next_send_at"] - planned.bot_next) <= MICROSECOND, context
            assert abs(chat_row["next_send_at"] - planned.chat_next) <= MICROSECOND, context
            assert bot_row["rate_factor"] == pytest.approx(planned.rate_factor), context
            outcomes.append("slot")
        if not isinstance(planned, Slot):
            # Nothing was booked: the rows are as they were.
            assert _rows(clean_database, "SELECT count(*) AS n FROM chat_pacing")[0]["n"] == (chat_next is not None)
    # The random states reach every answer, each often.
    assert min(outcomes.count(kind) for kind in ("busy", "held", "slot")) >= 40, outcomes


def test_a_chat_waiting_for_its_own_spacing_does_not_hold_up_the_others(clean_database):
    """A report's chart goes a second after its text: meanwhile the bot's other chats keep their pace."""
    clock = VirtualClock(NOW)
    runtime = _runtime(clean_database, clock, TELEGRAM_PAID_BROADCAST="true")
    limits = PacingLimits.from_settings(runtime.settings)
    pacer = Pacer(runtime)
    try:
        text = pacer.reserve(42)
        clock.advance(timedelta(seconds=0.1))
        others = [pacer.reserve(chat) for chat in range(1000, 1050)]
        chart = pacer.reserve(42)  # sleeps (the virtual clock) until chat 42 is free again
    finally:
        runtime.db.close()

    assert text.send_at == NOW
    # The other chats go right away, one bot interval apart, not after chat 42's second.
    assert others[0].send_at == NOW + timedelta(seconds=0.1)
    assert others[-1].send_at - others[0].send_at <= timedelta(seconds=50 * limits.global_interval)
    # A second after the text, and the safety margin (PACING_SAFETY_MARGIN) on top.
    free_again = NOW + timedelta(seconds=limits.chat_interval)
    assert abs(chart.send_at - free_again) <= MICROSECOND and chart.send_at >= NOW + timedelta(seconds=1)
    assert abs(clock.now() - free_again) <= MICROSECOND


def test_concurrent_workers_get_slots_exactly_one_interval_apart(clean_database):
    settings = {"TELEGRAM_PAID_BROADCAST": "true", "PACING_MAX_WAIT_SECONDS": "30"}
    limits = PacingLimits.from_settings(_runtime(clean_database, SystemClock(), **settings).settings)
    slots: list[tuple[int, datetime]] = []
    lock = threading.Lock()

    def worker(number: int) -> None:
        runtime = _runtime(clean_database, SystemClock(), **settings)
        pacer = Pacer(runtime)
        try:
            for n in range(100):
                # 50 chats, each reserved eight times: the chats' one-second spacing is exercised too.
                chat = (number * 100 + n) % 50 + 1
                slot = pacer.reserve(chat)
                with lock:
                    slots.append((chat, slot.send_at))
        finally:
            runtime.db.close()

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(slots) == 400
    times = sorted(at for _, at in slots)
    interval = timedelta(seconds=limits.global_interval)
    assert min(b - a for a, b in itertools.pairwise(times)) >= interval - MICROSECOND
    for chat in range(1, 51):
        chat_times = sorted(at for c, at in slots if c == chat)
        assert len(chat_times) == 8
        assert min(b - a for a, b in itertools.pairwise(chat_times)) >= timedelta(seconds=limits.chat_interval)


def test_a_held_back_part_leaves_nothing_claimed_and_no_slot_booked(clean_database):
    runtime = _runtime(clean_database, VirtualClock(NOW))
    pacer = Pacer(runtime)
    try:
        pacer.pause(retry_after=60)
        message = OutboundMessage("held:1", "test", 4242, "hello")
        with pytest.raises(HeldBack) as held:
            claim_and_reserve(runtime, pacer, message, message.dedupe_key, NOW)
    finally:
        runtime.db.close()

    assert held.value.reason == "Telegram asked every sender to wait (429)"
    assert _rows(clean_database, "SELECT * FROM notifications") == []
    assert _rows(clean_database, "SELECT * FROM chat_pacing") == []


def test_a_part_sent_already_takes_no_slot(clean_database):
    runtime = _runtime(clean_database, VirtualClock(NOW))
    pacer = Pacer(runtime)
    message = OutboundMessage("once:1", "test", 4242, "hello")
    try:
        first = claim_and_reserve(runtime, pacer, message, message.dedupe_key, NOW)
        assert not isinstance(first, str)
        _rows(clean_database, "UPDATE notifications SET status = 'sent' WHERE id = %s", (first[0],))
        booked = _rows(clean_database, "SELECT next_send_at FROM telegram_pacing UNION ALL"
                                        " SELECT next_send_at FROM chat_pacing")

        again = claim_and_reserve(runtime, pacer, message, message.dedupe_key, NOW)
    finally:
        runtime.db.close()

    assert again == "sent"
    assert _rows(clean_database, "SELECT next_send_at FROM telegram_pacing UNION ALL"
                                 " SELECT next_send_at FROM chat_pacing") == booked


def test_the_reservation_commits_before_it_answers(clean_database):
    """The bot's row is free the moment the reservation returns: no transaction is left open on the worker's
    connection, and another worker can lock the row at once."""
    runtime = _runtime(clean_database, VirtualClock(NOW))
    try:
        message = OutboundMessage("free:1", "test", 4242, "hello")
        claim_and_reserve(runtime, Pacer(runtime), message, message.dedupe_key, NOW)
        connection = runtime.db.connection()
        assert connection.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        assert _rows(clean_database, "SELECT bot_id FROM telegram_pacing FOR UPDATE NOWAIT") == [{"bot_id": BOT}]
        assert connection.autocommit is False  # the next transaction() is a transaction again
    finally:
        runtime.db.close()


def test_the_reservation_does_not_wait_for_the_disk_to_commit(clean_database):
    """The claim's transaction commits without waiting for the write-ahead log's flush, which would hold the bot's
    row for the disk's latency on every send; the setting lasts for that transaction only."""
    runtime = _runtime(clean_database, VirtualClock(NOW))
    limits = PacingLimits.from_settings(runtime.settings)
    runtime.db.close()
    conn = psycopg2.connect(clean_database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM reserve_telegram_slot(%s, 4242, %s, %s, %s, %s, %s, %s, %s)",
                        (BOT, NOW, limits.global_interval, limits.chat_interval, limits.group_interval,
                         limits.max_wait, SLOWEST_RATE_FACTOR, RECOVERY_PER_SEND))
            cur.execute("SHOW synchronous_commit")
            assert cur.fetchone() == ("off",)
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SHOW synchronous_commit")
            assert cur.fetchone() == ("on",)
    finally:
        conn.close()
