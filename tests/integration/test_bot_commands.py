"""Every command of the bot, driven through the webhook handler as API Gateway events: each test checks the
reply a user reads and what the database holds afterwards."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from tests.conftest import MOSCOW
from tests.conftest import run_sql as rows
from tests.integration.conftest import NBSP

NO_BUDGETS = "Бюджетов пока нет. Задайте: /budget 30000 (на месяц), /budget week 3000 или /budget day 1000 кафе"



# ---------------------------------------------------------------- /start, /help, hints


def test_start_registers_the_chat_and_explains_every_command(anna):
    reply = anna.reply("/start")

    assert reply.startswith("Привет, Анна!")
    for command in ("/budget", "/recurring", "/recurring_off", "/report", "/undo", "/help"):
        assert command in reply
    assert rows("SELECT user_id, chat_id, username, language_code, is_active FROM users") == [
        (1001, 1001, "anna", "ru", True)
    ]


def test_start_reactivates_a_user_who_had_blocked_the_bot(anna):
    anna.say("/start")
    rows("UPDATE users SET is_active = false, deactivated_reason = 'Forbidden: bot was blocked by the user'"
         " RETURNING user_id")

    anna.reply("/start")

    assert rows("SELECT is_active, deactivated_reason FROM users") == [(True, None)]


def test_help_lists_the_commands(anna):
    reply = anna.reply("/help")

    assert reply.startswith("Команды:")
    assert "/recurring_off 7" in reply and "/undo" in reply


@pytest.mark.parametrize("text", ["привет", "/unknown", "/recurringoff 3", "кофе латте"])
def test_anything_not_understood_gets_a_short_hint(anna, text):
    reply = anna.reply(text)

    assert reply == "Не понял. Напишите сумму и описание, например «250 кофе», или /help."
    assert anna.last_response["statusCode"] == 200
    assert rows("SELECT count(*) FROM expenses") == [(0,)]


# ---------------------------------------------------------------- expenses


def test_an_expense_in_any_of_the_four_forms_is_stored_and_confirmed_with_the_month_total(anna):
    replies = [anna.reply(text) for text in ("250 кофе", "кофе 250", "250.50 такси", "250,50 такси")]

    assert rows("SELECT amount, category, description FROM expenses ORDER BY id") == [
        (Decimal("250.00"), "cafe", "кофе"),
        (Decimal("250.00"), "cafe", "кофе"),
        (Decimal("250.50"), "transport", "такси"),
        (Decimal("250.50"), "transport", "такси"),
    ]
    assert replies[0] == f"Записал 250,00{NBSP}₽ — кафе и рестораны (кофе).\nЗа март потрачено 250,00{NBSP}₽."
    assert replies[3] == (
        f"Записал 250,50{NBSP}₽ — транспорт (такси).\nЗа март потрачено 1{NBSP}001,00{NBSP}₽."
    )


def test_an_expense_is_stored_at_the_time_of_the_message_not_of_its_delivery(system, anna):
    written = datetime(2026, 3, 9, 23, 50, tzinfo=MOSCOW)  # delivered the next morning, 10 March
    anna.reply("1200 продукты", at=written)

    assert rows("SELECT spent_at, category FROM expenses") == [(written, "groceries")]


@pytest.mark.parametrize(
    ("description", "category"),
    [
        ("продукты", "groceries"), ("кафе", "cafe"), ("метро", "transport"), ("аренда", "housing"),
        ("аптека", "health"), ("кино", "entertainment"), ("кроссовки", "clothing"), ("интернет", "communication"),
        ("подарок", "other"),
    ],
)
def test_the_category_is_guessed_from_the_description(anna, description, category):
    anna.reply(f"100 {description}")

    assert rows("SELECT category FROM expenses") == [(category,)]


def test_the_month_total_counts_only_this_month_and_only_the_users_own_expenses(anna, boris):
    anna.reply("500 кофе", at=datetime(2026, 2, 28, 12, 0, tzinfo=MOSCOW))
    boris.reply("700 кофе")

    reply = anna.reply("100 кофе")

    assert reply.endswith(f"За март потрачено 100,00{NBSP}₽.")


# ---------------------------------------------------------------- /budget


def test_budget_sets_the_monthly_and_a_category_budget_and_shows_spent_limit_and_percent(anna):
    assert anna.reply("/budget 30000") == f"Бюджет на месяц: 30{NBSP}000,00{NBSP}₽."
    assert anna.reply("/budget кафе 5000") == f"Бюджет на «кафе и рестораны»: 5{NBSP}000,00{NBSP}₽ в месяц."
    anna.reply("2000 кофе")
    anna.reply("1000 такси")

    shown = anna.reply("/budget")

    assert shown == (
        "На месяц, осталось 22 дня:\n"
        f"• всего: 3{NBSP}000,00{NBSP}₽ из 30{NBSP}000,00{NBSP}₽ (10 %), осталось 27{NBSP}000,00{NBSP}₽\n"
        f"• кафе и рестораны: 2{NBSP}000,00{NBSP}₽ из 5{NBSP}000,00{NBSP}₽ (40 %), осталось 3{NBSP}000,00{NBSP}₽"
    )
    assert rows("SELECT category, amount FROM budgets ORDER BY category NULLS FIRST") == [
        (None, Decimal("30000.00")), ("cafe", Decimal("5000.00"))
    ]


def test_setting_a_budget_again_replaces_it(anna):
    anna.reply("/budget 30000")
    anna.reply("/budget 25000")

    assert rows("SELECT period, category, amount FROM budgets") == [("month", None, Decimal("25000.00"))]


def test_budget_without_any_budget_says_how_to_set_one(anna):
    assert anna.reply("/budget") == NO_BUDGETS


def test_budget_shows_only_the_users_own_budgets(anna, boris):
    boris.reply("/budget 1000")

    assert anna.reply("/budget") == NO_BUDGETS


# ---------------------------------------------------------------- /recurring, /recurring_off


def test_recurring_adds_a_monthly_payment_with_a_guessed_category(anna):
    reply = anna.reply("/recurring 5 30 000 аренда квартиры")

    ((payment_id, day, amount, category, description, active),) = rows(
        "SELECT id, day_of_month, amount, category, description, is_active FROM recurring_payments"
    )
    assert (day, amount, category, description, active) == (
        5, Decimal("30000.00"), "housing", "аренда квартиры", True
    )
    assert reply == (
        f"Регулярный платёж №{payment_id}: 30{NBSP}000,00{NBSP}₽ — жильё и коммунальные (аренда квартиры), "
        "каждый месяц 5-го числа."
    )


def test_a_payment_on_day_29_to_31_says_when_it_falls_in_shorter_months(anna):
    reply = anna.reply("/recurring 31 500 интернет")

    assert reply.endswith("В месяцах, где нет 31-го числа, — в последний день месяца.")
    assert rows("SELECT day_of_month, category FROM recurring_payments") == [(31, "communication")]


def test_recurring_lists_the_active_payments_with_their_numbers_by_day(anna):
    anna.reply("/recurring 25 800 мобильная связь")
    anna.reply("/recurring 5 30000 аренда")

    listing = anna.reply("/recurring")

    ids = dict(rows("SELECT day_of_month, id FROM recurring_payments"))
    assert listing == (
        "Регулярные платежи:\n"
        f"№{ids[5]}: 5-го числа — 30{NBSP}000,00{NBSP}₽, аренда (жильё и коммунальные)\n"
        f"№{ids[25]}: 25-го числа — 800,00{NBSP}₽, мобильная связь (связь и интернет)\n"
        "\n"
        "Остановить: /recurring_off <номер>"
    )


def test_recurring_without_payments_says_how_to_add_one(anna):
    assert anna.reply("/recurring") == "Регулярных платежей нет. Добавьте: /recurring 5 30000 аренда"


def test_recurring_off_stops_the_payment_and_the_list_no_longer_shows_it(anna):
    anna.reply("/recurring 5 30000 аренда")
    anna.reply("/recurring 10 300 spotify")
    rent_id = rows("SELECT id FROM recurring_payments WHERE day_of_month = 5")[0][0]

    reply = anna.reply(f"/recurring_off {rent_id}")

    assert reply == f"Остановил регулярный платёж №{rent_id}: 30{NBSP}000,00{NBSP}₽ — аренда."
    assert rows("SELECT day_of_month, is_active FROM recurring_payments ORDER BY day_of_month") == [
        (5, False), (10, True)
    ]
    listing = anna.reply("/recurring")
    assert "аренда" not in listing and "spotify" in listing


def test_recurring_off_of_another_users_payment_is_not_found_and_changes_nothing(anna, boris):
    boris.reply("/recurring 1 5000 спортзал")
    boris_payment = rows("SELECT id FROM recurring_payments")[0][0]

    reply = anna.reply(f"/recurring_off {boris_payment}")

    assert reply == f"Среди ваших действующих регулярных платежей нет №{boris_payment}. Список: /recurring"
    assert rows("SELECT is_active FROM recurring_payments") == [(True,)]
    assert anna.reply("/recurring") == "Регулярных платежей нет. Добавьте: /recurring 5 30000 аренда"


def test_recurring_off_of_a_payment_already_stopped_says_so(anna):
    anna.reply("/recurring 5 30000 аренда")
    payment_id = rows("SELECT id FROM recurring_payments")[0][0]
    anna.reply(f"/recurring_off {payment_id}")

    assert anna.reply(f"/recurring_off #{payment_id}").startswith("Среди ваших действующих")


def test_a_long_list_of_payments_is_cut_to_fit_one_telegram_message(anna):
    description = "подписка " + "я" * 180
    for day in range(1, 29):
        anna.reply(f"/recurring {day} 100 {description}")

    listing = anna.reply("/recurring")

    assert len(listing) <= 4096
    assert listing.startswith("Регулярные платежи:\n№")
    assert "…и ещё " in listing and listing.endswith("Остановить: /recurring_off <номер>")


# ---------------------------------------------------------------- /undo


def test_undo_deletes_the_latest_expense_and_says_which(anna):
    anna.reply("300 такси", at=datetime(2026, 3, 10, 8, 0, tzinfo=MOSCOW))
    anna.reply("250 кофе", at=datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))
    # Written earlier, delivered last: the latest expense is still the coffee.
    anna.reply("100 хлеб", at=datetime(2026, 3, 9, 20, 0, tzinfo=MOSCOW))

    reply = anna.reply("/undo")

    assert reply == f"Удалил расход от 10.03.2026: 250,00{NBSP}₽ — кафе и рестораны (кофе)."
    assert rows("SELECT description FROM expenses ORDER BY id") == [("такси",), ("хлеб",)]


def test_undo_of_two_expenses_written_at_the_same_moment_deletes_the_one_stored_last(anna):
    at = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)
    anna.reply("300 такси", at=at)
    anna.reply("250 кофе", at=at)

    assert "кофе" in anna.reply("/undo")
    assert "такси" in anna.reply("/undo")
    assert anna.reply("/undo") == "Удалять нечего: расходов и доходов пока нет."
    assert rows("SELECT count(*) FROM expenses") == [(0,)]


def test_undo_deletes_only_the_users_own_expense(anna, boris):
    anna.reply("250 кофе", at=datetime(2026, 3, 10, 8, 0, tzinfo=MOSCOW))
    boris.reply("999 такси", at=datetime(2026, 3, 10, 8, 30, tzinfo=MOSCOW))

    assert "кофе" in anna.reply("/undo")
    assert rows("SELECT user_id, description FROM expenses") == [(1002, "такси")]


def test_undo_with_no_expenses_says_there_is_nothing_to_delete(anna):
    assert anna.reply("/undo") == "Удалять нечего: расходов и доходов пока нет."


# ---------------------------------------------------------------- English


def test_english_speaking_users_get_every_reply_in_english(emma):
    assert emma.reply("/start").startswith("Hi, Emma!")
    assert emma.reply("/help").startswith("Commands:")
    assert emma.reply("/budget cafe 5000") == 'Budget for "cafés and restaurants": 5,000.00 ₽ a month.'
    assert emma.reply("lunch 450.50").startswith("Recorded 450.50 ₽ — cafés and restaurants (lunch).")
    assert emma.reply("/budget") == (
        "For the month, 22 days left:\n• cafés and restaurants: 450.50 ₽ of 5,000.00 ₽ (9 %), 4,549.50 ₽ left"
    )
    added = emma.reply("/recurring 30 1200.00 phone bill")
    payment_id = rows("SELECT id FROM recurring_payments")[0][0]
    assert added == (
        f"Recurring payment no. {payment_id}: 1,200.00 ₽ — phone and internet (phone bill), on day 30 of every "
        "month.\nIn months without a day 30, on the month's last day."
    )
    assert emma.reply("/recurring").startswith(f"Recurring payments:\nNo. {payment_id}: day 30 — 1,200.00 ₽")
    assert emma.reply(f"/recurring_off {payment_id}") == (
        f"Stopped recurring payment no. {payment_id}: 1,200.00 ₽ — phone bill."
    )
    assert emma.reply("/undo") == "Deleted the expense of 2026-03-10: 450.50 ₽ — cafés and restaurants (lunch)."
    assert emma.reply("/undo") == "Nothing to delete: there are no expenses or incomes yet."
    assert emma.reply("0 coffee") == 'The amount "0" does not work: it must be more than zero.'
    assert emma.reply("/recurring 32 100 rent") == (
        'The day "32" does not work: it must be a day of the month from 1 to 31.'
    )
    assert emma.reply("hello") == (
        'I did not understand. Send an amount and a description, such as "250 coffee", or /help.'
    )
    assert rows("SELECT language_code FROM users") == [("en",)]
