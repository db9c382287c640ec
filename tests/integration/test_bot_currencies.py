"""Currencies, several lines and incomes through the webhook (issue 15): what a user reads and what the
database holds. The four failures the issue reported first each have a test here; each failed on main."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest

from tests.conftest import MOSCOW
from tests.conftest import run_sql as rows
from tests.integration.conftest import ANNA, BORIS, NBSP


def expenses() -> list[tuple]:
    return rows("SELECT amount, currency, category, description FROM expenses ORDER BY id")


# ---------------------------------------------------------------- the four failures


def test_25_usd_lunch_is_stored_as_25_dollars_for_lunch(anna):
    reply = anna.reply("25 USD обед")

    assert expenses() == [(Decimal("25.00"), "USD", "cafe", "обед")]
    assert reply == f"Записал 25,00{NBSP}$ — кафе и рестораны (обед).\nЗа март потрачено 25,00{NBSP}$."


@pytest.mark.parametrize(("text", "stored"), [
    ("$25 обед", (Decimal("25.00"), "USD", "cafe", "обед")),
    ("такси 450р", (Decimal("450.00"), "RUB", "transport", "такси")),
    ("Продукты 1500 руб", (Decimal("1500.00"), "RUB", "groceries", "Продукты")),
])
def test_the_forms_answered_not_understood_on_main_are_recorded(anna, text, stored):
    reply = anna.reply(text)

    assert reply.startswith("Записал ")
    assert expenses() == [stored]


def test_450_roubles_taxi_has_the_description_taxi_not_rouble_sign_taxi(anna):
    reply = anna.reply("450 ₽ такси")

    assert expenses() == [(Decimal("450.00"), "RUB", "transport", "такси")]
    assert reply.startswith(f"Записал 450,00{NBSP}₽ — транспорт (такси).")


def test_a_message_of_two_lines_is_two_expenses_each_confirmed(anna):
    reply = anna.reply("кофе 200\nтакси 450")

    assert expenses() == [(Decimal("200.00"), "RUB", "cafe", "кофе"), (Decimal("450.00"), "RUB", "transport", "такси")]
    assert reply == (
        "Записал 2 из 2:\n"
        f"1. 200,00{NBSP}₽ — кафе и рестораны (кофе)\n"
        f"2. 450,00{NBSP}₽ — транспорт (такси)\n"
        "\n"
        f"За март потрачено 650,00{NBSP}₽."
    )


# ---------------------------------------------------------------- several lines


def test_a_line_that_cannot_be_read_is_reported_and_the_others_are_recorded(anna):
    reply = anna.reply("кофе 200\nпривет\n0 такси\n$25 обед\n+50000 зарплата")

    assert expenses() == [(Decimal("200.00"), "RUB", "cafe", "кофе"), (Decimal("25.00"), "USD", "cafe", "обед")]
    assert rows("SELECT amount, currency, category, description FROM incomes") == [
        (Decimal("50000.00"), "RUB", "salary", "зарплата")]
    assert reply == (
        "Записал 3 из 5:\n"
        f"1. 200,00{NBSP}₽ — кафе и рестораны (кофе)\n"
        "2. «привет» — не записал: не понял, нужны сумма и описание.\n"
        "3. «0 такси» — не записал: она должна быть больше нуля.\n"
        f"4. 25,00{NBSP}$ — кафе и рестораны (обед)\n"
        f"5. доход 50{NBSP}000,00{NBSP}₽ — зарплата (зарплата)\n"
        "\n"
        f"За март потрачено 200,00{NBSP}₽ и 25,00{NBSP}$.\n"
        f"Доходы за март: 50{NBSP}000,00{NBSP}₽."
    )


def test_lines_none_of_which_is_an_entry_get_the_usual_hint(anna):
    assert anna.reply("привет\nкак дела") == "Не понял. Напишите сумму и описание, например «250 кофе», или /help."
    assert expenses() == []


def test_too_many_lines_are_refused_as_a_whole_and_nothing_is_stored(anna):
    reply = anna.reply("\n".join(f"{n} кофе" for n in range(1, 32)))

    assert reply.startswith("В одном сообщении можно записать не больше 30 строк, а здесь 31.")
    assert expenses() == []


def test_a_redelivered_multi_line_message_is_stored_once(system, anna, updates):
    update = updates.message(ANNA, "кофе 200\nтакси 450", datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))
    anna.post(update)
    anna.post(update)

    assert len(expenses()) == 2


# ---------------------------------------------------------------- the user's currency


def test_currency_shows_and_changes_the_users_currency_and_bare_amounts_follow_it(anna):
    assert anna.reply("/currency") == (
        "Ваша валюта: RUB (₽). Суммы без валюты записываю в ней.\nСменить: /currency USD")
    assert anna.reply("/currency usd") == (
        "Теперь ваша валюта — USD ($). Уже записанные суммы остались в своих валютах.")
    assert rows("SELECT currency FROM users") == [("USD",)]

    reply = anna.reply("12,50 обед")

    assert expenses() == [(Decimal("12.50"), "USD", "cafe", "обед")]
    assert reply.endswith(f"За март потрачено 12,50{NBSP}$.")


@pytest.mark.parametrize("word", ["XYZ", "рублей_много", "12"])
def test_an_unknown_currency_is_refused_and_the_users_stays(anna, word):
    assert anna.reply(f"/currency {word}").startswith(f"Не знаю валюту «{word}». Напишите код ISO 4217")
    assert rows("SELECT currency FROM users") == [("RUB",)]


def test_currency_takes_a_currency_word_too(anna):
    anna.reply("/currency евро")
    assert rows("SELECT currency FROM users") == [("EUR",)]


def test_a_new_user_gets_the_configured_default_currency(anna):
    anna.reply("/start")
    assert rows("SELECT currency FROM users") == [("RUB",)]


def test_a_fraction_of_a_yen_is_refused_with_a_clear_reply_and_nothing_stored(anna):
    assert anna.reply("300,5 JPY суши") == "Сумма «300,5» не подходит: у JPY нет дробной части."
    assert expenses() == []


# ---------------------------------------------------------------- totals per currency


def test_a_month_with_several_currencies_shows_one_total_per_currency_the_users_own_first(anna, boris):
    anna.reply("/currency EUR")
    anna.reply("1000 продукты")  # EUR, the user's
    anna.reply("500 ₽ кофе")
    anna.reply("$25 обед")
    boris.reply("$100 обед")  # another user's: not counted

    reply = anna.reply("€2,50 кофе")

    assert reply.endswith(f"За март потрачено 1{NBSP}002,50{NBSP}€, 500,00{NBSP}₽ и 25,00{NBSP}$.")


def test_the_report_text_totals_each_currency_apart(system, anna):
    anna.reply("1000 продукты")
    anna.reply("250 кофе")
    anna.reply("$25 обед")
    anna.reply("/report")
    assert system.drain("ReportsQueue").processed == 1

    report = next(call.params["text"] for call in reversed(system.telegram.sent_messages(ANNA.user_id))
                  if "Всего:" in call.params.get("text", ""))

    # One block per currency, never one total across them; the roubles' shares are of the roubles only.
    assert f"Всего: 1{NBSP}250,00{NBSP}₽ (расходов: 2)" in report
    assert f"Всего: 25,00{NBSP}$ (расходов: 1)" in report
    assert f"• продукты: 1{NBSP}000,00{NBSP}₽ (80,0 %)" in report


def test_budget_replies_are_in_the_budgets_currency(anna):
    anna.reply("/currency USD")
    assert anna.reply("/budget 300") == f"Бюджет на месяц: 300,00{NBSP}$."
    assert rows("SELECT amount, currency FROM budgets") == [(Decimal("300.00"), "USD")]


# ---------------------------------------------------------------- incomes and /undo


def test_an_income_is_recorded_confirmed_and_undone(anna):
    assert anna.reply("+50000 зарплата") == (
        f"Записал доход 50{NBSP}000,00{NBSP}₽ — зарплата (зарплата).\nДоходы за март: 50{NBSP}000,00{NBSP}₽.")
    assert rows("SELECT amount, currency, category, description FROM incomes") == [
        (Decimal("50000.00"), "RUB", "salary", "зарплата")]
    assert expenses() == []

    assert anna.reply("/undo") == f"Удалил доход от 10.03.2026: 50{NBSP}000,00{NBSP}₽ — зарплата (зарплата)."
    assert rows("SELECT count(*) FROM incomes") == [(0,)]


def test_income_command_records_an_income_in_any_currency(emma):
    assert emma.reply("/income $1200 freelance project") == (
        "Recorded income 1,200.00 $ — freelance (freelance project).\nIncome in March: 1,200.00 $.")
    assert rows("SELECT amount, currency, category FROM incomes") == [(Decimal("1200.00"), "USD", "freelance")]
    assert emma.reply("/income") == "Like this: /income 50000 salary — amount and description."


def test_undo_removes_the_latest_of_an_expense_and_an_income_saying_which(anna):
    anna.reply("250 кофе", at=datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))
    anna.reply("+1000 подарок", at=datetime(2026, 3, 10, 10, 0, tzinfo=MOSCOW))
    anna.reply("300 такси", at=datetime(2026, 3, 10, 8, 0, tzinfo=MOSCOW))

    assert anna.reply("/undo").startswith("Удалил доход от 10.03.2026: 1")
    assert anna.reply("/undo").startswith("Удалил расход от 10.03.2026: 250,00")
    assert anna.reply("/undo").startswith("Удалил расход от 10.03.2026: 300,00")
    assert anna.reply("/undo") == "Удалять нечего: расходов и доходов пока нет."


def test_undo_deletes_only_the_users_own_income(anna, boris):
    boris.reply("+5000 зарплата")
    assert anna.reply("/undo") == "Удалять нечего: расходов и доходов пока нет."
    assert rows("SELECT user_id FROM incomes") == [(BORIS.user_id,)]


# ---------------------------------------------------------------- recurring incomes


def _run_recurring(system, day: date, *, attempt: int = 1) -> None:
    slot = datetime.combine(day, time(12, 0), tzinfo=MOSCOW)
    system.clock.set(slot)
    system.fire_schedule("ProcessRecurringPaymentsFunction", slot, attempt=attempt)
    assert system.drain("RecurringQueue").failed == 0


def test_a_recurring_income_is_booked_into_incomes_once_per_due_date(system, anna):
    system.clock.set(datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW))
    reply = anna.reply("/recurring 10 +50000 зарплата")
    assert reply == (
        f"Регулярный доход №1: 50{NBSP}000,00{NBSP}₽ — зарплата (зарплата), каждый месяц 10-го числа.")
    anna.reply("/recurring 5 $20 хостинг")

    _run_recurring(system, date(2026, 3, 10))
    _run_recurring(system, date(2026, 3, 10), attempt=2)  # the schedule's retry
    _run_recurring(system, date(2026, 3, 11))  # the next day: nothing new
    _run_recurring(system, date(2026, 4, 10))

    assert rows("SELECT amount, currency, category, due_date FROM incomes ORDER BY due_date") == [
        (Decimal("50000.00"), "RUB", "salary", date(2026, 3, 10)),
        (Decimal("50000.00"), "RUB", "salary", date(2026, 4, 10)),
    ]
    # The payment of the 5th is an expense in dollars, never an income.
    assert rows("SELECT amount, currency, due_date FROM expenses ORDER BY due_date") == [
        (Decimal("20.00"), "USD", date(2026, 3, 5)),
        (Decimal("20.00"), "USD", date(2026, 4, 5)),
    ]
    notices = [call.params["text"] for call in system.telegram.sent_messages(ANNA.user_id)
               if call.params["text"].startswith("🔁")]
    assert notices.count(
        f"🔁 Записал регулярный доход: 50{NBSP}000,00{NBSP}₽ — зарплата (зарплата).\nДата: 10 марта 2026.") == 1
    assert f"🔁 Записал регулярный платёж: 20,00{NBSP}$ — хостинг (прочее).\nДата платежа: 5 апреля 2026." in notices
    assert len(notices) == 4


def test_the_recurring_list_tells_incomes_apart(anna):
    anna.reply("/recurring 10 +50000 зарплата")
    anna.reply("/recurring 5 30000 аренда")

    listing = anna.reply("/recurring")

    assert f"№2: 5-го числа — 30{NBSP}000,00{NBSP}₽, аренда (жильё и коммунальные)" in listing
    assert f"№1: 10-го числа — доход 50{NBSP}000,00{NBSP}₽, зарплата (зарплата)" in listing
    assert anna.reply("/recurring_off 1") == f"Остановил регулярный доход №1: 50{NBSP}000,00{NBSP}₽ — зарплата."


def test_the_commands_list_the_new_forms(anna):
    commands = anna.reply("/help")
    for text in ("/currency", "/income", "+50000 зарплата", "/recurring 10 +50000 зарплата"):
        assert text in commands
