"""Amounts in a currency: ISO 4217 codes, each currency's minor units and symbol, and how an amount is written
for a person. Pure data and functions; the parser's words for currencies ("руб", "юаней", "$") live with the
parser. Totals are never added across currencies: `totals_by_currency` keeps one per currency."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal


@dataclass(frozen=True)
class Currency:
    code: str  # ISO 4217
    minor_units: int  # decimals the currency has (JPY 0, RUB 2, BHD 3)
    symbol: str  # how people write it after an amount


# The currencies a Russian-speaking user is likely to spend in, with ISO 4217's minor units. A code not
# listed here is still accepted when it has ISO's shape (three letters), with two decimals and its code as
# its symbol, so nobody is refused a currency the table does not know.
CURRENCIES: dict[str, Currency] = {
    currency.code: currency
    for currency in (
        Currency("RUB", 2, "₽"),
        Currency("USD", 2, "$"),
        Currency("EUR", 2, "€"),
        Currency("GBP", 2, "£"),
        Currency("CNY", 2, "¥"),
        Currency("JPY", 0, "¥"),
        Currency("KRW", 0, "₩"),
        Currency("KZT", 2, "₸"),
        Currency("UAH", 2, "₴"),
        Currency("BYN", 2, "Br"),
        Currency("UZS", 2, "сум"),
        Currency("KGS", 2, "сом"),
        Currency("AMD", 2, "֏"),
        Currency("GEL", 2, "₾"),
        Currency("AZN", 2, "₼"),
        Currency("TRY", 2, "₺"),
        Currency("AED", 2, "AED"),
        Currency("THB", 2, "฿"),
        Currency("INR", 2, "₹"),
        Currency("VND", 0, "₫"),
        Currency("IDR", 2, "Rp"),
        Currency("ILS", 2, "₪"),
        Currency("CHF", 2, "CHF"),
        Currency("PLN", 2, "zł"),
        Currency("CZK", 2, "Kč"),
        Currency("RSD", 2, "RSD"),
        Currency("BHD", 3, "BHD"),
        Currency("KWD", 3, "KWD"),
        Currency("OMR", 3, "OMR"),
        Currency("JOD", 3, "JOD"),
        Currency("TND", 3, "TND"),
    )
}


def currency(code: str) -> Currency:
    """The currency of an ISO 4217 code (any case); an unlisted well-formed code gets two decimals."""
    normalized = code.strip().upper()
    if len(normalized) != 3 or not normalized.isascii() or not normalized.isalpha():
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return CURRENCIES.get(normalized) or Currency(normalized, 2, normalized)


def quantum(code: str) -> Decimal:
    """The smallest amount of the currency: 0.01 for RUB, 1 for JPY, 0.001 for BHD."""
    return Decimal(1).scaleb(-currency(code).minor_units)


def has_more_decimals_than(amount: Decimal, code: str) -> bool:
    return amount != amount.quantize(quantum(code), rounding=ROUND_HALF_EVEN)


def format_money(amount: Decimal, code: str, language: str) -> str:
    """Exact to the currency's minor unit: 1234567.5 RUB → '1 234 567,50 ₽' (ru) or '1,234,567.50 ₽' (en);
    300 JPY → '300 ¥'."""
    money = currency(code)
    quantized = amount.quantize(quantum(code), rounding=ROUND_HALF_EVEN)
    sign = "-" if quantized < 0 else ""
    whole, _, fraction = f"{abs(quantized):.{money.minor_units}f}".partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    if language == "en":
        number = ",".join(groups) + (f".{fraction}" if fraction else "")
        return f"{sign}{number} {money.symbol}"
    # U+00A0 keeps the groups and the symbol on one line in Telegram's clients.
    number = chr(0xA0).join(groups) + (f",{fraction}" if fraction else "")
    return f"{sign}{number}{chr(0xA0)}{money.symbol}"


def totals_by_currency(amounts: Iterable[tuple[str, Decimal]], first: str | None = None) -> list[tuple[str, Decimal]]:
    """One total per currency, never one across currencies: `first` (the user's own) leads, then the others
    by code."""
    totals: dict[str, Decimal] = {}
    for code, amount in amounts:
        totals[code] = totals.get(code, Decimal(0)) + amount
    return sorted(totals.items(), key=lambda item: (item[0] != first, item[0]))
