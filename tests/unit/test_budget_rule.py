"""The budget alert rule: once per threshold per month, a jump names only the highest threshold crossed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from expensebot.jobs.budget_limits import BudgetAlert, alert_text, highest_new_threshold

DEFAULT_THRESHOLDS = (80, 90, 100)
LIMIT = Decimal("1000")
NBSP = "\u00a0"


def percent_of_limit(percent: str) -> Decimal:
    return LIMIT * Decimal(percent) / 100


def test_spending_below_80_percent_alerts_nothing() -> None:
    assert highest_new_threshold(percent_of_limit("79"), LIMIT, DEFAULT_THRESHOLDS, None) is None


def test_nothing_spent_alerts_nothing() -> None:
    assert highest_new_threshold(Decimal("0"), LIMIT, DEFAULT_THRESHOLDS, None) is None


def test_exactly_80_percent_alerts_at_80() -> None:
    assert highest_new_threshold(percent_of_limit("80"), LIMIT, DEFAULT_THRESHOLDS, None) == 80


def test_a_jump_from_70_to_105_percent_alerts_once_at_100() -> None:
    # 70 % was below every threshold, so nothing was alerted before the jump.
    assert highest_new_threshold(percent_of_limit("70"), LIMIT, DEFAULT_THRESHOLDS, None) is None
    assert highest_new_threshold(percent_of_limit("105"), LIMIT, DEFAULT_THRESHOLDS, None) == 100


def test_already_alerted_at_80_and_now_at_85_percent_alerts_nothing() -> None:
    assert highest_new_threshold(percent_of_limit("85"), LIMIT, DEFAULT_THRESHOLDS, 80) is None


def test_already_alerted_at_80_and_now_at_95_percent_alerts_at_90() -> None:
    assert highest_new_threshold(percent_of_limit("95"), LIMIT, DEFAULT_THRESHOLDS, 80) == 90


def test_already_alerted_at_90_and_now_at_100_percent_alerts_at_100() -> None:
    assert highest_new_threshold(percent_of_limit("100"), LIMIT, DEFAULT_THRESHOLDS, 90) == 100


@pytest.mark.parametrize("percent", ["100", "101", "150", "1000", "100000"])
def test_after_the_100_percent_alert_nothing_more_is_alerted_that_month(percent: str) -> None:
    assert highest_new_threshold(percent_of_limit(percent), LIMIT, DEFAULT_THRESHOLDS, 100) is None


@pytest.mark.parametrize(
    ("percent", "already_alerted", "expected"),
    [("49", None, None), ("50", None, 50), ("74.99", 50, None), ("75", 50, 75), ("200", None, 75), ("200", 75, None)],
)
def test_custom_thresholds_of_50_and_75_percent(
    percent: str, already_alerted: int | None, expected: int | None
) -> None:
    assert highest_new_threshold(percent_of_limit(percent), LIMIT, (50, 75), already_alerted) == expected


def test_thresholds_given_out_of_order_still_alert_the_highest_crossed() -> None:
    assert highest_new_threshold(percent_of_limit("95"), LIMIT, (100, 80, 90), None) == 90


def test_one_kopeck_short_of_80_percent_alerts_nothing() -> None:
    assert highest_new_threshold(Decimal("799.99"), Decimal("1000"), DEFAULT_THRESHOLDS, None) is None


def test_exactly_800_of_1000_alerts_at_80() -> None:
    assert highest_new_threshold(Decimal("800.00"), Decimal("1000"), DEFAULT_THRESHOLDS, None) == 80


def test_a_limit_with_kopecks_is_compared_exactly() -> None:
    # 80 % of 333.33 is 266.664: 266.66 is below it, 266.67 above.
    assert highest_new_threshold(Decimal("266.66"), Decimal("333.33"), DEFAULT_THRESHOLDS, None) is None
    assert highest_new_threshold(Decimal("266.67"), Decimal("333.33"), DEFAULT_THRESHOLDS, None) == 80


def make_alert(**overrides: object) -> BudgetAlert:
    values: dict[str, object] = {
        "budget_id": 1,
        "user_id": 42,
        "chat_id": 42,
        "language_code": None,
        "category": None,
        "period_start": date(2026, 3, 1),
        "currency": "RUB",
        "threshold": 90,
        "spent": Decimal("1234567.5"),
        "limit": Decimal("1300000"),
    }
    values.update(overrides)
    return BudgetAlert.model_validate(values)


def test_an_alert_is_in_russian_by_default() -> None:
    text = alert_text(make_alert(language_code=None))

    assert "Бюджет" in text
    assert "Потрачено" in text


@pytest.mark.parametrize("language_code", ["ru", "uk", "de"])
def test_an_alert_is_in_russian_for_a_user_whose_client_is_not_in_english(language_code: str) -> None:
    assert "Бюджет" in alert_text(make_alert(language_code=language_code))


@pytest.mark.parametrize("language_code", ["en", "en-US", "EN-gb"])
def test_an_alert_is_in_english_for_a_user_whose_client_is_in_english(language_code: str) -> None:
    text = alert_text(make_alert(language_code=language_code))

    assert "Budget" in text
    assert "Spent" in text
    assert "Бюджет" not in text


def test_a_russian_alert_states_the_threshold_and_the_amounts_to_the_kopeck() -> None:
    text = alert_text(make_alert(threshold=90, spent=Decimal("1234567.5"), limit=Decimal("1300000")))

    assert "90 %" in text
    assert f"1{NBSP}234{NBSP}567,50{NBSP}₽" in text
    assert f"1{NBSP}300{NBSP}000,00{NBSP}₽" in text


def test_an_english_alert_states_the_threshold_and_the_amounts_to_the_kopeck() -> None:
    text = alert_text(
        make_alert(language_code="en", threshold=90, spent=Decimal("1234567.5"), limit=Decimal("1300000"))
    )

    assert "90 %" in text
    assert "1,234,567.50 ₽" in text
    assert "1,300,000.00 ₽" in text


def test_an_alert_at_100_percent_says_the_budget_is_used_up() -> None:
    russian = alert_text(make_alert(threshold=100))
    english = alert_text(make_alert(threshold=100, language_code="en"))

    assert "исчерпан" in russian
    assert "100 %" in russian
    assert "used up" in english
    assert "100 %" in english


def test_an_alert_below_100_percent_does_not_say_the_budget_is_used_up() -> None:
    assert "исчерпан" not in alert_text(make_alert(threshold=80))
    assert "used up" not in alert_text(make_alert(threshold=80, language_code="en"))


def test_an_alert_is_in_the_budgets_currency() -> None:
    text = alert_text(make_alert(language_code="en", spent=Decimal("10"), limit=Decimal("12"), currency="EUR"))

    assert "10.00 €" in text
    assert "12.00 €" in text
    assert "₽" not in text


def test_an_alert_in_a_currency_without_minor_units_shows_none() -> None:
    text = alert_text(make_alert(spent=Decimal("9500"), limit=Decimal("10000"), currency="JPY"))

    assert f"9{NBSP}500{NBSP}¥" in text
    assert f"10{NBSP}000{NBSP}¥" in text


def test_an_alert_queued_before_currencies_is_in_the_default_currency() -> None:
    assert "€" in alert_text(make_alert(currency=None), default_currency="EUR")


def test_a_weeks_alert_names_the_period_the_amount_left_and_the_days_left_in_russian() -> None:
    text = alert_text(make_alert(period="week", period_start=date(2026, 3, 30), category="cafe", threshold=80,
                                 spent=Decimal("2500"), limit=Decimal("3000"), days_left=3))

    assert text == (
        "⚠️ Бюджет «кафе и рестораны» на неделю: перейден порог 80 %.\n"
        f"Потрачено 2{NBSP}500,00{NBSP}₽ из 3{NBSP}000,00{NBSP}₽ (83 %), осталось 500,00{NBSP}₽.\n"
        "До конца недели: 3 дня, считая сегодня."
    )


def test_a_months_alert_over_the_limit_says_how_much_over_in_english() -> None:
    text = alert_text(make_alert(language_code="en", threshold=100, spent=Decimal("31200.50"),
                                 limit=Decimal("30000"), days_left=1, currency="USD"))

    assert text == (
        "🚨 Budget for the month used up: past the 100 % mark.\n"
        "Spent 31,200.50 $ of 30,000.00 $ (104 %), over by 1,200.50 $.\n"
        "1 day left in the month, today included."
    )


def test_a_days_alert_says_it_starts_again_at_midnight() -> None:
    russian = alert_text(make_alert(period="day", period_start=date(2026, 3, 5), days_left=1))
    english = alert_text(make_alert(period="day", period_start=date(2026, 3, 5), days_left=1, language_code="en"))

    assert russian.startswith("⚠️ Бюджет на день:")
    assert russian.endswith("Бюджет на день начнётся заново в полночь.")
    assert english.startswith("⚠️ Budget for the day:")
    assert english.endswith("The day's budget starts again at midnight.")


@pytest.mark.parametrize(("days", "words"), [(1, "1 день"), (2, "2 дня"), (5, "5 дней"), (11, "11 дней"),
                                             (21, "21 день"), (24, "24 дня"), (31, "31 день")])
def test_the_days_left_in_russian_take_the_right_form(days: int, words: str) -> None:
    assert f"До конца месяца: {words}," in alert_text(make_alert(days_left=days))


def test_each_period_has_its_own_dedupe_key_and_a_months_is_the_one_it_had_before_periods() -> None:
    assert make_alert(threshold=80).dedupe_key == "budget_alert:1:2026-03:80"
    assert make_alert(period="week", period_start=date(2026, 3, 30)).dedupe_key == "budget_alert:1:week:2026-03-30:90"
    assert make_alert(period="day", period_start=date(2026, 3, 5)).dedupe_key == "budget_alert:1:day:2026-03-05:90"


def test_a_message_queued_before_periods_reads_as_the_months() -> None:
    alert = BudgetAlert.model_validate({"budget_id": 1, "user_id": 2, "chat_id": 2, "month": "2026-03-01",
                                        "threshold": 80, "spent": "85", "limit": "100"})

    assert (alert.period, alert.period_start, alert.currency) == ("month", date(2026, 3, 1), None)
    again = BudgetAlert.model_validate(alert.model_dump(mode="json"))
    assert again == alert


def test_a_category_budget_alert_names_the_category_in_russian() -> None:
    text = alert_text(make_alert(category="cafe"))

    assert "«кафе и рестораны»" in text
    assert "cafe" not in text


def test_a_category_budget_alert_names_the_category_in_english() -> None:
    text = alert_text(make_alert(category="transport", language_code="en"))

    assert '"transport"' in text


def test_a_total_budget_alert_speaks_of_the_month() -> None:
    assert "на месяц" in alert_text(make_alert(category=None))
    assert "for the month" in alert_text(make_alert(category=None, language_code="en"))
