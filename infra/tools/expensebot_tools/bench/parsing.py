"""parsing: how long reading an expense takes as the text grows, against the quadratic way it replaced.

The input is the worst case the issue found, "x 000 000 … 000 1": every word but the first is a number, so
the amount may span any suffix. The word splitter before the fix tried every suffix length and re-checked
all of its groups each time (quadratic); it is kept here, as it was, only to be measured in the same run.
Sizes go past Telegram's 4,096 characters on purpose: the bot refuses such texts before parsing, and the
larger sizes show the growth (linear: 8x the text, about 8x the time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress

from expensebot import parsing
from expensebot_tools.bench import BenchContext, benchmark

SIZES_KB = (4, 32, 100)
# 100 KB the old way takes about 40 s on this machine: measured up to 32 KB, the ratio is already clear.
OLD_WAY_MAX_KB = 32


def amount_words_before_fix(words: list[str], *, from_end: bool = False) -> int:
    """`parsing._amount_words` as it was before the fix (quadratic from the end). It reads the regexes
    through the module, so a test that counts their calls counts these too."""
    edge = words[-1] if from_end else words[0]
    if not parsing.looks_like_number(edge):
        return 0
    if from_end:
        for count in range(len(words) - 1, 1, -1):
            head, *groups = words[-count:]
            if parsing._LEADING_GROUP.match(head) and all(parsing._THOUSANDS_GROUP.match(g) for g in groups):
                return count
        return 1
    count = 1
    if parsing._LEADING_GROUP.match(words[0]):
        while count < len(words) - 1 and parsing._THOUSANDS_GROUP.match(words[count]):
            count += 1
    return count


def worst_case_text(kilobytes: int, *, last: str = "1") -> str:
    """ "x 000 000 … 000 1" of about that many kilobytes (4 characters a group). With last="000" every word
    after the first is a thousands group: the longest run the linear way walks."""
    groups = max(1, kilobytes * 1024 // 4)
    return "x" + " 000" * groups + f" {last}"


def _parse_seconds(text: str, split: Callable[..., int], repeat: int) -> float:
    """parse_expense on text with the 4,096-character cap lifted (to see the growth) and the given word
    splitter; the best of `repeat` runs."""
    saved_cap, saved_split = parsing.MAX_TEXT_LENGTH, parsing._amount_words
    parsing.MAX_TEXT_LENGTH, parsing._amount_words = len(text), split  # type: ignore[assignment]
    try:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            # The description is too long: refused after the amount was found, as a user would see it.
            with suppress(parsing.InvalidInput):
                parsing.parse_expense(text)
            best = min(best, time.perf_counter() - started)
        return best
    finally:
        parsing.MAX_TEXT_LENGTH, parsing._amount_words = saved_cap, saved_split  # type: ignore[assignment]


@benchmark("parsing", needs_dataset=False)
def bench_parsing(ctx: BenchContext) -> None:
    """Expense parsing on "x 000 … 000 1" at 4, 32 and 100 KB: linear now, against the quadratic way."""
    linear = parsing._amount_words
    figures: dict[str, float | None] = {}
    for kb in SIZES_KB:
        text = worst_case_text(kb)
        new = _parse_seconds(text, linear, repeat=5)
        figures[f"linear_{kb}kb_seconds"] = new
        figures[f"linear_all_groups_{kb}kb_seconds"] = _parse_seconds(worst_case_text(kb, last="000"), linear, 5)
        if kb <= OLD_WAY_MAX_KB:
            old = _parse_seconds(text, amount_words_before_fix, repeat=1)
            figures[f"quadratic_{kb}kb_seconds"] = old
            figures[f"ratio_{kb}kb"] = old / new if new else None
    # What the webhook can meet now: the worst case cut at Telegram's 4,096 characters, cap in place.
    text = worst_case_text(4)[: parsing.MAX_TEXT_LENGTH]
    started = time.perf_counter()
    with suppress(parsing.InvalidInput):
        parsing.parse_expense(text)
    figures["parse_expense_at_4096_chars_seconds"] = time.perf_counter() - started
    small, large = figures["linear_all_groups_4kb_seconds"], figures["linear_all_groups_100kb_seconds"]
    figures["growth_100kb_over_4kb"] = large / small if small and large else None
    ctx.record(figures, note="ratio = quadratic / linear, the same text in this run; "
                             "growth = time at 100 KB / at 4 KB (25 for linear growth, 625 for quadratic)")
