"""What a user types as an expense: an amount and a description, in either order."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expensebot import parsing
from expensebot.parsing import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TEXT_LENGTH,
    ExpenseInput,
    InvalidInput,
    RecurringInput,
    parse_amount,
    parse_day,
    parse_expense,
    parse_id,
    parse_recurring,
)
from expensebot.texts import catalog

RU_TEXTS = catalog("ru")


@pytest.mark.parametrize(
    ("text", "amount", "description"),
    [
        ("250 кофе", Decimal("250"), "кофе"),
        ("кофе 250", Decimal("250"), "кофе"),
        ("250.50 такси", Decimal("250.50"), "такси"),
        ("250,50 такси", Decimal("250.50"), "такси"),
        ("такси 430,50", Decimal("430.50"), "такси"),
        ("1500 продукты в пятерочке", Decimal("1500"), "продукты в пятерочке"),
    ],
)
def test_an_amount_and_a_description_in_either_order_parse_to_an_expense(
    text: str, amount: Decimal, description: str
) -> None:
    parsed = parse_expense(text)

    assert parsed == ExpenseInput(amount=amount, description=description)
    assert isinstance(parsed.amount, Decimal)


def test_the_amount_is_kept_to_the_kopeck() -> None:
    parsed = parse_expense("250,5 такси")

    assert parsed is not None
    assert str(parsed.amount) == "250.50"


def test_surrounding_spaces_do_not_matter() -> None:
    assert parse_expense("  250   кофе  ") == ExpenseInput(amount=Decimal("250"), description="кофе")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0 кофе", "reason_not_positive"),
        ("-5 кофе", "reason_not_positive"),
        ("кофе 0", "reason_not_positive"),
        ("1000000001 кофе", "reason_too_large"),
        ("1000000000.01 кофе", "reason_too_large"),
        ("12.345 кофе", "reason_too_many_decimals"),
        ("12,345 кофе", "reason_too_many_decimals"),
    ],
)
def test_an_impossible_amount_is_refused_with_a_reason_the_bot_can_explain(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_expense(text)

    assert caught.value.reason == reason
    assert reason in RU_TEXTS


def test_the_refusal_carries_what_the_user_typed() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_expense("-5 кофе")

    assert caught.value.value == "-5"


def test_the_largest_allowed_amount_is_one_billion() -> None:
    parsed = parse_expense("1000000000 квартира")

    assert parsed is not None
    assert parsed.amount == Decimal("1000000000")


@pytest.mark.parametrize("text", ["abc", "кофе", "кофе латте", "", "   ", "250"])
def test_text_without_an_amount_and_a_description_is_not_an_expense(text: str) -> None:
    assert parse_expense(text) is None


def test_a_description_over_200_characters_is_refused_as_too_long() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_expense("250 " + "к" * (MAX_DESCRIPTION_LENGTH + 1))

    assert caught.value.reason == "description_too_long"
    assert "description_too_long" in RU_TEXTS


def test_a_description_of_exactly_200_characters_is_accepted() -> None:
    parsed = parse_expense("250 " + "к" * MAX_DESCRIPTION_LENGTH)

    assert parsed is not None
    assert len(parsed.description) == MAX_DESCRIPTION_LENGTH


@pytest.mark.parametrize(
    ("text", "amount"),
    [("250", Decimal("250")), ("250,50", Decimal("250.50")), (" 99.9 ", Decimal("99.90")), ("0.01", Decimal("0.01"))],
)
def test_parse_amount_reads_a_decimal_with_a_point_or_a_comma(text: str, amount: Decimal) -> None:
    assert parse_amount(text) == amount


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "reason_not_a_number"),
        ("1e5", "reason_not_a_number"),
        ("NaN", "reason_not_a_number"),
        ("12.3.4", "reason_not_a_number"),
        ("0", "reason_not_positive"),
        ("0.00", "reason_not_positive"),
        ("-5", "reason_not_positive"),
        ("1000000001", "reason_too_large"),
        ("0.001", "reason_too_many_decimals"),
    ],
)
def test_parse_amount_names_what_is_wrong_with_the_amount(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_amount(text)

    assert caught.value.reason == reason
    assert reason in RU_TEXTS


@pytest.mark.parametrize(("text", "day"), [("1", 1), ("5", 5), (" 31 ", 31), ("05", 5)])
def test_a_day_of_the_month_is_a_whole_number_from_1_to_31(text: str, day: int) -> None:
    assert parse_day(text) == day


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "day_out_of_range"), ("32", "day_out_of_range"), ("-1", "day_out_of_range"),
        ("99999999999999999999", "day_out_of_range"), ("5.5", "day_not_a_number"), ("пятое", "day_not_a_number"),
        ("²", "day_not_a_number"), ("", "day_not_a_number"),
    ],
)
def test_a_day_outside_1_to_31_is_refused_with_a_reason_the_bot_can_explain(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_day(text)

    assert caught.value.reason == reason
    assert reason in RU_TEXTS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 30000 аренда", RecurringInput(5, Decimal("30000"), "аренда")),
        ("31 30 000 аренда квартиры", RecurringInput(31, Decimal("30000"), "аренда квартиры")),
        ("1 499,90 spotify", RecurringInput(1, Decimal("499.90"), "spotify")),
        ("10 300 2 подписки", RecurringInput(10, Decimal("300"), "2 подписки")),
    ],
)
def test_a_recurring_payment_is_a_day_an_amount_and_a_description(text: str, expected: RecurringInput) -> None:
    assert parse_recurring(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 300", "5 300 200", "5 300 ---"])
def test_a_recurring_payment_without_all_three_parts_is_not_one(text: str) -> None:
    assert parse_recurring(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("32 300 аренда", "day_out_of_range"),
        ("пятое 300 аренда", "day_not_a_number"),
        ("5 много аренда", "reason_not_a_number"),
        ("5 0 аренда", "reason_not_positive"),
        ("5 1000000001 аренда", "reason_too_large"),
        ("5 1.001 аренда", "reason_too_many_decimals"),
        ("5 300 " + "я" * (MAX_DESCRIPTION_LENGTH + 1), "description_too_long"),
    ],
)
def test_an_invalid_recurring_payment_names_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_recurring(text)

    assert caught.value.reason == reason


@pytest.mark.parametrize(("text", "expected"), [("7", 7), ("#7", 7), (" 12 ", 12), ("abc", None), ("-3", None),
                                                ("+3", None), ("1" * 19, None), ("", None), ("٣", None)])
def test_an_id_is_a_positive_whole_number_with_an_optional_hash(text: str, expected: int | None) -> None:
    assert parse_id(text) == expected


def test_a_long_invalid_value_is_kept_short_enough_to_echo_in_a_reply() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_amount("9" * 4000)

    assert caught.value.value == "9" * 39 + "…"


# ---------------------------------------------------------------- digits, length, linearity


@pytest.mark.parametrize("text", ["١٢٣ кофе", "кофе ١٢٣", "１２３ кофе", "кофе ۱۲۳"])
def test_an_amount_in_other_scripts_digits_is_refused_and_says_to_write_0_to_9(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_expense(text)

    assert caught.value.reason == "reason_ascii_digits_only"
    assert caught.value.value == text.split()[0 if text[0].isdigit() else -1]
    assert "0–9" in RU_TEXTS["reason_ascii_digits_only"]


@pytest.mark.parametrize("text", ["١٢٣", "１２３", "12٫5"])
def test_parse_amount_takes_only_ascii_digits(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_amount(text)

    assert caught.value.reason in {"reason_ascii_digits_only", "reason_not_a_number"}
    assert caught.value.reason == ("reason_not_a_number" if "٫" in text else "reason_ascii_digits_only")


def test_other_digits_inside_the_description_are_kept_as_its_words() -> None:
    assert parse_expense("250 кофе №٣") == ExpenseInput(amount=Decimal("250"), description="кофе №٣")


def test_a_text_longer_than_telegram_allows_is_refused_before_it_is_parsed() -> None:
    at_the_limit = "250 " + "к" * (MAX_TEXT_LENGTH - 4)
    with pytest.raises(InvalidInput) as caught:
        parse_expense("x" + " 000" * MAX_TEXT_LENGTH + " 1")

    assert caught.value.reason == "text_too_long"
    assert "text_too_long" in RU_TEXTS
    with pytest.raises(InvalidInput) as at_limit:  # 4,096 characters are parsed (and this one is too long)
        parse_expense(at_the_limit)
    assert at_limit.value.reason == "description_too_long"


def test_a_thousands_amount_at_the_end_is_found_as_before() -> None:
    assert parse_expense("такси 1 000 000") == ExpenseInput(amount=Decimal("1000000"), description="такси")
    assert parse_expense("кофе 12 500,50") == ExpenseInput(amount=Decimal("12500.50"), description="кофе")
    assert parse_expense("2 кофе 000") == ExpenseInput(amount=Decimal("2"), description="кофе 000")


class _CountingPattern:
    """Stands in for one of the parser's compiled patterns and counts the characters it is asked to
    match: each match of these anchored patterns costs time in proportion to its input."""

    def __init__(self, pattern: re.Pattern[str], counter: list[int]) -> None:
        self._pattern = pattern
        self._counter = counter

    def match(self, text: str) -> re.Match[str] | None:
        self._counter[0] += len(text)
        return self._pattern.match(text)


def _characters_matched(monkeypatch: pytest.MonkeyPatch, split: Callable[..., int], words: list[str]) -> int:
    counter = [0]
    for name in ("_NUMBER_LIKE", "_LEADING_GROUP", "_THOUSANDS_GROUP"):
        monkeypatch.setattr(parsing, name, _CountingPattern(getattr(parsing, name), counter))
    split(words)
    split(words, from_end=True)
    monkeypatch.undo()
    return counter[0]


@pytest.mark.parametrize("last", ["1", "000", "12"])
def test_finding_the_amount_reads_each_character_a_bounded_number_of_times(monkeypatch, last: str) -> None:
    # Counted, not timed: the regex work grows with the text, never with its square.
    for groups in (100, 1_000, 10_000):
        words = ["x", *(["000"] * groups), last]
        characters = sum(len(word) for word in words)
        assert _characters_matched(monkeypatch, parsing._amount_words, words) <= 3 * characters + 10


def test_the_character_count_tells_the_quadratic_way_apart() -> None:
    # The same count on the splitter before the fix: 1,000 groups cost it hundreds of times the text.
    from expensebot_tools.bench.parsing import amount_words_before_fix

    words = ["x", *(["000"] * 1_000), "1"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        counted = _characters_matched(monkeypatch, amount_words_before_fix, words)
    assert counted > 100 * sum(len(word) for word in words)


@pytest.mark.parametrize(
    "words",
    [["x", "000", "1"], ["1", "000", "000", "такси"], ["такси", "1", "000", "000"], ["12", "000", "345,5"],
     ["a", "-1", "000"], ["a", "1", "000,5", "000"], ["a", "1234", "000"], ["000", "000"], ["a", "+12", "000"]],
)
def test_the_linear_splitter_finds_what_the_quadratic_one_found(words: list[str]) -> None:
    from expensebot_tools.bench.parsing import amount_words_before_fix

    for from_end in (False, True):
        assert parsing._amount_words(words, from_end=from_end) == amount_words_before_fix(words, from_end=from_end)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from(["000", "123", "12", "1", "-5", "+7", "000,5", "12.5", "1234", "кофе", "x", "0"]),
                min_size=1, max_size=12))
def test_on_any_words_the_linear_splitter_agrees_with_the_quadratic_one(words: list[str]) -> None:
    from expensebot_tools.bench.parsing import amount_words_before_fix

    for from_end in (False, True):
        assert parsing._amount_words(words, from_end=from_end) == amount_words_before_fix(words, from_end=from_end)
