"""The pacing rule and message splitting as plain functions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from expensebot.config import Settings
from expensebot.delivery import MAX_MESSAGE_LENGTH, split_message
from expensebot.pacing import BotPacing, ChatBusy, HeldBack, PacingLimits, Slot, after_429, plan_send

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
LIMITS = PacingLimits(global_interval=1 / 30, chat_interval=1.0, group_interval=3.0, max_wait=3.0)
IDLE = BotPacing(next_send_at=NOW - timedelta(minutes=5), paused_until=None, rate_factor=1.0)


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def test_an_idle_bot_sends_at_once_and_books_the_next_global_and_chat_times():
    slot = plan_send(NOW, IDLE, None, 42, LIMITS)
    assert isinstance(slot, Slot)
    assert slot.send_at == NOW
    assert seconds(slot.bot_next - NOW) == pytest.approx(1 / 30, abs=1e-5)
    assert seconds(slot.chat_next - NOW) == 1.0


def test_sends_to_different_chats_are_spaced_by_the_global_interval():
    bot, times = IDLE, []
    for chat in range(90):
        slot = plan_send(NOW, bot, None, chat, LIMITS)
        assert isinstance(slot, Slot)
        times.append(slot.send_at)
        bot = BotPacing(slot.bot_next, None, slot.rate_factor)
    gaps = {round(seconds(b - a), 4) for a, b in itertools.pairwise(times)}
    assert gaps == {round(1 / 30, 4)}
    # 90 sends span 89 intervals: no more than 30 in any one second.
    assert seconds(times[-1] - times[0]) == pytest.approx(89 / 30, abs=1e-4)


def test_a_private_chat_waits_a_second_and_a_group_three():
    private = plan_send(NOW, IDLE, None, 42, LIMITS)
    group = plan_send(NOW, IDLE, None, -100123, LIMITS)
    assert isinstance(private, Slot) and isinstance(group, Slot)
    assert seconds(private.chat_next - private.send_at) == 1.0
    assert seconds(group.chat_next - group.send_at) == 3.0


def test_a_chat_not_free_yet_books_nothing_and_is_asked_again_when_it_is():
    # The bot could send now, but chat 42 had a message 0.6 s ago: booking the bot's slot at the chat's time
    # would move the bot's whole schedule 0.4 s ahead for every other chat.
    busy = plan_send(NOW, IDLE, NOW + timedelta(seconds=0.4), 42, LIMITS)
    assert busy == ChatBusy(until=NOW + timedelta(seconds=0.4))
    other = plan_send(NOW, IDLE, None, 43, LIMITS)
    assert isinstance(other, Slot) and other.send_at == NOW
    later = plan_send(NOW + timedelta(seconds=0.4), BotPacing(other.bot_next, None, 1.0),
                      NOW + timedelta(seconds=0.4), 42, LIMITS)
    assert isinstance(later, Slot) and later.send_at == NOW + timedelta(seconds=0.4)


def test_a_chat_free_by_the_bots_own_slot_takes_that_slot():
    busy_bot = BotPacing(next_send_at=NOW + timedelta(seconds=0.5), paused_until=None, rate_factor=1.0)
    slot = plan_send(NOW, busy_bot, NOW + timedelta(seconds=0.4), 42, LIMITS)
    assert isinstance(slot, Slot) and slot.send_at == NOW + timedelta(seconds=0.5)


def test_a_slot_further_than_the_longest_wait_is_not_reserved_but_held_back():
    held = plan_send(NOW, IDLE, NOW + timedelta(seconds=5), -100123, LIMITS)
    assert isinstance(held, HeldBack)
    assert held.reason == "this chat's limit"
    # Back a little before the chat is free, to reserve the slot then.
    assert held.seconds == 4


def test_a_429_pauses_every_sender_until_telegrams_moment_and_lowers_the_rate():
    paused = after_429(NOW, IDLE, retry_after=17)
    assert paused.paused_until == NOW + timedelta(seconds=17)
    assert paused.rate_factor == pytest.approx(0.8)
    held = plan_send(NOW + timedelta(seconds=1), paused, None, 7, LIMITS)
    assert isinstance(held, HeldBack) and held.reason == "Telegram asked every sender to wait (429)"
    # Once the pause is almost over, the first slot is the pause's end, and the next ones come at 80 %.
    slot = plan_send(NOW + timedelta(seconds=15), paused, None, 7, LIMITS)
    assert isinstance(slot, Slot)
    assert slot.send_at == NOW + timedelta(seconds=17)
    assert seconds(slot.bot_next - slot.send_at) == pytest.approx(1 / 30 / 0.8, abs=1e-5)


def test_the_rate_recovers_a_little_with_every_send_and_never_exceeds_the_limit():
    bot = BotPacing(NOW, None, 0.5)
    for _ in range(100):
        slot = plan_send(NOW, bot, None, 1, LIMITS)
        assert isinstance(slot, Slot)
        bot = BotPacing(NOW, None, slot.rate_factor)
    assert bot.rate_factor == 1.0


def test_reservations_far_in_the_future_are_forgotten_when_the_clock_went_back():
    stale = BotPacing(next_send_at=NOW + timedelta(days=30), paused_until=None, rate_factor=1.0)
    slot = plan_send(NOW, stale, NOW + timedelta(days=30), 42, LIMITS)
    assert isinstance(slot, Slot) and slot.send_at == NOW


def test_paid_broadcast_raises_the_rate_and_pacing_stays_a_little_under_the_limit():
    free = PacingLimits.from_settings(Settings())
    paid = PacingLimits.from_settings(Settings(TELEGRAM_PAID_BROADCAST="true"))
    margin = Settings().pacing_safety_margin
    assert 0.9 <= margin < 1
    assert 1 / free.global_interval == pytest.approx(30 * margin)
    assert 1 / paid.global_interval == pytest.approx(1000 * margin)
    # A chat's second and a group's three seconds get the same margin.
    assert free.chat_interval == paid.chat_interval == pytest.approx(1.0 / margin)
    assert free.group_interval == pytest.approx(3.0 / margin)


def test_a_message_that_fits_is_one_part():
    assert split_message("250 кофе") == ["250 кофе"]
    exact = "я" * MAX_MESSAGE_LENGTH
    assert split_message(exact) == [exact]


def test_a_long_message_is_cut_at_line_ends_and_loses_nothing():
    lines = [f"{n:04d} " + "кафе " * 12 for n in range(300)]
    text = "\n".join(lines)
    parts = split_message(text)
    assert len(parts) > 1
    assert all(len(part) <= MAX_MESSAGE_LENGTH for part in parts)
    assert "\n".join(parts) == text
    assert all(part.split("\n")[0][:4].isdigit() for part in parts)  # every part starts at a line's start


def test_a_line_longer_than_a_message_is_cut_at_spaces_and_a_huge_word_inside():
    parts = split_message("слово " * 2000)
    assert all(len(part) <= MAX_MESSAGE_LENGTH and not part.startswith(" ") for part in parts)
    assert " ".join(p.strip() for p in parts).split() == ["слово"] * 2000
    assert [len(p) for p in split_message("a" * 10_000)] == [4096, 4096, 1808]


def test_the_limit_counts_utf16_units_as_telegram_does():
    # An emoji is two UTF-16 units: 3,000 of them are 6,000 units, more than one message.
    parts = split_message("😀" * 3000)
    assert [len(p) for p in parts] == [2048, 952]
