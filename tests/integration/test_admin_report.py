"""send_daily_admin_report and debug_task against real PostgreSQL, moto and the Telegram stand-in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2
import pytest

from expensebot.bootstrap import get_runtime
from expensebot.jobs.admin_report import gather_admin_stats
from expensebot.jobs.debug import DebugRequest, debug_task
from tests.conftest import MOSCOW

SLOT = datetime(2026, 3, 10, 10, 0, tzinfo=MOSCOW)
ADMINS = (-1001234567890, 4242)
NBSP = "\u00a0"


@pytest.fixture
def admin_system(aws, template, clean_database, telegram) -> Iterator[Any]:
    from expensebot.clock import VirtualClock
    from expensebot_tools.local.stack import running_system

    for chat in ADMINS:
        telegram.add_chat(chat, first_name="admin")
    with running_system(template=template, database_url=clean_database, telegram=telegram,
                        clock=VirtualClock(SLOT), parameters={"AdminChatIds": ",".join(map(str, ADMINS))}) as system:
        yield system


def _seed() -> None:
    """Three users (one new yesterday, two seen in the last day), yesterday's and today's expenses,
    and job runs of the last day including a failure."""
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    day_before = SLOT - timedelta(days=2)
    with conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (%s, %s, %s, %s)",
            [
                (1, 1, day_before, day_before),
                (2, 2, day_before, SLOT - timedelta(hours=3)),
                (3, 3, SLOT - timedelta(hours=20), SLOT - timedelta(hours=20)),
            ],
        )
        yesterday = datetime(2026, 3, 9, 0, 0, tzinfo=MOSCOW)
        cur.executemany(
            "INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
            " VALUES (%s, %s, 'other', 'x', %s, %s)",
            [
                (1, "100.10", yesterday, yesterday),  # first instant of yesterday: counts
                (2, "0.05", yesterday + timedelta(hours=23, minutes=59), yesterday),
                (2, "999", yesterday - timedelta(seconds=1), yesterday),  # the day before: does not
                (3, "999", SLOT - timedelta(hours=1), SLOT),  # today: does not
            ],
        )
        cur.executemany(
            "INSERT INTO job_runs (job, slot, status, started_at) VALUES (%s, %s, %s, %s)",
            [
                ("check_budget_limits", SLOT - timedelta(minutes=30), "succeeded", SLOT - timedelta(minutes=30)),
                ("check_budget_limits", SLOT - timedelta(hours=1), "failed", SLOT - timedelta(hours=1)),
                ("check_budget_limits", SLOT - timedelta(days=2), "failed", SLOT - timedelta(days=2)),
                ("process_recurring_payments", SLOT - timedelta(hours=22), "succeeded", SLOT - timedelta(hours=22)),
            ],
        )
    conn.close()


def test_the_statistics_count_users_yesterdays_expenses_and_runs_of_the_last_day(admin_system):
    _seed()
    stats = gather_admin_stats(get_runtime(), SLOT)

    assert (stats.users_total, stats.users_new, stats.users_active) == (3, 1, 2)
    assert stats.day.isoformat() == "2026-03-09"
    assert (stats.expenses_count, stats.expenses_sums) == (2, [("RUB", Decimal("100.15"))])
    runs = {r.job: (r.runs, r.failed) for r in stats.job_runs}
    assert runs["check_budget_limits"] == (2, 1)
    assert runs["process_recurring_payments"] == (1, 0)
    # A job that did not run at all is listed with zero runs: that absence is what an admin must see.
    assert runs["cleanup_old_expenses"] == (0, 0)
    assert {q.queue for q in stats.queues} == {"default", "reports", "recurring", "maintenance", "notifications"}
    assert all(q.waiting == 0 and q.dead_letter == 0 for q in stats.queues)


def test_every_admin_chat_gets_one_report_with_queue_and_dlq_depths(admin_system):
    _seed()
    # Two messages waiting on the notifications queue and one in its DLQ.
    sqs = admin_system.sqs
    for _ in range(2):
        sqs.send_message(QueueUrl=admin_system.queues.urls["NotificationsQueue"], MessageBody="{}")
    sqs.send_message(QueueUrl=admin_system.queues.urls["NotificationsDeadLetterQueue"], MessageBody="{}")

    outcome = admin_system.fire_schedule("SendDailyAdminReportFunction", SLOT)
    assert (outcome["status"], outcome["planned"], outcome["enqueued"]) == ("succeeded", 2, 2)
    assert admin_system.drain("ReportsQueue").processed == 2
    # A redelivery of the same slot sends nothing more.
    assert admin_system.fire_schedule("SendDailyAdminReportFunction", SLOT, attempt=2)["status"] == "duplicate"

    for chat in ADMINS:
        (message,) = admin_system.telegram.sent_messages(chat)
        text = message.params["text"]
        assert "всего 3, новых за сутки 1, активных за сутки 2" in text
        assert "09.03.2026: 2 на 100,15" in text
        assert "⚠️ check_budget_limits: 2 / 1" in text
        assert "• cleanup_old_expenses: 0 / 0" in text
        assert "⚠️ notifications: 2 / 0 / 1" in text
        assert "• reports: " in text


def test_yesterdays_amounts_are_shown_per_currency_never_added_together(admin_system):
    _seed()
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO expenses (user_id, amount, currency, category, description, spent_at, created_at)"
            " VALUES (1, 25, 'USD', 'cafe', 'обед', %(at)s, %(at)s), (2, 12.5, 'EUR', 'cafe', 'кофе', %(at)s, %(at)s)",
            {"at": datetime(2026, 3, 9, 13, 0, tzinfo=MOSCOW)},
        )
    conn.close()

    stats = gather_admin_stats(get_runtime(), SLOT)
    admin_system.fire_schedule("SendDailyAdminReportFunction", SLOT)
    admin_system.drain("ReportsQueue")

    assert stats.expenses_count == 4
    # The default currency (RUB) first, then the others by code.
    assert stats.expenses_sums == [("RUB", Decimal("100.15")), ("EUR", Decimal("12.50")), ("USD", Decimal("25.00"))]
    text = admin_system.telegram.sent_messages(ADMINS[0])[0].params["text"]
    assert f"09.03.2026: 4 на 100,15{NBSP}₽, 12,50{NBSP}€ и 25,00{NBSP}$" in text


def test_no_admin_chats_means_no_report_and_says_why(system):
    outcome = system.fire_schedule("SendDailyAdminReportFunction", SLOT)
    assert (outcome["status"], outcome["planned"]) == ("succeeded", 0)
    assert outcome["details"] == {"skipped": "ADMIN_CHAT_IDS is empty"}


def test_debug_task_goes_through_the_default_queue_and_answers_in_the_chat(system):
    system.telegram.add_chat(4242, first_name="operator")
    debug_task.delay(DebugRequest(note="после деплоя", chat_id=4242, requested_at=SLOT))
    system.clock.set(SLOT + timedelta(seconds=3))

    drained = system.drain("DefaultQueue")

    assert (drained.processed, drained.failed) == (1, 0)
    (message,) = system.telegram.sent_messages(4242)
    assert "конвейер работает" in message.params["text"]
    assert "задержка 3.0 с" in message.params["text"] and "после деплоя" in message.params["text"]


def test_debug_task_without_a_chat_only_logs(system, caplog):
    debug_task.delay(DebugRequest(note="ping"))
    assert system.drain("DefaultQueue").processed == 1
    assert system.telegram.sent_messages() == []
    (logged,) = [r for r in caplog.records if r.getMessage() == "debug_task"]
    assert logged.request["note"] == "ping"
