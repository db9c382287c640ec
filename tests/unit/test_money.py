from decimal import Decimal

import pytest

from expensebot.money import currency, format_money, has_more_decimals_than, quantum, totals_by_currency

NBSP = "\u00a0"


def test_each_currency_is_written_to_its_minor_unit():
    assert format_money(Decimal("1234567.5"), "RUB", "ru") == f"1{NBSP}234{NBSP}567,50{NBSP}₽"
    assert format_money(Decimal("1234567.5"), "RUB", "en") == "1,234,567.50 ₽"
    assert format_money(Decimal("300"), "JPY", "en") == "300 ¥"
    assert format_money(Decimal("1.125"), "BHD", "en") == "1.125 BHD"
    assert format_money(Decimal("-12.5"), "usd", "en") == "-12.50 $"


def test_minor_units_and_unknown_codes():
    assert quantum("RUB") == Decimal("0.01") and quantum("JPY") == Decimal("1") and quantum("KWD") == Decimal("0.001")
    assert has_more_decimals_than(Decimal("0.5"), "JPY") and not has_more_decimals_than(Decimal("12.50"), "EUR")
    assert currency("xts").symbol == "XTS" and currency("XTS").minor_units == 2
    with pytest.raises(ValueError, match="not an ISO 4217"):
        currency("рубль")


def test_totals_never_add_currencies_and_the_users_own_comes_first():
    amounts = [("USD", Decimal("10")), ("RUB", Decimal("100")), ("USD", Decimal("2.5")), ("EUR", Decimal("1"))]
    assert totals_by_currency(amounts, first="USD") == [("USD", Decimal("12.5")), ("EUR", Decimal("1")),
                                                         ("RUB", Decimal("100"))]
    assert totals_by_currency([], first="RUB") == []
