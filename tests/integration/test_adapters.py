"""The adapters against real peers: PostgreSQL, SQS (moto) and the Telegram stand-in over HTTP."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from decimal import Decimal

import psycopg2
import pytest

from expensebot.adapters.database import IDLE_CHECK_SECONDS, Database
from expensebot.adapters.migrations import apply_migrations, pending
from expensebot.adapters.queues import OutgoingMessage
from expensebot.adapters.telegram import TelegramClient
from expensebot.bootstrap import get_runtime
from expensebot.delivery import Delivery, DeliveryInProgress, OutboundMessage, deliver
from expensebot.errors import DatabaseUnavailable, TelegramChatUnavailable, TelegramRetryAfter
from expensebot.jobs.budget_limits import BudgetAlert, send_budget_alert
from expensebot_tools.local.telegram import TelegramStandIn
from expensebot_tools.project.template import MIGRATIONS_DIR


def _insert_user(user_id: int, *, chat_id: int | None = None) -> None:
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (%s, %s, now(), now())",
            (user_id, chat_id or user_id),
        )
    conn.close()


def _user_with_budget(system, user_id: int, limit: int) -> int:
    """A registered user with a chat at the stand-in and a monthly budget; returns the budget's id."""
    _insert_user(user_id)
    system.telegram.add_chat(user_id)
    return get_runtime().db.fetch_all(
        "INSERT INTO budgets (user_id, amount, created_at, updated_at) VALUES (%s, %s, now(), now()) RETURNING id",
        (user_id, limit),
    )[0]["id"]


def _alert(budget_id: int, user_id: int, *, threshold: int = 80, spent: str = "85", limit: str = "100") -> BudgetAlert:
    return BudgetAlert(budget_id=budget_id, user_id=user_id, chat_id=user_id, month=date(2026, 3, 1),
                       threshold=threshold, spent=Decimal(spent), limit=Decimal(limit))


def _terminate_backend(database_url: str, pid: int) -> None:
    """What a server restart, a failover or a proxy's idle timeout does to a connection."""
    killer = psycopg2.connect(database_url)
    killer.autocommit = True
    with killer.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()


def test_migrations_apply_once_and_then_report_nothing_pending(database_url):
    database = Database(lambda: database_url, timezone="Europe/Moscow")
    assert apply_migrations(database, MIGRATIONS_DIR) == []
    assert pending(database, MIGRATIONS_DIR) == []
    database.close()


def test_the_database_session_uses_the_application_time_zone(database_url):
    database = Database(lambda: database_url, timezone="Asia/Vladivostok")
    assert database.fetch_all("SELECT current_setting('TimeZone') AS tz") == [{"tz": "Asia/Vladivostok"}]
    database.close()


def test_a_connection_dropped_by_the_server_is_reopened_on_the_next_transaction(database_url):
    database = Database(lambda: database_url, timezone="Europe/Moscow")
    pid = database.fetch_all("SELECT pg_backend_pid() AS pid")[0]["pid"]
    _terminate_backend(database_url, pid)
    with pytest.raises(DatabaseUnavailable):
        database.fetch_all("SELECT 1")
    assert database.fetch_all("SELECT 1 AS one") == [{"one": 1}]
    database.close()


def test_one_connection_serves_every_transaction_of_a_warm_environment(database_url):
    database = Database(lambda: database_url, timezone="Europe/Moscow")
    pids = {database.fetch_all("SELECT pg_backend_pid() AS pid")[0]["pid"] for _ in range(3)}
    assert len(pids) == 1
    database.close()


def test_a_connection_dropped_while_idle_is_replaced_before_use_without_an_error(database_url):
    database = Database(lambda: database_url, timezone="Europe/Moscow")
    pid = database.fetch_all("SELECT pg_backend_pid() AS pid")[0]["pid"]
    _terminate_backend(database_url, pid)
    database._last_used -= IDLE_CHECK_SECONDS + 1  # a frozen Lambda environment, thawed a while later
    assert database.fetch_all("SELECT pg_backend_pid() AS pid")[0]["pid"] != pid
    database.close()


def test_an_unreachable_database_raises_the_projects_own_error():
    database = Database(lambda: "postgresql://nobody@127.0.0.1:1/none", timezone="UTC", connect_timeout=1)
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        database.fetch_all("SELECT 1")


def test_twenty_five_messages_go_out_in_three_batch_calls_and_all_arrive(system, monkeypatch):
    runtime = get_runtime()
    calls = []
    real = runtime.queues.client.send_message_batch

    def counting(**kwargs):
        calls.append(len(kwargs["Entries"]))
        return real(**kwargs)

    monkeypatch.setattr(runtime.queues.client, "send_message_batch", counting)
    sent = runtime.queues.send("default", [OutgoingMessage(json.dumps({"n": i})) for i in range(25)])
    assert sent == 25 and calls == [10, 10, 5]
    bodies = []
    while messages := system.receive_raw("DefaultQueue"):
        bodies += [json.loads(m["Body"])["n"] for m in messages]
        system.delete("DefaultQueue", messages)
    assert sorted(bodies) == list(range(25))


def test_the_telegram_client_maps_blocked_chats_and_rate_limits(system):
    runtime = get_runtime()
    system.telegram.add_chat(42)
    system.telegram.block(42)
    with pytest.raises(TelegramChatUnavailable, match="blocked"):
        runtime.telegram.send_message(42, "hi")
    with pytest.raises(TelegramChatUnavailable, match="chat not found"):
        runtime.telegram.send_message(999, "hi")
    # A stand-in that enforces Telegram's limits: a second message to one chat within a second is a 429.
    with TelegramStandIn(tokens=[runtime.bot_token()], enforce_limits=True, accept_any_chat=True) as limited:
        client = TelegramClient(limited.base_url, runtime.bot_token)
        client.send_message(43, "one")
        with pytest.raises(TelegramRetryAfter) as caught:
            client.send_message(43, "two")
        assert caught.value.retry_after >= 1


def test_a_blocked_user_is_deactivated_and_the_message_dropped_not_retried(system):
    runtime = get_runtime()
    _insert_user(7)
    system.telegram.add_chat(7)
    system.telegram.block(7)
    result = deliver(runtime, OutboundMessage(dedupe_key="t:7", kind="test", chat_id=7, text="hi", user_id=7))
    assert result is Delivery.DROPPED
    rows = runtime.db.fetch_all("SELECT is_active, deactivated_reason FROM users WHERE user_id = 7")
    assert rows == [{"is_active": False, "deactivated_reason": "Forbidden: bot was blocked by the user"}]
    assert deliver(runtime, OutboundMessage("t:7", "test", 7, "hi", 7)) is Delivery.ALREADY_SENT


def test_a_message_claimed_by_another_worker_waits_and_is_sent_after_the_lease(system):
    runtime = get_runtime()
    _insert_user(8)
    system.telegram.add_chat(8)
    now = runtime.clock.now()
    runtime.db.fetch_all(
        "INSERT INTO notifications (dedupe_key, kind, user_id, chat_id, status, attempts, lease_until, created_at)"
        " VALUES ('t:8', 'test', 8, 8, 'sending', 1, %s, %s) RETURNING id",
        (now + timedelta(seconds=60), now),
    )
    with pytest.raises(DeliveryInProgress):
        deliver(runtime, OutboundMessage("t:8", "test", 8, "hi", 8))
    assert system.telegram.sent_messages(8) == []
    # The other worker died in the window: after its lease the message goes out (at least once).
    system.clock.advance(timedelta(seconds=61))
    assert deliver(runtime, OutboundMessage("t:8", "test", 8, "hi", 8)) is Delivery.SENT
    assert len(system.telegram.sent_messages(8)) == 1


def test_an_alert_superseded_by_a_higher_threshold_is_not_sent(system):
    runtime = get_runtime()
    budget_id = _user_with_budget(system, 9, 1000)
    month = date(2026, 3, 1)
    args = {"budget_id": budget_id, "user_id": 9, "chat_id": 9, "month": month,
            "spent": Decimal("950"), "limit": Decimal("1000")}
    assert send_budget_alert.run(runtime, {**args, "threshold": 90}) is Delivery.SENT
    # An older message for 80 % arrives late: the user already heard about 90 %.
    assert send_budget_alert.run(runtime, {**args, "threshold": 80}) is None
    assert len(system.telegram.sent_messages(9)) == 1
    assert BudgetAlert(**args, threshold=90).dedupe_key == f"budget_alert:{budget_id}:2026-03:90"


def test_poison_messages_go_to_the_dlq_with_their_error_and_the_rest_of_the_batch_succeeds(system):
    runtime = get_runtime()
    budget_id = _user_with_budget(system, 10, 100)
    send_budget_alert.delay(_alert(budget_id, 10), runtime=runtime)
    runtime.queues.send("notifications", [OutgoingMessage('{"task": "notifications.nope"}'),
                                          OutgoingMessage("not even json")])
    messages = system.receive_raw("NotificationsQueue")
    assert len(messages) == 3
    response = system.invoke_worker("NotificationsQueue", messages)
    assert response == {"batchItemFailures": []}
    assert len(system.telegram.sent_messages(10)) == 1
    parked = system.sqs.receive_message(
        QueueUrl=system.queues.urls["NotificationsDeadLetterQueue"], MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )["Messages"]
    errors = sorted(m["MessageAttributes"]["error"]["StringValue"] for m in parked)
    assert len(errors) == 2
    assert errors[0].startswith("InvalidMessage: not a task message")
    assert errors[1].startswith("InvalidMessage: unregistered task 'notifications.nope'")


def test_a_failed_send_comes_back_after_a_growing_delay_not_the_queue_visibility_timeout(system, monkeypatch):
    from expensebot.worker import retry_delay

    runtime = get_runtime()
    budget_id = _user_with_budget(system, 11, 100)
    send_budget_alert.delay(_alert(budget_id, 11), runtime=runtime)
    changes = []
    real = runtime.queues.client.change_message_visibility
    monkeypatch.setattr(runtime.queues.client, "change_message_visibility",
                        lambda **kw: changes.append(kw["VisibilityTimeout"]) or real(**kw))
    system.telegram.set_failures(fail_fraction=1.0)  # Telegram answers 5xx
    messages = system.receive_raw("NotificationsQueue")
    response = system.invoke_worker("NotificationsQueue", messages)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [messages[0]["MessageId"]]
    assert changes == [30]
    # The claim was released: the redelivery sends it, once Telegram is back.
    system.telegram.set_failures(fail_fraction=0.0)
    system.sqs.change_message_visibility(QueueUrl=system.queues.urls["NotificationsQueue"],
                                         ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=0)
    assert system.drain("NotificationsQueue").processed == 1
    assert len(system.telegram.sent_messages(11)) == 1
    delays = [retry_delay(n, RuntimeError(), lease_seconds=50) for n in (1, 2, 3, 4, 5, 7)]
    assert delays == [30, 60, 120, 240, 480, 900]
    assert retry_delay(3, TelegramRetryAfter("sendMessage", "Too Many Requests", 17), lease_seconds=50) == 17


def test_a_record_s_log_keys_do_not_follow_the_next_record_of_the_batch(system):
    from expensebot.observability import logger

    runtime = get_runtime()
    budget_id = _user_with_budget(system, 12, 100)
    send_budget_alert.delay(_alert(budget_id, 12), runtime=runtime)
    system.invoke_worker("NotificationsQueue", system.receive_raw("NotificationsQueue"))
    assert not {"task", "task_id", "job_run_id"} & set(logger.get_current_keys())
