"""Budgets per period (issue 15): /budget for a day, a week or a month, in English or Russian words, /budget
off, the listing with spent/limit per period, and the budget check over every period — thresholds that reset
when the period does (a day at midnight and a week on Monday in the application's zone, a month on the 1st),
a budget that counts only its own currency, and the alert the user reads."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from expensebot.bootstrap import get_runtime
from expensebot.jobs.budget_limits import plan_budget_alerts
from tests.conftest import MOSCOW
from tests.conftest import run_sql as rows
from tests.integration.conftest import NBSP


def rub(text: str) -> str:
    """'1 600,00 ₽' as the bot writes it in Russian (non-breaking spaces)."""
    return text.replace(" ", NBSP) + NBSP + "₽"



def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MOSCOW)


def budgets() -> list[tuple[object, ...]]:
    return rows("SELECT user_id, period, category, amount, currency FROM budgets"
                " ORDER BY user_id, period, category NULLS FIRST")


# ---------------------------------------------------------------- /budget <period> <amount> [category]


def test_a_budget_per_day_week_or_month_named_in_english_or_russian(anna):
    assert anna.reply("/budget 30000") == f"Бюджет на месяц: {rub('30 000,00')}."
    assert anna.reply("/budget week 3000") == f"Бюджет на неделю: {rub('3 000,00')}."
    assert anna.reply("/budget day 1000 кафе") == f"Бюджет на «кафе и рестораны»: {rub('1 000,00')} в день."
    assert anna.reply("/budget неделю такси 2000") == f"Бюджет на «транспорт»: {rub('2 000,00')} в неделю."
    assert anna.reply("/budget день 500") == f"Бюджет на день: {rub('500,00')}."
    assert anna.reply("/budget месяц 25000") == f"Бюджет на месяц: {rub('25 000,00')}."  # replaces 30000

    assert budgets() == [
        (1001, "day", None, Decimal("500.00"), "RUB"),
        (1001, "day", "cafe", Decimal("1000.00"), "RUB"),
        (1001, "month", None, Decimal("25000.00"), "RUB"),
        (1001, "week", None, Decimal("3000.00"), "RUB"),
        (1001, "week", "transport", Decimal("2000.00"), "RUB"),
    ]


def test_the_listing_shows_each_period_with_spent_limit_what_is_left_and_the_days_left(anna, system):
    anna.reply("/budget 30000")
    anna.reply("/budget week 3000")
    anna.reply("/budget day 1000 кафе")
    anna.reply("400 продукты", at=at(1, 12))  # Sunday 1 March: this month, the week before
    anna.reply("500 такси", at=at(9, 12))  # Monday 9 March: this week
    anna.reply("1200 обед", at=at(10, 8))  # today, Tuesday 10 March
    system.clock.set(at(10, 12))

    assert anna.reply("/budget", at=at(10, 12)) == (
        "На месяц, осталось 22 дня:\n"
        f"• всего: {rub('2 100,00')} из {rub('30 000,00')} (7 %), осталось {rub('27 900,00')}\n"
        "На неделю, осталось 6 дней:\n"
        f"• всего: {rub('1 700,00')} из {rub('3 000,00')} (56 %), осталось {rub('1 300,00')}\n"
        "На день, до полуночи:\n"
        f"• кафе и рестораны: {rub('1 200,00')} из {rub('1 000,00')} (120 %), сверх бюджета {rub('200,00')}"
    )


def test_the_listing_in_english(emma):
    emma.reply("/budget week 100")
    emma.reply("lunch 45.50", at=at(10, 8))

    assert emma.reply("/budget", at=at(15, 20)) == (
        "For the week, 1 day left:\n• everything: 45.50 ₽ of 100.00 ₽ (45 %), 54.50 ₽ left"
    )


def test_a_budget_is_in_the_users_currency_and_counts_only_expenses_in_it(anna):
    anna.reply("/start")
    rows("UPDATE users SET currency = 'USD' WHERE user_id = 1001")
    assert anna.reply("/budget week 100") == "Бюджет на неделю: 100,00\u00a0$."
    rows("INSERT INTO expenses (user_id, amount, currency, category, description, spent_at, created_at)"
         " VALUES (1001, 5000, 'RUB', 'cafe', 'обед', %(at)s, %(at)s),"
         " (1001, 30, 'USD', 'cafe', 'lunch', %(at)s, %(at)s)",
         {"at": at(10, 8)})

    assert anna.reply("/budget", at=at(10, 12)).endswith(
        f"• всего: 30,00{NBSP}$ из 100,00{NBSP}$ (30 %), осталось 70,00{NBSP}$"
    )


# ---------------------------------------------------------------- /budget off, /budget 0


def test_budget_off_removes_one_budget_and_says_so_when_there_is_none(anna, boris):
    anna.reply("/budget 30000")
    anna.reply("/budget week 3000")
    anna.reply("/budget day 1000 кафе")
    boris.reply("/budget 5000")

    assert anna.reply("/budget off") == f"Убрал бюджет на месяц: {rub('30 000,00')}."
    assert anna.reply("/budget off") == "Бюджета на месяц нет, убирать нечего. Ваши бюджеты: /budget"
    assert anna.reply("/budget off день кафе") == (
        f"Убрал бюджет «кафе и рестораны» на день: {rub('1 000,00')}."
    )
    assert anna.reply("/budget off week такси") == (
        "Бюджета «транспорт» на неделю нет, убирать нечего. Ваши бюджеты: /budget"
    )

    assert budgets() == [(1001, "week", None, Decimal("3000.00"), "RUB"),
                         (1002, "month", None, Decimal("5000.00"), "RUB")]


def test_budget_off_in_english_and_with_words_it_cannot_read(emma):
    emma.reply("/budget week 100")

    assert emma.reply("/budget off week") == "Removed the budget for the week: 100.00 ₽."
    assert emma.reply("/budget off week").startswith("There is no budget for the week, nothing to remove.")
    assert emma.reply("/budget off someday whatever").startswith("Like this: /budget 30000")


@pytest.mark.parametrize(
    ("text", "hint"),
    [("/budget 0", "/budget off"), ("/budget -5", "/budget off"), ("/budget week 0", "/budget off week"),
     ("/budget день кафе 0", "/budget off day кафе"), ("/budget кафе 0", "/budget off кафе")],
)
def test_a_zero_budget_says_how_to_remove_one_and_changes_nothing(anna, text, hint):
    anna.reply("/budget 30000")

    reply = anna.reply(text)

    assert reply.endswith(f"она должна быть больше нуля.\nЧтобы убрать бюджет: {hint}")
    assert budgets() == [(1001, "month", None, Decimal("30000.00"), "RUB")]


# ---------------------------------------------------------------- check_budget_limits over every period


def seed_budget(user_id: int, period: str, limit: str, *, category: str | None = None,
                currency: str = "RUB", language: str = "ru") -> None:
    rows("INSERT INTO users (user_id, chat_id, language_code, currency, created_at, last_seen_at)"
         " VALUES (%s, %s, %s, %s, now(), now()) ON CONFLICT DO NOTHING", (user_id, user_id, language, currency))
    rows("INSERT INTO budgets (user_id, period, category, amount, currency, created_at, updated_at)"
         " VALUES (%s, %s, %s, %s, %s, now(), now())", (user_id, period, category, Decimal(limit), currency))


def spend(user_id: int, amount: str, when: datetime, *, category: str = "cafe", currency: str = "RUB") -> None:
    rows("INSERT INTO expenses (user_id, amount, currency, category, description, spent_at, created_at)"
         " VALUES (%s, %s, %s, %s, 'x', %s, %s)", (user_id, Decimal(amount), currency, category, when, when))


def check(system, slot: datetime, user_id: int) -> list[str]:
    """Runs the job for the slot and delivers what it queued; the alerts the user got from it."""
    system.telegram.add_chat(user_id)
    before = len(system.telegram.sent_messages(user_id))
    outcome = system.fire_schedule("CheckBudgetLimitsFunction", slot)
    assert outcome["status"] == "succeeded", outcome
    drained = system.drain("NotificationsQueue")
    assert drained.failed == 0
    return [call.params["text"] for call in system.telegram.sent_messages(user_id)[before:]]


def test_a_weeks_thresholds_reset_on_monday_in_the_application_zone(system):
    seed_budget(7001, "week", "1000")
    spend(7001, "850", at(8, 20))  # Sunday 8 March, 20:00 Moscow

    (sunday,) = check(system, at(8, 23, 30), 7001)
    assert sunday == (
        "⚠️ Бюджет на неделю: перейден порог 80 %.\n"
        f"Потрачено 850,00{NBSP}₽ из {rub('1 000,00')} (85 %), осталось 150,00{NBSP}₽.\n"
        "До конца недели: 1 день, считая сегодня."
    )
    # 00:10 on Monday in Moscow is still Sunday in UTC: a week counted in UTC would hold 950 (95 %).
    spend(7001, "100", at(9, 0, 10))
    assert check(system, at(9, 0, 30), 7001) == []
    spend(7001, "800", at(9, 10))  # 900 this week: the new week's 80 % and 90 % are due again
    (monday,) = check(system, at(9, 10, 30), 7001)
    assert monday.startswith("⚠️ Бюджет на неделю: перейден порог 90 %.")
    assert monday.endswith("До конца недели: 7 дней, считая сегодня.")
    assert check(system, at(9, 11, 0), 7001) == []  # told once per threshold per week

    assert rows("SELECT period_start, threshold FROM budget_alerts ORDER BY 1") == [
        (date(2026, 3, 2), 80), (date(2026, 3, 9), 90)
    ]


def test_a_days_thresholds_reset_at_midnight_in_the_application_zone(system):
    seed_budget(7002, "day", "1000", category="cafe")
    spend(7002, "900", at(10, 23))

    (evening,) = check(system, at(10, 23, 30), 7002)
    assert evening.startswith("⚠️ Бюджет «кафе и рестораны» на день: перейден порог 90 %.")
    assert evening.endswith("Бюджет на день начнётся заново в полночь.")
    # 00:01 on 11 March in Moscow is 21:01 UTC on the 10th: a UTC day would hold 1,750 (175 %).
    spend(7002, "850", at(11, 0, 1))
    (night,) = check(system, at(11, 0, 30), 7002)
    assert night.startswith("⚠️ Бюджет «кафе и рестораны» на день: перейден порог 80 %.")
    assert f"Потрачено 850,00{NBSP}₽" in night
    spend(7002, "200", at(11, 9), category="transport")  # another category: not this budget's
    assert check(system, at(11, 9, 30), 7002) == []


def test_a_months_thresholds_reset_on_the_first_and_the_alert_says_how_much_over(system):
    seed_budget(7003, "month", "1000", language="en")
    spend(7003, "1100.50", at(28, 12, month=2))

    (february,) = check(system, at(28, 12, 30, month=2), 7003)
    assert february == (
        "🚨 Budget for the month used up: past the 100 % mark.\n"
        "Spent 1,100.50 ₽ of 1,000.00 ₽ (110 %), over by 100.50 ₽.\n"
        "1 day left in the month, today included."
    )
    spend(7003, "800", at(1, 0, 10))
    (march,) = check(system, at(1, 0, 30), 7003)
    assert march.startswith("⚠️ Budget for the month: past the 80 % mark.")
    assert march.endswith("31 days left in the month, today included.")


def test_a_budget_counts_only_expenses_in_its_currency(system):
    seed_budget(7004, "month", "100", currency="USD")
    spend(7004, "5000", at(5, 12), currency="RUB")
    spend(7004, "70", at(5, 12), currency="USD")
    assert check(system, at(5, 12, 30), 7004) == []

    spend(7004, "15", at(6, 12), currency="USD")
    (alert,) = check(system, at(6, 12, 30), 7004)
    assert f"Потрачено 85,00{NBSP}$ из 100,00{NBSP}$ (85 %), осталось 15,00{NBSP}$." in alert


def test_every_period_is_checked_in_one_statement(system, sql_statements):
    for offset, period in enumerate(("day", "week", "month")):
        user_id = 7100 + offset
        seed_budget(user_id, period, "1000")
        spend(user_id, "950", at(10, 8))
    seed_budget(7103, "week", "1000")
    spend(7103, "950", at(8, 8))  # last week's

    alerts = plan_budget_alerts(get_runtime(), at(10, 9, 30))

    assert len(sql_statements) == 1
    assert sorted((a.user_id, a.period, a.period_start, a.threshold, a.days_left) for a in alerts) == [
        (7100, "day", date(2026, 3, 10), 90, 1),
        (7101, "week", date(2026, 3, 9), 90, 6),
        (7102, "month", date(2026, 3, 1), 90, 22),
    ]


def test_the_monthly_report_shows_the_months_budgets_only(system):
    from expensebot.jobs.monthly_reports import build_monthly_report

    seed_budget(7200, "month", "30000")
    seed_budget(7200, "week", "3000")
    seed_budget(7200, "day", "500", category="cafe")
    spend(7200, "700", at(10, 8))

    report = build_monthly_report(get_runtime(), 7200, date(2026, 3, 1))

    assert [(b.category, b.limit, b.spent) for b in report.budgets] == [(None, Decimal("30000.00"),
                                                                          Decimal("700.00"))]


def test_a_weeks_alert_delivered_twice_is_sent_once(system):
    seed_budget(7300, "week", "1000")
    spend(7300, "950", at(10, 8))
    system.telegram.add_chat(7300)

    system.fire_schedule("CheckBudgetLimitsFunction", at(10, 9, 30))
    messages = system.receive_raw("NotificationsQueue")
    assert len(messages) == 1
    assert system.invoke_worker("NotificationsQueue", messages) == {"batchItemFailures": []}
    assert system.invoke_worker("NotificationsQueue", messages) == {"batchItemFailures": []}

    assert len(system.telegram.sent_messages(7300)) == 1
    assert rows("SELECT dedupe_key, status FROM notifications WHERE kind = 'budget_alert'") == [
        (f"budget_alert:{rows('SELECT id FROM budgets')[0][0]}:week:2026-03-09:90", "sent")
    ]
