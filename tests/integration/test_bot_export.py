"""/export [YYYY-MM] through the webhook and the reports worker: the webhook checks the month and enqueues the
export; the worker sends the month's expenses and incomes as a CSV and an XLSX document, which the tests open
as a user's spreadsheet would (csv, openpyxl) to check every row."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from expensebot_tools.local.updates import Conversation, FakeUser, UpdateFactory
from tests.conftest import MOSCOW
from tests.conftest import run_sql as sql

ANNA = FakeUser(user_id=1001, first_name="Анна")
EMMA = FakeUser(user_id=1004, first_name="Emma", language_code="en")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def updates() -> UpdateFactory:
    return UpdateFactory()


def expense(user_id: int, amount: str, currency: str, category: str, description: str, at: datetime) -> None:
    sql("INSERT INTO expenses (user_id, amount, currency, category, description, spent_at, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)", (user_id, Decimal(amount), currency, category, description, at, at))


def income(user_id: int, amount: str, currency: str, category: str, description: str, at: datetime) -> None:
    sql("INSERT INTO incomes (user_id, amount, currency, category, description, received_at, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)", (user_id, Decimal(amount), currency, category, description, at, at))


def february(user_id: int) -> None:
    """Two currencies and an income in February 2026, and rows either side of it that must stay out."""
    expense(user_id, "1500.00", "RUB", "groceries", "продукты; хлеб", datetime(2026, 2, 1, 0, 5, tzinfo=MOSCOW))
    expense(user_id, "25.50", "USD", "cafe", "обед \"У Пита\"", datetime(2026, 2, 14, 13, 0, tzinfo=MOSCOW))
    income(user_id, "50000.00", "RUB", "salary", "зарплата", datetime(2026, 2, 10, 9, 0, tzinfo=MOSCOW))
    expense(user_id, "450.00", "RUB", "transport", "такси", datetime(2026, 2, 28, 23, 59, tzinfo=MOSCOW))
    expense(user_id, "999.00", "RUB", "other", "январь", datetime(2026, 1, 31, 23, 59, tzinfo=MOSCOW))
    expense(user_id, "777.00", "RUB", "other", "март", datetime(2026, 3, 1, 0, 0, tzinfo=MOSCOW))


def export_files(system: Any, conversation: Conversation, text: str) -> tuple[str, list[Any]]:
    """Sends the command, runs the reports worker on what it enqueued; the reply and the documents sent."""
    reply = conversation.reply(text)
    received = system.receive_raw("ReportsQueue")
    if received:
        assert system.invoke_worker("ReportsQueue", received) == {"batchItemFailures": []}
    return reply, system.telegram.sent_files(conversation.user.user_id)


def test_an_export_of_a_month_with_two_currencies_and_an_income_has_every_row_in_csv_and_xlsx(system, updates):
    from openpyxl import load_workbook

    anna = Conversation(system, ANNA, updates)
    anna.reply("/start")
    february(ANNA.user_id)

    reply, files = export_files(system, anna, "/export 2026-02")

    assert reply == "Готовлю выгрузку за февраль 2026 — пришлю CSV и Excel через минуту."
    assert [(f.method, f.params["document"].filename) for f in files] == [
        ("sendDocument", "Операции 2026-02.csv"),
        ("sendDocument", "Операции 2026-02.xlsx"),
    ]
    csv_file, xlsx_file = (f.params["document"] for f in files)
    assert files[0].response["result"]["caption"] == (
        "Выгрузка за февраль 2026: расходов — 3, доходов — 1. CSV открывается в любой таблице, XLSX — в Excel."
    )
    assert csv_file.mime_type == "text/csv"
    assert xlsx_file.mime_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    # The CSV: UTF-8 with a BOM, ';' between columns and a decimal comma, as a Russian Excel opens it.
    assert csv_file.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(csv_file.content.decode("utf-8-sig")), delimiter=";"))
    assert rows == [
        ["Дата", "Тип", "Категория", "Описание", "Сумма", "Валюта"],
        ["2026-02-01", "расход", "продукты", "продукты; хлеб", "1500,00", "RUB"],
        # The income category is named in the user's language, as the expenses' are.
        ["2026-02-10", "доход", "зарплата", "зарплата", "50000,00", "RUB"],
        ["2026-02-14", "расход", "кафе и рестораны", "обед \"У Пита\"", "25,50", "USD"],
        ["2026-02-28", "расход", "транспорт", "такси", "450,00", "RUB"],
    ]

    # The XLSX: real dates and numbers, and the totals per currency, never added across currencies.
    book = load_workbook(io.BytesIO(xlsx_file.content))
    assert book.sheetnames == ["Операции", "Итоги"]
    entries = [tuple(row) for row in book["Операции"].iter_rows(values_only=True)]
    assert entries == [
        ("Дата", "Тип", "Категория", "Описание", "Сумма", "Валюта"),
        (datetime(2026, 2, 1), "расход", "продукты", "продукты; хлеб", 1500, "RUB"),
        (datetime(2026, 2, 10), "доход", "зарплата", "зарплата", 50000, "RUB"),
        (datetime(2026, 2, 14), "расход", "кафе и рестораны", "обед \"У Пита\"", 25.5, "USD"),
        (datetime(2026, 2, 28), "расход", "транспорт", "такси", 450, "RUB"),
    ]
    totals = [tuple(row) for row in book["Итоги"].iter_rows(values_only=True)]
    assert totals == [
        ("Валюта", "Расходы", "Доходы", "Баланс"),
        ("RUB", 1950, 50000, 48050),
        ("USD", 25.5, 0, -25.5),
    ]
    assert book["Операции"]["E4"].number_format == "#,##0.00"


def test_an_export_is_sent_once_when_the_request_is_delivered_twice(system, updates):
    anna = Conversation(system, ANNA, updates)
    anna.reply("/start")
    february(ANNA.user_id)
    anna.reply("/export 2026-02")
    received = system.receive_raw("ReportsQueue")

    assert system.invoke_worker("ReportsQueue", received) == {"batchItemFailures": []}
    assert system.invoke_worker("ReportsQueue", received) == {"batchItemFailures": []}

    assert len(system.telegram.sent_files(ANNA.user_id)) == 2


def test_an_english_export_is_comma_separated_with_a_decimal_point(system, updates):
    emma = Conversation(system, EMMA, updates)
    emma.reply("/start")
    expense(EMMA.user_id, "1234.5", "EUR", "cafe", "lunch, with friends", datetime(2026, 3, 2, 12, 0, tzinfo=MOSCOW))
    expense(EMMA.user_id, "3000", "JPY", "groceries", "onigiri", datetime(2026, 3, 3, 12, 0, tzinfo=MOSCOW))

    reply, files = export_files(system, emma, "/export")  # this month: March 2026 on the system's clock

    assert reply == "Preparing the export for March 2026; the CSV and Excel files will arrive in a minute."
    content = files[0].params["document"].content
    assert list(csv.reader(io.StringIO(content.decode("utf-8-sig")))) == [
        ["Date", "Type", "Category", "Description", "Amount", "Currency"],
        ["2026-03-02", "expense", "cafés and restaurants", "lunch, with friends", "1234.50", "EUR"],
        ["2026-03-03", "expense", "groceries", "onigiri", "3000", "JPY"],  # the yen has no minor unit
    ]
    assert files[1].params["document"].filename == "Transactions 2026-03.xlsx"


def test_a_description_that_looks_like_a_formula_or_holds_a_control_character_stays_text(system, updates):
    from openpyxl import load_workbook

    anna = Conversation(system, ANNA, updates)
    anna.reply("/start")
    expense(ANNA.user_id, "100", "RUB", "other", "=СУММ(1;2)", datetime(2026, 3, 2, 12, 0, tzinfo=MOSCOW))
    expense(ANNA.user_id, "200", "RUB", "other", "звонок\x0bмаме", datetime(2026, 3, 3, 12, 0, tzinfo=MOSCOW))

    _, files = export_files(system, anna, "/export")

    sheet = load_workbook(io.BytesIO(files[1].params["document"].content))["Операции"]
    assert (sheet["D2"].value, sheet["D2"].data_type) == ("=СУММ(1;2)", "s")
    assert sheet["D3"].value == "звонокмаме"
    rows = list(csv.reader(io.StringIO(files[0].params["document"].content.decode("utf-8-sig")), delimiter=";"))
    assert [row[3] for row in rows[1:]] == ["=СУММ(1;2)", "звонок\x0bмаме"]  # the CSV keeps what was written


def test_a_month_with_nothing_says_so_and_sends_no_file(system, updates):
    anna = Conversation(system, ANNA, updates)
    anna.reply("/start")
    february(ANNA.user_id)

    reply, files = export_files(system, anna, "/export 2025-11")

    assert reply == "За ноябрь 2025 нет ни расходов, ни доходов — выгружать нечего."
    assert files == []
    assert system.receive_raw("ReportsQueue") == []


def test_an_export_whose_entries_went_before_the_worker_ran_says_so_instead_of_sending_empty_files(system, updates):
    anna = Conversation(system, ANNA, updates)
    anna.reply("/start")
    february(ANNA.user_id)
    anna.reply("/export 2026-02")
    sql("DELETE FROM expenses WHERE user_id = %s", (ANNA.user_id,))
    sql("DELETE FROM incomes WHERE user_id = %s", (ANNA.user_id,))

    assert system.invoke_worker("ReportsQueue", system.receive_raw("ReportsQueue")) == {"batchItemFailures": []}

    assert system.telegram.sent_files(ANNA.user_id) == []
    assert system.telegram.sent_messages(ANNA.user_id)[-1].params["text"] == (
        "За февраль 2026 нет ни расходов, ни доходов — выгружать нечего."
    )


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("/export 2026-13", "Месяца «2026-13» нет: месяц — число от 01 до 12. Например, /export 2026-03."),
        ("/export 2026-00", "Месяца «2026-00» нет: месяц — число от 01 до 12. Например, /export 2026-03."),
        ("/export март", "Так: /export — этот месяц, /export 2026-03 — март 2026 (год и месяц через дефис)."),
        ("/export 03.2026", "Так: /export — этот месяц, /export 2026-03 — март 2026 (год и месяц через дефис)."),
    ],
)
def test_a_month_that_is_not_one_is_explained_and_nothing_is_enqueued(system, updates, text, answer):
    anna = Conversation(system, ANNA, updates)
    anna.reply("/start")

    assert anna.reply(text) == answer
    assert system.receive_raw("ReportsQueue") == []


def test_a_redelivered_export_command_is_enqueued_once(system, updates):
    anna = Conversation(system, ANNA, updates)
    anna.reply("/start")
    february(ANNA.user_id)
    update = updates.message(ANNA, "/export 2026-02", datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))

    anna.post(update)
    assert anna.post(update) == []
    (message,) = [json.loads(m["Body"]) for m in system.receive_raw("ReportsQueue")]
    assert message["task"] == "reports.send_export"
    assert message["args"] == {"user_id": ANNA.user_id, "chat_id": ANNA.user_id, "language_code": "ru",
                               "month": date(2026, 2, 1).isoformat(), "request_id": f"update:{update['update_id']}"}


def test_openpyxl_stays_out_of_every_functions_cold_start_and_first_call():
    """Only an export imports openpyxl: not the webhook, not a worker's task registry."""
    probe = (
        "import sys\n"
        "import expensebot.bot.webhook, expensebot.worker, expensebot.jobs\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openpyxl'))\n"
    )
    paths = [str(PROJECT_ROOT / "layers" / "expensebot"), str(PROJECT_ROOT / "infra" / "tools")]
    output = subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = {paths!r}\n" + probe],
                            capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"
