"""What a user types as an expense: an amount and a description, in either order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from expensebot.parsing import MAX_DESCRIPTION_LENGTH, ExpenseInput, InvalidInput, parse_amount, parse_expense
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
