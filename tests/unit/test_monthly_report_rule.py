"""The monthly report's rule and words: only the month's last day (in the application's zone), shares largest
first, the change against the previous month, budgets, and amounts exact to the kopeck in both languages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from expensebot.jobs.monthly_reports import (
    BudgetStatus,
    MonthlyReport,
    ReportUnit,
    category_shares,
    is_last_day_of_month,
    month_due,
    months_to_report,
    report_from_rows,
    report_text,
)

MOSCOW = ZoneInfo("Europe/Moscow")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("day", "last"),
    [
        (date(2026, 4, 30), True),   # 30-day month
        (date(2026, 4, 29), False),
        (date(2026, 3, 31), True),   # 31-day month
        (date(2026, 3, 30), False),
        (date(2026, 2, 28), True),   # February of a common year
        (date(2026, 2, 27), False),
        (date(2028, 2, 29), True),   # February of a leap year
        (date(2028, 2, 28), False),
        (date(2026, 12, 31), True),  # the year's end
        (date(2026, 1, 1), False),
    ],
)
def test_the_last_day_of_each_kind_of_month(day: date, last: bool) -> None:
    assert is_last_day_of_month(day) is last


def test_the_20_00_slot_of_a_last_day_in_moscow_is_due_for_that_month() -> None:
    assert month_due(datetime(2026, 4, 30, 20, 0, tzinfo=MOSCOW), MOSCOW) == date(2026, 4, 1)
    assert month_due(datetime(2026, 4, 29, 20, 0, tzinfo=MOSCOW), MOSCOW) is None
    assert month_due(datetime(2028, 2, 29, 20, 0, tzinfo=MOSCOW), MOSCOW) == date(2028, 2, 1)


def test_the_slot_is_read_in_the_application_zone_not_in_utc() -> None:
    # 20:00 on 31 March in Los Angeles is 03:00 on 1 April in UTC (as Scheduler writes the slot).
    slot = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
    assert month_due(slot, LOS_ANGELES) == date(2026, 3, 1)
    assert month_due(slot, MOSCOW) is None
    # Midnight in Moscow is still the previous day in UTC: 1 April is no last day.
    assert month_due(datetime(2026, 3, 31, 21, 0, tzinfo=UTC), MOSCOW) is None
    assert month_due(datetime(2026, 3, 31, 20, 59, tzinfo=UTC), MOSCOW) == date(2026, 3, 1)


def test_a_unit_is_once_per_user_and_month_and_a_request_once_per_request() -> None:
    monthly = ReportUnit(user_id=7, chat_id=7, month=date(2026, 3, 1))
    requested = ReportUnit(user_id=7, chat_id=7, month=date(2026, 3, 1), request_id="upd-42")
    assert (monthly.dedupe_key, monthly.kind) == ("monthly_report:7:2026-03", "monthly_report")
    assert (requested.dedupe_key, requested.kind) == ("report_request:upd-42", "report")


def test_a_unit_whose_month_is_not_a_first_day_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="first day"):
        ReportUnit(user_id=7, chat_id=7, month=date(2026, 3, 15))


def test_categories_come_largest_first_with_their_share_to_one_decimal() -> None:
    shares = category_shares({"transport": Decimal("100"), "groceries": Decimal("600"), "cafe": Decimal("300")})
    assert [(s.category, s.amount, s.share) for s in shares] == [
        ("groceries", Decimal("600"), Decimal("60.0")),
        ("cafe", Decimal("300"), Decimal("30.0")),
        ("transport", Decimal("100"), Decimal("10.0")),
    ]


def test_equal_categories_are_ordered_by_name_and_thirds_are_rounded_to_one_decimal() -> None:
    shares = category_shares({"other": Decimal("1"), "cafe": Decimal("1"), "health": Decimal("1")})
    assert [(s.category, s.share) for s in shares] == [
        ("cafe", Decimal("33.3")), ("health", Decimal("33.3")), ("other", Decimal("33.3")),
    ]


def _report(
    amounts: dict[str, str], previous: str = "0", budgets: tuple[BudgetStatus, ...] = (), count: int = 3
) -> MonthlyReport:
    """A report built from the rows the report's query returns: March's categories (the whole count on the
    first), February's total, and the budgets' limits (what they spent follows from the categories)."""
    rows: list[tuple[object, ...]] = [
        ("expense_category", "RUB", category, Decimal(amount), count if i == 0 else 0)
        for i, (category, amount) in enumerate(amounts.items())
    ]
    if Decimal(previous):
        rows.append(("expense_month", "RUB", "2026-02", Decimal(previous), 1))
    rows += [("budget", "RUB", budget.category, budget.limit, None) for budget in budgets]
    report = report_from_rows(1, date(2026, 3, 1), rows)
    assert [(b.category, b.spent) for b in report.budgets] == [(b.category, b.spent) for b in budgets]
    return report


def test_the_russian_report_shows_every_amount_to_the_kopeck() -> None:
    text = report_text(_report({"groceries": "1000.00", "cafe": "234.56"}, previous="1000.00"), "ru")
    assert text.splitlines() == [
        "📊 Отчёт за март 2026",
        "",
        f"Всего: 1{NBSP}234,56{NBSP}₽ (расходов: 3)",
        "",
        "По категориям:",
        f"• продукты: 1{NBSP}000,00{NBSP}₽ (81,0 %)",
        f"• кафе и рестораны: 234,56{NBSP}₽ (19,0 %)",
        "",
        f"Прошлый месяц (февраль): 1{NBSP}000,00{NBSP}₽",
        f"Изменение: +234,56{NBSP}₽ (+23,5 %)",
    ]


def test_kopecks_add_up_exactly() -> None:
    text = report_text(_report({"other": "0.03"}, count=2), "ru")
    assert f"Всего: 0,03{NBSP}₽" in text


def test_a_fall_against_the_previous_month_has_a_minus_sign() -> None:
    text = report_text(_report({"cafe": "750.00"}, previous="1000.00"), "en")
    assert "Change: -250.00 ₽ (-25.0 %)" in text


def test_without_spending_in_the_previous_month_there_is_no_percent_but_a_sentence() -> None:
    text = report_text(_report({"cafe": "100.00"}), "ru")
    assert "Прошлый месяц (февраль): расходов не было, сравнивать не с чем." in text
    assert "Изменение" not in text


def test_budgets_show_spent_of_limit_and_by_how_much_one_is_exceeded() -> None:
    budgets = (
        BudgetStatus(None, Decimal("30000"), Decimal("1234.56")),
        BudgetStatus("cafe", Decimal("200"), Decimal("234.56")),
    )
    text = report_text(_report({"groceries": "1000.00", "cafe": "234.56"}, budgets=budgets), "ru")
    assert text.splitlines()[-3:] == [
        "Бюджеты:",
        f"• Весь месяц: 1{NBSP}234,56{NBSP}₽ из 30{NBSP}000,00{NBSP}₽ (4 %)",
        f"• «кафе и рестораны»: 234,56{NBSP}₽ из 200,00{NBSP}₽ (117 %) — превышен на 34,56{NBSP}₽",
    ]


def test_the_english_report_is_in_english_with_english_numbers() -> None:
    budgets = (BudgetStatus("cafe", Decimal("500"), Decimal("234.56")),)
    text = report_text(_report({"groceries": "1000.00", "cafe": "234.56"}, previous="1000.00", budgets=budgets), "en")
    assert text.splitlines() == [
        "📊 Report for March 2026",
        "",
        "Total: 1,234.56 ₽ (expenses: 3)",
        "",
        "By category:",
        "• groceries: 1,000.00 ₽ (81.0 %)",
        "• cafés and restaurants: 234.56 ₽ (19.0 %)",
        "",
        "Last month (February): 1,000.00 ₽",
        "Change: +234.56 ₽ (+23.5 %)",
        "",
        "Budgets:",
        "• \"cafés and restaurants\": 234.56 ₽ of 500.00 ₽ (46 %)",
    ]


def test_an_on_demand_report_of_a_month_without_expenses_says_so() -> None:
    assert report_text(_report({}, count=0), "en") == "📊 No expenses in March 2026."


@pytest.mark.parametrize(
    ("slot", "owed", "months"),
    [
        (datetime(2026, 4, 1, 20, 0, tzinfo=MOSCOW), True, [date(2026, 3, 1)]),
        (datetime(2026, 4, 1, 20, 0, tzinfo=MOSCOW), False, []),
        (datetime(2026, 4, 30, 20, 0, tzinfo=MOSCOW), True, [date(2026, 3, 1), date(2026, 4, 1)]),
        (datetime(2026, 4, 30, 20, 0, tzinfo=MOSCOW), False, [date(2026, 4, 1)]),
        # January's catch-up is December of the year before.
        (datetime(2027, 1, 1, 20, 0, tzinfo=MOSCOW), True, [date(2026, 12, 1)]),
        # 20:00 on 1 April in Los Angeles is already 2 April in UTC: the month is still read in the app's zone.
        (datetime(2026, 4, 2, 3, 0, tzinfo=UTC), True, [date(2026, 3, 1)]),
    ],
)
def test_a_slot_reports_the_owed_previous_month_first_then_its_own_on_the_last_day(slot, owed, months):
    tz = LOS_ANGELES if slot.tzinfo is UTC else MOSCOW
    assert months_to_report(slot, tz, previous_month_owed=owed) == months


def test_a_month_in_several_currencies_has_one_block_per_currency_never_one_total() -> None:
    rows = [("expense_category", "RUB", "groceries", Decimal("1000.00"), 2),
            ("expense_category", "RUB", "cafe", Decimal("250.00"), 1),
            ("expense_category", "USD", "cafe", Decimal("25.00"), 1), ("user", "RUB", None, None, None)]

    text = report_text(report_from_rows(1, date(2026, 11, 1), rows), "ru")

    assert f"Всего: 1{NBSP}250,00{NBSP}₽ (расходов: 3)" in text and f"Всего: 25,00{NBSP}$ (расходов: 1)" in text
    # The user's currency first; the roubles' shares are of the roubles only: 1 000 of 1 250 is 80 %.
    assert text.index("₽ (расходов") < text.index("$ (расходов")
    assert f"• продукты: 1{NBSP}000,00{NBSP}₽ (80,0 %)" in text
    assert "1 275" not in text.replace(NBSP, " ")


def test_a_report_whose_main_currency_is_not_the_rouble_writes_it_everywhere() -> None:
    rows = [("expense_category", "EUR", "cafe", Decimal("12.50"), 3),
            ("expense_month", "EUR", "2026-10", Decimal("10.00"), 1), ("user", "EUR", None, None, None)]

    text = report_text(report_from_rows(1, date(2026, 11, 1), rows), "en")

    assert "Total: 12.50 € (expenses: 3)" in text and "₽" not in text
    assert "Change: +2.50 € (+25.0 %)" in text
