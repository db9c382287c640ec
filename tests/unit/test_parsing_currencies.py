"""What a user types with a currency, an income, or several lines (issue 15): every form the issue lists, the
four failures it reported first, and the refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from expensebot.parsing import (
    MAX_LINES,
    ExpenseInput,
    InvalidInput,
    RecurringInput,
    currency_of_word,
    parse_expense,
    parse_message,
    parse_recurring,
)
from expensebot.texts import catalog, explain_invalid_input


@pytest.mark.parametrize(
    ("text", "amount", "currency", "description"),
    [
        ("$25 обед", "25", "USD", "обед"),
        ("25$ обед", "25", "USD", "обед"),
        ("$ 25 обед", "25", "USD", "обед"),
        ("25 USD обед", "25", "USD", "обед"),
        ("обед 25 usd", "25", "USD", "обед"),
        ("USD 25 обед", "25", "USD", "обед"),
        ("€12,50 кофе", "12.50", "EUR", "кофе"),
        ("кофе 12,50€", "12.50", "EUR", "кофе"),
        ("12,50 Eur кофе", "12.50", "EUR", "кофе"),
        ("такси 450р", "450", "RUB", "такси"),
        ("такси 450 р.", "450", "RUB", "такси"),
        ("такси 450р.", "450", "RUB", "такси"),
        ("Продукты 1500 руб", "1500", "RUB", "Продукты"),
        ("Продукты 1500 руб.", "1500", "RUB", "Продукты"),
        ("1 500 ₽ такси", "1500", "RUB", "такси"),
        ("такси 1 500₽", "1500", "RUB", "такси"),
        ("450 ₽ такси", "450", "RUB", "такси"),
        ("2 рубля жвачка", "2", "RUB", "жвачка"),
        ("подписка 300 рублей", "300", "RUB", "подписка"),
        ("¥300 чай", "300", "CNY", "чай"),
        ("300 юаней чай", "300", "CNY", "чай"),
        ("чай 300 юань", "300", "CNY", "чай"),
        ("5 долларов чаевые", "5", "USD", "чаевые"),
        ("20 баксов сувенир", "20", "USD", "сувенир"),
        ("10 евро музей", "10", "EUR", "музей"),
        ("2000 тенге такси", "2000", "KZT", "такси"),
        ("100 гривен кофе", "100", "UAH", "кофе"),
        ("суши 3000 иен", "3000", "JPY", "суши"),
        ("300 JPY суши", "300", "JPY", "суши"),
        ("обед 25 TRY", "25", "TRY", "обед"),
    ],
)
def test_an_amount_with_its_currency_before_or_after_glued_or_not_is_read_in_that_currency(
    text: str, amount: str, currency: str, description: str
) -> None:
    assert parse_expense(text) == ExpenseInput(Decimal(amount), description, currency)


def test_a_bare_amount_is_in_the_users_currency() -> None:
    assert parse_expense("250 кофе", "USD") == ExpenseInput(Decimal("250"), "кофе", "USD")
    assert parse_expense("250 кофе") == ExpenseInput(Decimal("250"), "кофе", "RUB")
    # A currency typed beside the amount wins over the user's.
    assert parse_expense("450р такси", "USD") == ExpenseInput(Decimal("450"), "такси", "RUB")


def test_yen_sign_is_read_as_yuan_for_this_audience() -> None:
    assert currency_of_word("¥") == "CNY"
    assert currency_of_word("иен") == "JPY"


@pytest.mark.parametrize(("word", "code"), [("usd", "USD"), ("Usd", "USD"), ("EUR", "EUR"), ("руб.", "RUB"),
                                            ("Р", "RUB"), ("try", None), ("TRY", "TRY"), ("xyz", None),
                                            ("кофе", None), ("сом", None)])
def test_currency_words_and_codes_in_any_case_but_not_ordinary_words(word: str, code: str | None) -> None:
    assert currency_of_word(word) == code


# ---------------------------------------------------------------- the four failures the issue reported


def test_25_usd_lunch_is_25_dollars_for_lunch_not_25_roubles_for_usd_lunch() -> None:
    assert parse_expense("25 USD обед") == ExpenseInput(Decimal("25"), "обед", "USD")


@pytest.mark.parametrize(("text", "expected"), [
    ("$25 обед", ExpenseInput(Decimal("25"), "обед", "USD")),
    ("такси 450р", ExpenseInput(Decimal("450"), "такси", "RUB")),
    ("Продукты 1500 руб", ExpenseInput(Decimal("1500"), "Продукты", "RUB")),
])
def test_the_forms_answered_not_understood_before_are_expenses(text: str, expected: ExpenseInput) -> None:
    assert parse_expense(text) == expected


def test_the_rouble_sign_is_not_part_of_the_description() -> None:
    assert parse_expense("450 ₽ такси") == ExpenseInput(Decimal("450"), "такси", "RUB")


def test_a_message_of_two_lines_is_two_expenses() -> None:
    lines = parse_message("кофе 200\nтакси 450")

    assert [line.entry for line in lines] == [ExpenseInput(Decimal("200"), "кофе"),
                                              ExpenseInput(Decimal("450"), "такси")]


# ---------------------------------------------------------------- decimals per currency


@pytest.mark.parametrize(("text", "reason", "currency"), [
    ("300,5 JPY суши", "reason_no_decimals", "JPY"),
    ("суши 300.5 иен", "reason_no_decimals", "JPY"),
    ("12,345 $ кофе", "reason_too_many_decimals", "USD"),
    ("12.345 кофе", "reason_too_many_decimals", "RUB"),
])
def test_an_amount_with_more_decimals_than_its_currency_has_is_refused(text: str, reason: str,
                                                                       currency: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_expense(text)

    assert (caught.value.reason, caught.value.currency) == (reason, currency)


def test_the_refusal_of_a_fraction_of_a_yen_says_so() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_expense("300,5 JPY суши")

    assert explain_invalid_input("ru", caught.value) == "Сумма «300,5» не подходит: у JPY нет дробной части."
    assert explain_invalid_input("en", caught.value) == 'The amount "300,5" does not work: JPY has no fractional units.'


def test_a_whole_yen_amount_and_a_bare_amount_in_a_yen_users_currency_are_taken() -> None:
    assert parse_expense("300 JPY суши") == ExpenseInput(Decimal("300"), "суши", "JPY")
    with pytest.raises(InvalidInput):
        parse_expense("300,50 суши", "JPY")


# ---------------------------------------------------------------- incomes


@pytest.mark.parametrize(("text", "expected"), [
    ("+50000 зарплата", ExpenseInput(Decimal("50000"), "зарплата", income=True)),
    ("+ 50000 зарплата", ExpenseInput(Decimal("50000"), "зарплата", income=True)),
    ("зарплата +50 000", ExpenseInput(Decimal("50000"), "зарплата", income=True)),
    ("+$500 фриланс", ExpenseInput(Decimal("500"), "фриланс", "USD", income=True)),
    ("+500 USD фриланс", ExpenseInput(Decimal("500"), "фриланс", "USD", income=True)),
])
def test_an_amount_with_a_plus_is_an_income(text: str, expected: ExpenseInput) -> None:
    assert parse_expense(text) == expected


def test_a_negative_amount_is_still_refused_not_taken_as_anything() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_expense("-$5 кофе")
    assert caught.value.reason == "reason_not_positive"


# ---------------------------------------------------------------- several lines


def test_each_line_is_parsed_on_its_own_and_a_bad_line_costs_the_others_nothing() -> None:
    lines = parse_message("кофе 200\n\n  $25 обед  \nпривет\n0 такси\n+1000 подарок", "RUB")

    assert [(line.number, line.text) for line in lines] == [
        (1, "кофе 200"), (2, "$25 обед"), (3, "привет"), (4, "0 такси"), (5, "+1000 подарок")]
    assert lines[0].entry == ExpenseInput(Decimal("200"), "кофе")
    assert lines[1].entry == ExpenseInput(Decimal("25"), "обед", "USD")
    assert (lines[2].entry, lines[2].error) == (None, None)  # not understood
    assert lines[3].entry is None and lines[3].error is not None and lines[3].error.reason == "reason_not_positive"
    assert lines[4].entry == ExpenseInput(Decimal("1000"), "подарок", income=True)


def test_a_single_line_message_is_one_line() -> None:
    (line,) = parse_message("250 кофе", "EUR")
    assert line.entry == ExpenseInput(Decimal("250"), "кофе", "EUR")


def test_more_lines_than_one_reply_can_confirm_are_refused_as_a_whole() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_message("\n".join(["1 a"] * (MAX_LINES + 1)))

    assert caught.value.reason == "too_many_lines"
    assert "too_many_lines" in catalog("ru") and "too_many_lines" in catalog("en")
    assert len(parse_message("\n".join(["1 a"] * MAX_LINES))) == MAX_LINES


# ---------------------------------------------------------------- recurring payments and incomes


@pytest.mark.parametrize(("text", "expected"), [
    ("10 +50000 зарплата", RecurringInput(10, Decimal("50000"), "зарплата", "RUB", income=True)),
    ("10 + 50000 зарплата", RecurringInput(10, Decimal("50000"), "зарплата", "RUB", income=True)),
    ("5 $300 аренда", RecurringInput(5, Decimal("300"), "аренда", "USD")),
    ("5 300 USD аренда", RecurringInput(5, Decimal("300"), "аренда", "USD")),
    ("5 30 000 ₽ аренда", RecurringInput(5, Decimal("30000"), "аренда", "RUB")),
    ("5 30000 аренда", RecurringInput(5, Decimal("30000"), "аренда", "EUR")),
])
def test_a_recurring_payment_or_income_keeps_its_currency(text: str, expected: RecurringInput) -> None:
    assert parse_recurring(text, "EUR" if expected.currency == "EUR" else "RUB") == expected
