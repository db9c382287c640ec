"""The pacing benchmark's spacing check: it passes slots that keep the limits and fails each kind of slot that
breaks one (a check that cannot fail would prove nothing about the reservation)."""

from __future__ import annotations

import pytest

from expensebot.pacing import PacingLimits
from expensebot_tools.bench.pacing import GROUP_EVERY, Chats, check_spacing

LIMITS = PacingLimits(global_interval=0.001, chat_interval=1.0, group_interval=3.0, max_wait=30.0)
PRIVATE, OTHER, GROUP = 10_000_001, 10_000_002, -1_000_000_000_001


def test_slots_at_exactly_the_intervals_pass_and_report_the_smallest_gaps():
    slots = [(PRIVATE, 0), (OTHER, 1_000), (PRIVATE, 1_000_000), (GROUP, 1_001_000), (GROUP, 4_001_000)]
    assert check_spacing(slots, LIMITS) == {
        "spacing_ok": True, "smallest_bot_gap_ms": 1.0, "smallest_private_chat_gap_s": 1.0,
        "smallest_group_gap_s": 3.0, "private_chats_checked": 1, "groups_checked": 1,
    }


def test_one_microsecond_of_rounding_is_allowed():
    assert check_spacing([(PRIVATE, 0), (OTHER, 999)], LIMITS)["spacing_ok"]


@pytest.mark.parametrize("slots", [
    [(PRIVATE, 0), (OTHER, 998)],  # the bot's interval
    [(PRIVATE, 0), (PRIVATE, 999_000)],  # a private chat's
    [(GROUP, 0), (GROUP, 2_999_000)],  # a group's
], ids=["bot", "private chat", "group"])
def test_slots_closer_than_an_interval_fail(slots):
    assert check_spacing(slots, LIMITS)["spacing_ok"] is False


def test_the_workers_share_the_rounds_of_chats_and_start_them_over_each_window():
    workers = [Chats(index, 4) for index in range(4)]
    first_second = [worker.next(0.1) for _ in range(GROUP_EVERY) for worker in workers]
    privates = [chat for chat in first_second if chat > 0]
    groups = [chat for chat in first_second if chat < 0]
    assert len(groups) == 4 and len(set(groups)) == 4  # one in GROUP_EVERY, a different group each
    assert len(set(privates)) == len(privates)  # no private chat twice within its window
    again = Chats(0, 4)
    assert again.next(0.0) == 10_000_001 and again.next(0.5) == 10_000_005
    assert again.next(1.0) == 10_000_009  # still the first window (1.05 s)
    assert again.next(1.1) == 10_000_001  # the next window: the round starts over, the chats free again
