"""send_monthly_reports on real PostgreSQL, SQS (moto) and the Telegram stand-in: the last-day rule through the
schedule, who gets a report, what it says, and once per user per month under every kind of repetition."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from expensebot.bootstrap import get_runtime
from expensebot.jobs import monthly_reports
from expensebot.jobs.monthly_reports import build_monthly_report, plan_monthly_reports
from expensebot.scheduling import ScheduledInvocation, run_scheduled_job
from tests.conftest import MOSCOW, load_event
from tests.conftest import run_sql as _execute

NBSP = "\u00a0"
ANNA, BORIS, EMMA = 1001, 1002, 1003
MARCH = date(2026, 3, 1)
MARCH_LAST_SLOT = datetime(2026, 3, 31, 20, 0, tzinfo=MOSCOW)


def _user(system: Any, user_id: int, language: str = "ru", *, active: bool = True) -> None:
    at = datetime(2026, 1, 5, 12, 0, tzinfo=MOSCOW)
    _execute(
        "INSERT INTO users (user_id, chat_id, language_code, is_active, created_at, last_seen_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (user_id, user_id, language, active, at, at),
    )
    system.telegram.add_chat(user_id)


def _spend(user_id: int, amount: str, category: str, at: datetime) -> None:
    _execute(
        "INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
        " VALUES (%s, %s, %s, 'x', %s, %s)",
        (user_id, Decimal(amount), category, at, at),
    )


def _budget(user_id: int, category: str | None, amount: str) -> None:
    at = datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW)
    _execute(
        "INSERT INTO budgets (user_id, category, amount, created_at, updated_at) VALUES (%s, %s, %s, %s, %s)",
        (user_id, category, Decimal(amount), at, at),
    )


def _in_march(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=MOSCOW)


def _fire(system: Any, slot: datetime, **kwargs: Any) -> dict[str, Any]:
    system.clock.set(slot)
    return system.fire_schedule("SendMonthlyReportsFunction", slot, **kwargs)


def _reports_to(system: Any, user_id: int) -> list[str]:
    return [call.params["text"] for call in system.telegram.sent_messages(user_id)]


# ---------------------------------------------------------------- the last-day rule, through the schedule


@pytest.mark.parametrize(
    ("local_day", "fires"),
    [
        (date(2026, 4, 30), True),   # last day of a 30-day month
        (date(2026, 4, 29), False),
        (date(2026, 3, 31), True),
        (date(2026, 3, 30), False),
        (date(2026, 2, 28), True),   # common-year February
        (date(2026, 2, 27), False),
        (date(2028, 2, 29), True),   # leap-year February
        (date(2028, 2, 28), False),
    ],
)
def test_the_20_00_run_reports_only_on_the_months_last_day(system, local_day, fires):
    _user(system, ANNA)
    _spend(ANNA, "100.00", "cafe", datetime(local_day.year, local_day.month, 1, 10, 0, tzinfo=MOSCOW))

    outcome = _fire(system, datetime(local_day.year, local_day.month, local_day.day, 20, 0, tzinfo=MOSCOW))

    assert outcome["status"] == "succeeded"
    if fires:
        assert (outcome["planned"], outcome["enqueued"]) == (1, 1)
        assert outcome["details"]["month"] == f"{local_day:%Y-%m}"
    else:
        assert (outcome["planned"], outcome["enqueued"]) == (0, 0)
        assert outcome["details"] == {"skipped": "not the last day of the month"}
        assert system.receive_raw("ReportsQueue") == []
    (ledger,) = _execute("SELECT status, details FROM job_runs WHERE job = 'send_monthly_reports'")
    assert ledger[0] == "succeeded" and ("skipped" in ledger[1]) is not fires


def test_the_end_to_end_path_sends_the_report_with_exact_amounts(system):
    _user(system, ANNA)
    _spend(ANNA, "1000.00", "groceries", _in_march(3))
    _spend(ANNA, "234.55", "cafe", _in_march(10))
    _spend(ANNA, "0.01", "cafe", _in_march(31, 19))

    outcome = _fire(system, MARCH_LAST_SLOT)
    drained = system.drain("ReportsQueue")

    assert (outcome["enqueued"], drained.processed, drained.failed) == (1, 1, 0)
    (text,) = _reports_to(system, ANNA)
    assert text.startswith("📊 Отчёт за март 2026")
    assert f"Всего: 1{NBSP}234,56{NBSP}₽ (расходов: 3)" in text
    assert f"• кафе и рестораны: 234,56{NBSP}₽ (19,0 %)" in text
    assert _execute("SELECT user_id, month, total, expense_count FROM monthly_reports") == [
        (ANNA, MARCH, Decimal("1234.56"), 3)
    ]
    # The text, then the chart (a photo, the totals in its caption) and the PDF, each claimed on its own.
    assert _execute("SELECT dedupe_key, kind, status, attempts FROM notifications ORDER BY id") == [
        ("monthly_report:1001:2026-03", "monthly_report", "sent", 1),
        ("monthly_report:1001:2026-03#file1", "monthly_report", "sent", 1),
        ("monthly_report:1001:2026-03#file2", "monthly_report", "sent", 1),
    ]
    photo, document = system.telegram.sent_files(ANNA)
    assert (photo.method, photo.params["photo"].filename) == ("sendPhoto", "expenses-2026-03.png")
    assert photo.params["photo"].content.startswith(b"\x89PNG")
    assert photo.params["caption"].splitlines()[:2] == ["📊 Отчёт за март 2026", f"Расходы: 1{NBSP}234,56{NBSP}₽ (3)"]
    assert (document.method, document.params["document"].filename) == ("sendDocument", "expenses-2026-03.pdf")
    assert document.params["document"].content.startswith(b"%PDF")


def test_a_month_in_two_currencies_with_an_income_reports_each_currency_and_the_balance(system):
    _user(system, ANNA)
    _spend(ANNA, "1000.00", "groceries", _in_march(3))
    _execute(
        "INSERT INTO expenses (user_id, amount, currency, category, description, spent_at, created_at)"
        " VALUES (%s, 25.50, 'USD', 'cafe', 'x', %s, %s)",
        (ANNA, _in_march(4), _in_march(4)),
    )
    _execute(
        "INSERT INTO incomes (user_id, amount, currency, category, description, received_at, created_at)"
        " VALUES (%s, 50000, 'RUB', 'salary', 'зарплата', %s, %s)",
        (ANNA, _in_march(5), _in_march(5)),
    )
    _spend(ANNA, "800.00", "groceries", datetime(2026, 2, 10, 12, 0, tzinfo=MOSCOW))

    _fire(system, MARCH_LAST_SLOT)
    system.drain("ReportsQueue")

    (text,) = _reports_to(system, ANNA)
    assert f"Всего: 1{NBSP}000,00{NBSP}₽ (расходов: 1)" in text
    assert f"Всего: 25,50{NBSP}$ (расходов: 1)" in text  # never added to the roubles
    assert f"Доходы: 50{NBSP}000,00{NBSP}₽ (поступлений: 1)" in text
    assert f"Баланс: +49{NBSP}000,00{NBSP}₽" in text
    assert f"Изменение: +200,00{NBSP}₽ (+25,0 %)" in text
    caption = system.telegram.sent_files(ANNA)[0].params["caption"]
    assert f"Баланс: +49{NBSP}000,00{NBSP}₽" in caption and f"Расходы: 25,50{NBSP}$ (1)" in caption


def test_a_cent_and_two_cents_make_three_cents(system):
    _user(system, ANNA)
    _spend(ANNA, "0.01", "other", _in_march(1))
    _spend(ANNA, "0.02", "other", _in_march(2))

    report = build_monthly_report(get_runtime(), ANNA, MARCH)

    assert (report.total, report.expense_count) == (Decimal("0.03"), 2)
    _fire(system, MARCH_LAST_SLOT)
    system.drain("ReportsQueue")
    assert f"Всего: 0,03{NBSP}₽" in _reports_to(system, ANNA)[0]


# ---------------------------------------------------------------- who gets a report


def test_only_active_users_with_expenses_in_the_month_of_the_application_zone_are_planned(system):
    _user(system, ANNA)   # spent in March
    _user(system, BORIS)  # spent in February and April only (by Moscow's calendar)
    _user(system, EMMA)   # no expenses at all
    _user(system, 1004, active=False)  # blocked the bot
    _user(system, 1005)   # spent at 00:10 on 1 March in Moscow, still 28 February in UTC
    _spend(ANNA, "10.00", "cafe", _in_march(15))
    _spend(BORIS, "10.00", "cafe", datetime(2026, 2, 28, 23, 59, tzinfo=MOSCOW))
    _spend(BORIS, "10.00", "cafe", datetime(2026, 4, 1, 0, 0, tzinfo=MOSCOW))
    _spend(1004, "10.00", "cafe", _in_march(15))
    _spend(1005, "10.00", "cafe", datetime(2026, 3, 1, 0, 10, tzinfo=MOSCOW))

    units = plan_monthly_reports(get_runtime(), MARCH)

    assert [(u.user_id, u.month, u.request_id) for u in units] == [(ANNA, MARCH, None), (1005, MARCH, None)]
    _fire(system, MARCH_LAST_SLOT)
    system.drain("ReportsQueue")
    assert [_reports_to(system, user_id) != [] for user_id in (ANNA, BORIS, EMMA, 1004, 1005)] == [
        True, False, False, False, True
    ]


def test_the_plan_for_every_user_is_one_sql_statement(system, sql_statements):
    for i in range(30):
        _user(system, 2000 + i)
        if i % 3:
            _spend(2000 + i, "5.00", "cafe", _in_march(1 + i))
    units = plan_monthly_reports(get_runtime(), MARCH)
    assert len(sql_statements) == 1
    assert [u.user_id for u in units] == [2000 + i for i in range(30) if i % 3]


# ---------------------------------------------------------------- what the report says


def test_categories_largest_first_with_shares_and_the_change_against_february(system):
    _user(system, ANNA)
    _spend(ANNA, "100.00", "transport", _in_march(2))
    _spend(ANNA, "250.00", "groceries", _in_march(3))
    _spend(ANNA, "350.00", "groceries", _in_march(4))
    _spend(ANNA, "300.00", "cafe", _in_march(5))
    _spend(ANNA, "800.00", "cafe", datetime(2026, 2, 10, 12, 0, tzinfo=MOSCOW))
    _spend(ANNA, "999.00", "cafe", datetime(2026, 1, 10, 12, 0, tzinfo=MOSCOW))  # January counts for nothing

    report = build_monthly_report(get_runtime(), ANNA, MARCH)

    assert [(c.category, c.amount, c.share) for c in report.categories] == [
        ("groceries", Decimal("600.00"), Decimal("60.0")),
        ("cafe", Decimal("300.00"), Decimal("30.0")),
        ("transport", Decimal("100.00"), Decimal("10.0")),
    ]
    assert (report.total, report.previous_total, report.change, report.change_percent) == (
        Decimal("1000.00"), Decimal("800.00"), Decimal("200.00"), Decimal("25.0")
    )
    _fire(system, MARCH_LAST_SLOT)
    system.drain("ReportsQueue")
    (text,) = _reports_to(system, ANNA)
    lines = text.splitlines()
    assert lines[lines.index("По категориям:") + 1 :][:3] == [
        f"• продукты: 600,00{NBSP}₽ (60,0 %)",
        f"• кафе и рестораны: 300,00{NBSP}₽ (30,0 %)",
        f"• транспорт: 100,00{NBSP}₽ (10,0 %)",
    ]
    assert f"Прошлый месяц (февраль): 800,00{NBSP}₽" in lines
    assert f"Изменение: +200,00{NBSP}₽ (+25,0 %)" in lines


def test_a_user_who_spent_nothing_in_february_is_told_there_is_nothing_to_compare_with(system):
    _user(system, ANNA)
    _spend(ANNA, "300.00", "cafe", _in_march(5))

    _fire(system, MARCH_LAST_SLOT)
    system.drain("ReportsQueue")

    (text,) = _reports_to(system, ANNA)
    assert "Прошлый месяц (февраль): расходов не было, сравнивать не с чем." in text
    assert "%)" in text and "Изменение" not in text


def test_budget_status_for_the_month_and_a_category(system):
    _user(system, ANNA)
    _budget(ANNA, None, "30000")
    _budget(ANNA, "cafe", "200")
    _budget(ANNA, "transport", "1000")  # nothing spent on it: shown at 0 %
    _spend(ANNA, "1000.00", "groceries", _in_march(3))
    _spend(ANNA, "234.56", "cafe", _in_march(4))

    _fire(system, MARCH_LAST_SLOT)
    system.drain("ReportsQueue")

    (text,) = _reports_to(system, ANNA)
    assert text.splitlines()[-4:] == [
        "Бюджеты:",
        f"• Весь месяц: 1{NBSP}234,56{NBSP}₽ из 30{NBSP}000,00{NBSP}₽ (4 %)",
        f"• «кафе и рестораны»: 234,56{NBSP}₽ из 200,00{NBSP}₽ (117 %) — превышен на 34,56{NBSP}₽",
        f"• «транспорт»: 0,00{NBSP}₽ из 1{NBSP}000,00{NBSP}₽ (0 %)",
    ]


def test_a_user_whose_client_is_in_english_gets_the_report_in_english(system):
    _user(system, EMMA, language="en")
    _spend(EMMA, "1234.56", "cafe", _in_march(7))

    _fire(system, MARCH_LAST_SLOT)
    system.drain("ReportsQueue")

    (text,) = _reports_to(system, EMMA)
    assert text.splitlines()[:3] == ["📊 Report for March 2026", "", "Total: 1,234.56 ₽ (expenses: 1)"]
    assert "Last month (February): no expenses, nothing to compare with." in text


# ---------------------------------------------------------------- once per user per month


def test_a_duplicate_schedule_delivery_and_a_rerun_for_the_same_month_send_nothing_more(system):
    _user(system, ANNA)
    _spend(ANNA, "50.00", "cafe", _in_march(5))

    first = _fire(system, MARCH_LAST_SLOT)
    duplicate = _fire(system, MARCH_LAST_SLOT, attempt=2)
    system.drain("ReportsQueue")
    # An operator's manual run of the same day, at another slot, after the reports went out.
    rerun = _fire(system, datetime(2026, 3, 31, 21, 30, tzinfo=MOSCOW))
    system.drain("ReportsQueue")

    assert (first["status"], first["enqueued"]) == ("succeeded", 1)
    assert duplicate["status"] == "duplicate"
    assert (rerun["status"], rerun["planned"], rerun["enqueued"]) == ("succeeded", 0, 0)
    assert len(_reports_to(system, ANNA)) == 1
    assert _execute("SELECT count(*) FROM job_runs WHERE job = 'send_monthly_reports'") == [(2,)]


def test_a_rerun_before_the_first_units_ran_enqueues_twice_but_sends_once(system):
    _user(system, ANNA)
    _spend(ANNA, "50.00", "cafe", _in_march(5))

    _fire(system, MARCH_LAST_SLOT)
    _fire(system, datetime(2026, 3, 31, 20, 30, tzinfo=MOSCOW))
    drained = system.drain("ReportsQueue")

    assert (drained.processed, drained.failed) == (2, 0)
    assert len(_reports_to(system, ANNA)) == 1
    assert _execute("SELECT count(*) FROM monthly_reports") == [(1,)]
    assert len(system.telegram.sent_files(ANNA)) == 2  # one chart, one PDF
    assert _execute("SELECT kind, status, attempts FROM notifications") == [("monthly_report", "sent", 1)] * 3


def test_a_duplicate_sqs_delivery_sends_one_message_and_keeps_one_record_of_each(system):
    _user(system, ANNA)
    _spend(ANNA, "50.00", "cafe", _in_march(5))
    _fire(system, MARCH_LAST_SLOT)
    received = system.receive_raw("ReportsQueue")
    assert len(received) == 1

    first = system.invoke_worker("ReportsQueue", received)
    second = system.invoke_worker("ReportsQueue", received)

    assert first == second == {"batchItemFailures": []}
    assert len(_reports_to(system, ANNA)) == 1
    assert _execute("SELECT user_id, month FROM monthly_reports") == [(ANNA, MARCH)]
    assert [call.method for call in system.telegram.sent_files(ANNA)] == ["sendPhoto", "sendDocument"]
    assert _execute("SELECT dedupe_key, status, attempts FROM notifications ORDER BY id") == [
        ("monthly_report:1001:2026-03", "sent", 1),
        ("monthly_report:1001:2026-03#file1", "sent", 1),
        ("monthly_report:1001:2026-03#file2", "sent", 1),
    ]


def test_next_months_report_is_a_new_one(system):
    _user(system, ANNA)
    _spend(ANNA, "50.00", "cafe", _in_march(5))
    _spend(ANNA, "70.00", "cafe", datetime(2026, 4, 5, 12, 0, tzinfo=MOSCOW))

    _fire(system, MARCH_LAST_SLOT)
    _fire(system, datetime(2026, 4, 30, 20, 0, tzinfo=MOSCOW))
    system.drain("ReportsQueue")

    texts = _reports_to(system, ANNA)
    assert sorted(text.splitlines()[0] for text in texts) == ["📊 Отчёт за апрель 2026", "📊 Отчёт за март 2026"]
    (april,) = [text for text in texts if "апрель" in text.splitlines()[0]]
    assert f"Изменение: +20,00{NBSP}₽ (+40,0 %)" in april
    assert _execute("SELECT month FROM monthly_reports ORDER BY month") == [(MARCH,), (date(2026, 4, 1),)]


# ---------------------------------------------------------------- the soft time limit


class _NoTimeLeft:
    def get_remaining_time_in_millis(self) -> int:
        return 0


def test_a_run_at_its_soft_limit_hands_the_rest_to_a_continuation_and_every_user_gets_one_report(
    system, monkeypatch
):
    monkeypatch.setattr(monthly_reports, "ENQUEUE_CHUNK_SIZE", 2)
    users = [3000 + i for i in range(5)]
    for user_id in users:
        _user(system, user_id)
        _spend(user_id, "10.00", "cafe", _in_march(5))
    system.clock.set(MARCH_LAST_SLOT)

    outcome = run_scheduled_job(
        ScheduledInvocation(job="send_monthly_reports", scheduled_time=MARCH_LAST_SLOT),
        runtime=get_runtime(), context=_NoTimeLeft(),
    )
    drained = system.drain("ReportsQueue")

    # The first chunk (2 users) and the continuation from the run; the continuation's 3 units from the queue.
    assert (outcome.planned, outcome.enqueued, outcome.details.get("continued")) == (5, 2, True)
    assert (drained.processed, drained.failed) == (6, 0)
    assert all(len(_reports_to(system, user_id)) == 1 for user_id in users)
    ((details,),) = _execute("SELECT details FROM job_runs WHERE job = 'send_monthly_reports'")
    assert (details["continuations"], details["enqueued_by_continuations"]) == (1, 3)


# ---------------------------------------------------------------- the sample event (sam local invoke -e)


def test_the_sample_sqs_event_comes_from_the_reports_queue_with_the_real_md5(template):
    (record,) = load_event("sqs_reports_monthly_report.json")["Records"]
    (subscription,) = [s for s in template.subscriptions() if s.function_id == "ReportsWorkerFunction"]
    assert record["eventSourceARN"].rsplit(":", 1)[1].endswith(subscription.queue_id)
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert record["awsRegion"] == record["eventSourceARN"].split(":")[3]
    body = json.loads(record["body"])
    assert (body["task"], body["args"]["month"]) == ("reports.send_monthly_report", "2026-03-01")


def test_the_sample_sqs_event_sends_annas_march_report_through_the_reports_worker(system, template, lambda_context):
    event = load_event("sqs_reports_monthly_report.json")
    args = json.loads(event["Records"][0]["body"])["args"]
    _user(system, args["user_id"])
    _spend(args["user_id"], "250.00", "cafe", _in_march(10))

    response = template.load_handler("ReportsWorkerFunction")(event, lambda_context)

    assert response == {"batchItemFailures": []}
    (text,) = _reports_to(system, args["user_id"])
    assert text.startswith("📊 Отчёт за март 2026") and f"250,00{NBSP}₽" in text


def test_a_chart_that_cannot_be_drawn_still_sends_the_months_text(system, monkeypatch):
    from expensebot.jobs import report_render

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("matplotlib failed")

    monkeypatch.setattr(report_render, "render_report", broken)
    _user(system, ANNA)
    _spend(ANNA, "50.00", "cafe", _in_march(5))

    _fire(system, MARCH_LAST_SLOT)
    drained = system.drain("ReportsQueue")

    assert (drained.processed, drained.failed) == (1, 0)
    (text,) = _reports_to(system, ANNA)
    assert text.startswith("📊 Отчёт за март 2026")
    assert system.telegram.sent_files(ANNA) == []
