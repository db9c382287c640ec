"""The foundation's slice, end to end: Telegram updates through the webhook, the budget job fired by its
schedule event, the worker fed the queue's real messages, one alert at the Telegram stand-in."""

from __future__ import annotations

import os
from datetime import datetime

import psycopg2

from expensebot_tools.local.updates import FakeUser, UpdateFactory
from tests.conftest import MOSCOW

ANNA = FakeUser(user_id=1001, first_name="Анна", username="anna")


def _talk(system, user, *texts, at):
    factory = UpdateFactory()
    system.telegram.add_chat(user.user_id, first_name=user.first_name)
    responses = []
    for text in texts:
        system.clock.set(at)
        responses.append(system.post_update(factory.message(user, text, at)))
    return responses


def test_spending_past_80_percent_sends_exactly_one_alert(system):
    at = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)
    responses = _talk(system, ANNA, "/start", "/budget 1000", "850 кофе", at=at)
    assert [r["statusCode"] for r in responses] == [200, 200, 200]

    outcome = system.fire_schedule("CheckBudgetLimitsFunction", datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW))
    assert outcome["status"] == "succeeded"
    assert outcome["enqueued"] == 1

    drained = system.drain("NotificationsQueue")
    assert (drained.processed, drained.failed) == (1, 0)

    alerts = [c for c in system.telegram.sent_messages(ANNA.user_id) if "80" in c.params["text"]]
    assert len(alerts) == 1
    text = alerts[0].params["text"]
    assert "80 %" in text and "850,00" in text and "1\u00a0000,00" in text


def test_running_the_job_again_and_redelivering_the_message_sends_nothing_more(system):
    at = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)
    _talk(system, ANNA, "/start", "/budget 1000", "850 кофе", at=at)

    system.fire_schedule("CheckBudgetLimitsFunction", datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW))
    messages = system.receive_raw("NotificationsQueue")
    assert len(messages) == 1
    # The same SQS message delivered twice (at-least-once), then the job's next slot and a duplicate
    # delivery of the same slot by the scheduler.
    first = system.invoke_worker("NotificationsQueue", messages)
    second = system.invoke_worker("NotificationsQueue", messages)
    assert first == {"batchItemFailures": []} and second == {"batchItemFailures": []}
    again = system.fire_schedule("CheckBudgetLimitsFunction", datetime(2026, 3, 10, 10, 0, tzinfo=MOSCOW))
    duplicate = system.fire_schedule(
        "CheckBudgetLimitsFunction", datetime(2026, 3, 10, 10, 0, tzinfo=MOSCOW), attempt=2
    )
    system.drain("NotificationsQueue")

    assert again["enqueued"] == 0
    assert duplicate["status"] == "duplicate"
    alerts = [c for c in system.telegram.sent_messages(ANNA.user_id) if "%" in c.params["text"]]
    assert len(alerts) == 1

    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT status, attempts FROM notifications WHERE kind = 'budget_alert'")
        assert cur.fetchall() == [("sent", 1)]
        cur.execute("SELECT count(*) FROM job_runs WHERE job = 'check_budget_limits'")
        assert cur.fetchone() == (2,)
    conn.close()

