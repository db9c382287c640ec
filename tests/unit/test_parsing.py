"""What a user types as an expense: an amount and a description, in either order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from expensebot.parsing import (
    MAX_DESCRIPTION_LENGTH,
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
