"""The recurring payments' rule, pure: which day of a month a payment falls due, and every due date between
its creation and today. Checked against a day-by-day walk of the calendar, for every day of the month."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from expensebot.jobs.recurring_payments import RecurringDue, due_date_in_month, due_dates, notice_text

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("day", "year", "month", "expected"),
    [
        (31, 2026, 2, date(2026, 2, 28)),
        (30, 2026, 2, date(2026, 2, 28)),
        (29, 2026, 2, date(2026, 2, 28)),
        (28, 2026, 2, date(2026, 2, 28)),
        (31, 2028, 2, date(2028, 2, 29)),
        (29, 2028, 2, date(2028, 2, 29)),
        (31, 2100, 2, date(2100, 2, 28)),  # divisible by 100, not by 400: no 29 February
        (31, 2000, 2, date(2000, 2, 29)),
        (31, 2026, 4, date(2026, 4, 30)),
        (31, 2026, 6, date(2026, 6, 30)),
        (31, 2026, 9, date(2026, 9, 30)),
        (31, 2026, 11, date(2026, 11, 30)),
        (31, 2026, 12, date(2026, 12, 31)),
        (30, 2026, 4, date(2026, 4, 30)),
        (1, 2026, 2, date(2026, 2, 1)),
        (15, 2026, 3, date(2026, 3, 15)),
    ],
)
def test_a_day_past_the_end_of_a_shorter_month_falls_on_its_last_day(day, year, month, expected):
    assert due_date_in_month(day, year, month) == expected


def test_every_day_of_every_month_of_four_years_against_the_calendar():
    for year in (2026, 2027, 2028, 2029):
        for month in range(1, 13):
            days_in_month = [date(year, month, 1) + timedelta(days=i) for i in range(31)]
            days_in_month = [d for d in days_in_month if d.month == month]
            last = days_in_month[-1]
            for day in range(1, 32):
                due = due_date_in_month(day, year, month)
                assert due == (days_in_month[day - 1] if day <= last.day else last)


@pytest.mark.parametrize("day", [0, 32, -1])
def test_a_day_outside_1_to_31_is_refused(day):
    with pytest.raises(ValueError, match="between 1 and 31"):
        due_date_in_month(day, 2026, 3)


def _walk(day_of_month: int, created_on: date, today: date) -> list[date]:
    """Day by day: a date is due when it is the payment's date of its month and not before the creation."""
    found = []
    current = created_on
    while current <= today:
        if current == due_date_in_month(day_of_month, current.year, current.month):
            found.append(current)
        current += timedelta(days=1)
    return found


def test_due_dates_agree_with_a_day_by_day_walk_for_every_day_of_the_month_and_creation_day():
    # Creation on every day from December 2027 to March 2028 (a leap February inside), today on several
    # days around month ends: every combination, for every day of the month.
    creations = [date(2027, 12, 1) + timedelta(days=i) for i in range(121)]
    todays = [date(2027, 12, 31), date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1), date(2028, 4, 30),
              date(2028, 7, 31)]
    for day in range(1, 32):
        for created_on in creations:
            for today in todays:
                assert due_dates(day, created_on, today) == _walk(day, created_on, today), (day, created_on, today)


def test_a_payment_created_after_its_day_of_the_month_is_first_due_the_next_month():
    assert due_dates(5, date(2026, 3, 10), date(2026, 4, 4)) == []
    assert due_dates(5, date(2026, 3, 10), date(2026, 4, 5)) == [date(2026, 4, 5)]


def test_a_payment_created_on_its_day_is_due_that_day():
    assert due_dates(10, date(2026, 3, 10), date(2026, 3, 10)) == [date(2026, 3, 10)]


def test_a_payment_created_on_the_last_day_of_february_for_day_31_is_due_that_day():
    assert due_dates(31, date(2026, 2, 28), date(2026, 3, 31)) == [date(2026, 2, 28), date(2026, 3, 31)]


def test_several_months_are_each_due_once_and_today_counts():
    assert due_dates(31, date(2026, 1, 10), date(2026, 5, 31)) == [
        date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31),
    ]


def test_across_the_new_year():
    assert due_dates(31, date(2026, 12, 31), date(2027, 2, 1)) == [date(2026, 12, 31), date(2027, 1, 31)]


def test_nothing_is_due_before_the_payment_exists_or_before_its_first_date():
    assert due_dates(10, date(2026, 3, 11), date(2026, 3, 10)) == []
    assert due_dates(10, date(2026, 3, 1), date(2026, 3, 9)) == []


def _due(**overrides) -> RecurringDue:
    values = dict(payment_id=7, user_id=1001, chat_id=1001, language_code="ru", due_date=date(2026, 2, 28),
                  amount=Decimal("990.00"), description="интернет", category="communication")
    return RecurringDue(**(values | overrides))


def test_the_dedupe_key_names_the_payment_and_its_due_date():
    assert _due().dedupe_key == "recurring:7:2026-02-28"


def test_the_notice_in_russian_gives_amount_description_category_and_date():
    text = notice_text(date(2026, 2, 28), Decimal("1990.5"), "интернет", "communication", "ru")
    assert f"1{NBSP}990,50{NBSP}₽" in text
    assert "интернет" in text and "связь и интернет" in text
    assert "28 февраля 2026" in text


def test_the_notice_in_english():
    text = notice_text(date(2026, 4, 30), Decimal("12"), "gym", "health", "en")
    assert "Recurring payment recorded: 12.00 ₽ — gym (health)" in text
    assert "30 April 2026" in text


def test_args_round_trip_through_json_exactly():
    due = _due(amount=Decimal("0.01"))
    assert RecurringDue.model_validate_json(due.model_dump_json()) == due


def test_a_recurring_income_notice_says_income_in_its_currency():
    text = notice_text(date(2026, 3, 10), Decimal("1500"), "salary", "salary", "en", "USD", income=True)
    assert text.startswith("🔁 Recurring income recorded: 1,500.00 $ — salary (salary).")


def test_a_unit_enqueued_before_currencies_existed_is_a_rouble_expense():
    due = RecurringDue.model_validate_json(_due().model_dump_json(exclude={"currency", "kind"}))
    assert (due.currency, due.kind) == ("RUB", "expense")
