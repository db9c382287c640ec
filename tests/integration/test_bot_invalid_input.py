"""Every invalid value the issue lists, typed to the bot through the webhook: each gets a clear reply, a 200
(never a 5xx, never a stack trace), and stores nothing."""

from __future__ import annotations

import json
import os

import psycopg2
import pytest

from expensebot.parsing import MAX_DESCRIPTION_LENGTH
from expensebot_tools.local.updates import Conversation, FakeUser

ANNA = FakeUser(user_id=1001, first_name="Анна")
NBSP = "\u00a0"
MAX_AMOUNT_RU = f"1{NBSP}000{NBSP}000{NBSP}000,00{NBSP}₽"
LONG_DESCRIPTION = "к" * (MAX_DESCRIPTION_LENGTH + 1)
TOO_LONG = (
    "Сообщение длиннее 4096 символов — столько Telegram не пропускает. Напишите сумму и описание, например «250 кофе»."
)

RECURRING_USAGE = ("Так: /recurring 5 30000 аренда — день месяца (1–31), сумма и описание; доход — с плюсом:"
                   " /recurring 10 +50000 зарплата.")


def count(table: str) -> int:
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        value = cur.fetchone()[0]
    conn.close()
    return value


@pytest.fixture
def anna(system) -> Conversation:
    return Conversation(system, ANNA)


def assert_refused(anna: Conversation, text: str, expected: str) -> None:
    reply = anna.reply(text)
    assert anna.last_response["statusCode"] == 200
    assert json.loads(anna.last_response["body"]) == {"status": "handled"}
    assert reply == expected
    assert "Traceback" not in reply and "Error" not in reply


USAGE = ("Так: /budget 30000 — на месяц, /budget week 3000, /budget day 1000 кафе; "
         "убрать: /budget off [week|day] [кафе]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 кофе", "Сумма «0» не подходит: она должна быть больше нуля."),
        ("кофе 0,00", "Сумма «0,00» не подходит: она должна быть больше нуля."),
        ("-5 кофе", "Сумма «-5» не подходит: она должна быть больше нуля."),
        ("1000000001 кофе", f"Сумма «1000000001» не подходит: она больше {MAX_AMOUNT_RU}."),
        ("1 000 000 000,01 квартира", f"Сумма «1 000 000 000,01» не подходит: она больше {MAX_AMOUNT_RU}."),
        ("12.345 кофе", "Сумма «12.345» не подходит: больше двух знаков после запятой."),
        ("кофе 0,001", "Сумма «0,001» не подходит: больше двух знаков после запятой."),
        (f"250 {LONG_DESCRIPTION}", "Описание длиннее 200 символов — сократите, пожалуйста."),
        ("١٢٣ кофе", "Сумма «١٢٣» не подходит: пишите сумму цифрами 0–9."),
        ("кофе １２３", "Сумма «１２３» не подходит: пишите сумму цифрами 0–9."),
        ("x" + " 000" * 1100 + " 1", TOO_LONG),
        ("250 " + "к" * 4093, TOO_LONG),
    ],
    ids=lambda value: value if len(value) < 60 else f"{value[:20]}…({len(value)} characters)",
)
def test_an_invalid_expense_is_explained_and_not_stored(anna, text, expected):
    assert_refused(anna, text, expected)
    assert count("expenses") == 0


@pytest.mark.parametrize("text", ["abc кофе", "1e5 кофе", "NaN кофе", "12.3.4 кофе", "кофе двести"])
def test_an_expense_without_a_number_gets_the_hint_and_is_not_stored(anna, text):
    assert anna.reply(text).startswith("Не понял.")
    assert count("expenses") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/budget 0", "Сумма «0» не подходит: она должна быть больше нуля.\nЧтобы убрать бюджет: /budget off"),
        ("/budget -100", "Сумма «-100» не подходит: она должна быть больше нуля.\nЧтобы убрать бюджет: /budget off"),
        ("/budget abc", "Сумма «abc» не подходит: это не число."),
        ("/budget 1.234", "Сумма «1.234» не подходит: больше двух знаков после запятой."),
        ("/budget 2000000000", f"Сумма «2000000000» не подходит: она больше {MAX_AMOUNT_RU}."),
        ("/budget ٥٠٠٠", "Сумма «٥٠٠٠» не подходит: пишите сумму цифрами 0–9."),
        ("/budget " + "9" * 5000, TOO_LONG),
        ("/budget кафе 0",
         "Сумма «0» не подходит: она должна быть больше нуля.\nЧтобы убрать бюджет: /budget off кафе"),
        ("/budget кафе много", "Сумма «много» не подходит: это не число."),
        ("/budget кафе 5000 в месяц", USAGE),
        ("/budget неведомое 5000", USAGE),
    ],
)
def test_an_invalid_budget_is_explained_and_not_stored(anna, text, expected):
    assert_refused(anna, text, expected)
    assert count("budgets") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/recurring 0 100 аренда", "День «0» не подходит: нужен день месяца от 1 до 31."),
        ("/recurring 32 100 аренда", "День «32» не подходит: нужен день месяца от 1 до 31."),
        ("/recurring -1 100 аренда", "День «-1» не подходит: нужен день месяца от 1 до 31."),
        ("/recurring пятое 100 аренда", "День «пятое» не подходит: нужно целое число от 1 до 31."),
        ("/recurring 5.5 100 аренда", "День «5.5» не подходит: нужно целое число от 1 до 31."),
        ("/recurring 5 0 аренда", "Сумма «0» не подходит: она должна быть больше нуля."),
        ("/recurring 5 -300 аренда", "Сумма «-300» не подходит: она должна быть больше нуля."),
        ("/recurring 5 много аренда", "Сумма «много» не подходит: это не число."),
        ("/recurring 5 100.555 аренда", "Сумма «100.555» не подходит: больше двух знаков после запятой."),
        ("/recurring 5 1000000001 аренда", f"Сумма «1000000001» не подходит: она больше {MAX_AMOUNT_RU}."),
        (f"/recurring 5 100 {LONG_DESCRIPTION}", "Описание длиннее 200 символов — сократите, пожалуйста."),
        ("/recurring 5 100", RECURRING_USAGE),
        ("/recurring 5 100 200", RECURRING_USAGE),
    ],
)
def test_an_invalid_recurring_payment_is_explained_and_not_stored(anna, text, expected):
    assert_refused(anna, text, expected)
    assert count("recurring_payments") == 0


@pytest.mark.parametrize(
    "text", ["/recurring_off", "/recurring_off abc", "/recurring_off 1 2", "/recurring_off -3",
             "/recurring_off 99999999999999999999999999"],
)
def test_recurring_off_without_a_valid_number_says_how_to_write_it(anna, text):
    assert_refused(anna, text, "Так: /recurring_off 7 — номер платежа из списка /recurring.")


def test_a_huge_invalid_value_is_echoed_shortened_so_the_reply_still_reaches_the_user(anna):
    reply = anna.reply("/budget " + "9" * 4000)

    assert reply == f"Сумма «{'9' * 39}…» не подходит: она больше {MAX_AMOUNT_RU}."
    assert count("budgets") == 0
