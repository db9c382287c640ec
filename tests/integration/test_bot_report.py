"""/report through the webhook: the webhook only enqueues the monthly job's report task on the reports queue
and answers at once; the reports worker then sends the report. Redeliveries and an unreachable queue."""

from __future__ import annotations

import json
import os
from datetime import datetime

import pytest

from expensebot_tools.local.updates import Conversation, FakeUser, UpdateFactory
from tests.conftest import MOSCOW
from tests.conftest import sql_value as count

ANNA = FakeUser(user_id=1001, first_name="Анна")
EMMA = FakeUser(user_id=1004, first_name="Emma", language_code="en")


def queued_reports(system) -> list[dict]:
    """The task messages waiting on the reports queue (received, then deleted)."""
    messages = []
    while batch := system.receive_raw("ReportsQueue"):
        messages.extend(batch)
        system.delete("ReportsQueue", batch)
    return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def updates() -> UpdateFactory:
    return UpdateFactory()


def test_report_enqueues_this_months_report_answers_at_once_and_the_worker_sends_it(system, updates):
    anna = Conversation(system, ANNA, updates)
    anna.reply("1200 продукты")
    anna.reply("250 кофе")
    report_update = updates.message(ANNA, "/report", datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))

    assert anna.post(report_update) == ["Готовлю отчёт за март — пришлю через минуту."]

    received = system.receive_raw("ReportsQueue")
    (message,) = [json.loads(m["Body"]) for m in received]
    assert message["task"] == "reports.send_monthly_report"
    assert message["args"] == {
        "user_id": 1001, "chat_id": 1001, "language_code": "ru", "month": "2026-03-01",
        "request_id": f"update:{report_update['update_id']}",
    }
    assert system.invoke_worker("ReportsQueue", received) == {"batchItemFailures": []}
    report = system.telegram.sent_messages(ANNA.user_id)[-1].params["text"]
    assert "1\u00a0450,00" in report


def test_a_redelivered_report_request_is_enqueued_once(system, updates):
    anna = Conversation(system, ANNA, updates)
    anna.reply("250 кофе")
    report_update = updates.message(ANNA, "/report", datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))

    anna.post(report_update)
    assert anna.post(report_update) == []
    assert json.loads(anna.last_response["body"]) == {"status": "duplicate"}
    assert len(queued_reports(system)) == 1


def test_report_without_expenses_this_month_says_so_and_enqueues_nothing(system, updates):
    anna = Conversation(system, ANNA, updates)
    anna.reply("900 такси", at=datetime(2026, 2, 27, 9, 0, tzinfo=MOSCOW))

    assert anna.reply("/report") == "За март расходов пока нет, отчёт строить не из чего."
    assert queued_reports(system) == []


def test_report_answers_in_english_and_asks_for_an_english_report(system, updates):
    emma = Conversation(system, EMMA, updates)
    emma.reply("coffee 120")

    assert emma.reply("/report") == "Preparing the report for March; it will arrive in a minute."
    (message,) = queued_reports(system)
    assert message["args"]["language_code"] == "en"


def test_an_unreachable_reports_queue_answers_503_and_the_retry_enqueues_once(system, updates):
    from expensebot.bootstrap import build_runtime, set_runtime
    from expensebot_tools.local.stack import environment

    anna = Conversation(system, ANNA, updates)
    anna.reply("250 кофе")
    report_update = updates.message(ANNA, "/report", datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))
    missing_queue = os.environ["QUEUE_URL_REPORTS"].rsplit("/", 1)[0] + "/no-such-queue"
    with environment({"QUEUE_URL_REPORTS": missing_queue}):
        set_runtime(build_runtime(clock=system.clock))
        assert anna.post(report_update) == []
        assert anna.last_response["statusCode"] == 503

    set_runtime(build_runtime(clock=system.clock))
    assert count(f"SELECT count(*) FROM processed_updates WHERE update_id = {report_update['update_id']}") == 0
    assert anna.post(report_update) == ["Готовлю отчёт за март — пришлю через минуту."]
    assert anna.post(report_update) == []
    assert len(queued_reports(system)) == 1


def test_report_of_a_past_month_reports_that_month_with_its_chart_and_pdf(system, updates):
    anna = Conversation(system, ANNA, updates)
    anna.reply("1200 продукты", at=datetime(2026, 11, 12, 9, 0, tzinfo=MOSCOW))
    anna.reply("300 кофе", at=datetime(2026, 11, 20, 9, 0, tzinfo=MOSCOW))
    anna.reply("5000 такси", at=datetime(2026, 12, 2, 9, 0, tzinfo=MOSCOW))  # December: not in November's report

    assert anna.reply("/report 2026-11", at=datetime(2026, 12, 3, 9, 0, tzinfo=MOSCOW)) == (
        "Готовлю отчёт за ноябрь 2026 — пришлю через минуту."
    )
    received = system.receive_raw("ReportsQueue")
    assert [json.loads(m["Body"])["args"]["month"] for m in received] == ["2026-11-01"]
    assert system.invoke_worker("ReportsQueue", received) == {"batchItemFailures": []}

    text = system.telegram.sent_messages(ANNA.user_id)[-1].params["text"]
    assert text.startswith("📊 Отчёт за ноябрь 2026")
    assert "Всего: 1\u00a0500,00\u00a0₽ (расходов: 2)" in text
    photo, document = system.telegram.sent_files(ANNA.user_id)
    assert photo.params["photo"].filename == "expenses-2026-11.png"
    assert "Расходы: 1\u00a0500,00\u00a0₽ (2)" in photo.params["caption"]
    assert document.params["document"].filename == "expenses-2026-11.pdf"


@pytest.mark.parametrize(
    ("argument", "answer"),
    [
        ("2026-13", "Не понял месяц «2026-13». Напишите его как год и месяц: /report 2026-12."),
        ("ноябрь", "Не понял месяц «ноябрь». Напишите его как год и месяц: /report 2026-12."),
        ("2026-05", "За май 2026 нет ни расходов, ни доходов — отчёт строить не из чего."),
    ],
)
def test_report_of_a_month_it_cannot_read_or_without_data_says_so_and_enqueues_nothing(
    system, updates, argument, answer
):
    anna = Conversation(system, ANNA, updates)
    anna.reply("250 кофе", at=datetime(2026, 12, 1, 9, 0, tzinfo=MOSCOW))

    assert anna.reply(f"/report {argument}", at=datetime(2026, 12, 3, 9, 0, tzinfo=MOSCOW)) == answer
    assert queued_reports(system) == []

