"""A worker batch under faults: PostgreSQL stopped or its connections killed before the claim, between
Telegram's accept and the confirm, between two records; Telegram answering 5xx, timing out after accepting,
429 and 403; the soft deadline expiring mid-batch. After each, SQS redelivers as it would, and every chat
gets its message once (or the one documented duplicate of a send Telegram accepted before the confirm)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import expensebot.delivery
import expensebot.scheduling
import expensebot.worker
from expensebot.jobs.debug import DebugRequest, debug_task
from tests.faults.conftest import system_on
from tests.faults.delivery import dead_letters, delivered_per_chat, pending, redeliver, score

CHATS = range(101, 106)


def enqueue_debug_messages(chats: range = CHATS) -> None:
    # A request id of the message's own: the dedupe key comes from the message, not from the delivery.
    debug_task.delay_many([DebugRequest(chat_id=chat, request_id=f"faults-{chat}") for chat in chats])


def once(original: Callable[..., Any], fault: Callable[[], None], *, when: Callable[..., bool] = lambda *a, **k: True
         ) -> Callable[..., Any]:
    """Wraps a library function so that the fault happens just before its first matching call."""
    fired = False

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal fired
        if not fired and when(*args, **kwargs):
            fired = True
            fault()
        return original(*args, **kwargs)

    return wrapped


def test_database_connections_killed_before_the_claim(fault_system, figures, monkeypatch):
    enqueue_debug_messages()
    monkeypatch.setattr(expensebot.delivery, "claim_and_reserve", once(
        expensebot.delivery.claim_and_reserve, fault_system.postgres.kill_connections))
    figures.faults += 1

    redeliver(fault_system, "DefaultQueue")

    score(figures, fault_system, CHATS)
    assert delivered_per_chat(fault_system) == {chat: 1 for chat in CHATS}
    assert dead_letters(fault_system, "DefaultQueue") == 0


def test_database_stopped_between_telegrams_accept_and_the_confirm(fault_system, figures, monkeypatch):
    enqueue_debug_messages()
    monkeypatch.setattr(expensebot.delivery, "_record", once(
        expensebot.delivery._record, fault_system.postgres.stop_server,
        when=lambda *args, **kwargs: kwargs.get("status") == "sent"))
    figures.faults += 1

    # One batch: the first send is accepted, then PostgreSQL is gone for the rest of it.
    fault_system.drain("DefaultQueue", max_batches=1)
    fault_system.postgres.restart_server()
    redeliver(fault_system, "DefaultQueue")

    # The one send Telegram accepted but the worker could not confirm is sent again once its claim lapses:
    # the documented duplicate (sendMessage has no idempotency key).
    score(figures, fault_system, CHATS, documented=1)
    counts = delivered_per_chat(fault_system)
    assert sorted(counts.values()) == [1, 1, 1, 1, 2]
    assert dead_letters(fault_system, "DefaultQueue") == 0


def test_database_stopped_between_two_records_of_a_batch(fault_system, figures, monkeypatch):
    enqueue_debug_messages()
    calls = itertools.count()
    monkeypatch.setattr(expensebot.worker, "_run", once(
        expensebot.worker._run, fault_system.postgres.stop_server, when=lambda *a, **k: next(calls) == 1))
    figures.faults += 1

    fault_system.drain("DefaultQueue", max_batches=1)
    fault_system.postgres.restart_server()
    redeliver(fault_system, "DefaultQueue")

    score(figures, fault_system, CHATS)
    assert delivered_per_chat(fault_system) == {chat: 1 for chat in CHATS}


def test_telegram_answers_5xx_for_a_while(fault_system, figures):
    enqueue_debug_messages()
    fault_system.telegram.set_failures(fail_fraction=1.0)
    figures.faults += len(CHATS)

    fault_system.drain("DefaultQueue", max_batches=1)
    fault_system.telegram.set_failures(fail_fraction=0.0)
    redeliver(fault_system, "DefaultQueue")

    score(figures, fault_system, CHATS)
    assert delivered_per_chat(fault_system) == {chat: 1 for chat in CHATS}


def test_telegram_times_out_after_accepting(aws, template, faults_database, fast_retries, figures, monkeypatch):
    monkeypatch.setenv("TELEGRAM_TIMEOUT_SECONDS", "0.3")
    with system_on(template, faults_database, timeout_fraction=1.0, hang_seconds=0.6) as system:
        enqueue_debug_messages(range(101, 103))
        figures.faults += 2

        system.drain("DefaultQueue", max_batches=1)  # each send times out; Telegram accepts it afterwards
        time.sleep(0.7)
        system.telegram.set_failures(timeout_fraction=0.0)
        redeliver(system, "DefaultQueue")

        score(figures, system, range(101, 103), documented=2)
        assert delivered_per_chat(system) == {101: 2, 102: 2}


def test_telegram_answers_429_with_retry_after(aws, template, faults_database, fast_retries, figures):
    # Telegram allows one message a second here, while the workers pace at 30/s.
    with system_on(template, faults_database, enforce_limits=True, global_rate=1) as system:
        enqueue_debug_messages()
        deadline = time.monotonic() + 20
        while pending(system, "DefaultQueue") and time.monotonic() < deadline:
            system.drain("DefaultQueue")
            time.sleep(1.1)  # held-back copies are delayed in real seconds (DelaySeconds)
            system.clock.advance(timedelta(seconds=5))
        figures.faults += sum(1 for c in system.telegram.calls if c.status == 429)

        score(figures, system, CHATS)
        assert figures.faults >= 1, "the stand-in should have answered 429"
        assert delivered_per_chat(system) == {chat: 1 for chat in CHATS}
        assert dead_letters(system, "DefaultQueue") == 0


def test_telegram_answers_403_for_a_user_who_blocked_the_bot(fault_system, figures):
    from tests.conftest import run_sql

    fault_system.telegram.block(103)
    enqueue_debug_messages()
    figures.faults += 1

    redeliver(fault_system, "DefaultQueue")

    others = [chat for chat in CHATS if chat != 103]
    score(figures, fault_system, others)
    assert delivered_per_chat(fault_system) == {chat: 1 for chat in others}
    # Dropped at once, not retried into the DLQ, and recorded as dropped.
    assert dead_letters(fault_system, "DefaultQueue") == 0
    assert run_sql("SELECT status FROM notifications WHERE chat_id = 103") == [("dropped",)]


def test_the_soft_deadline_expires_mid_batch(fault_system, figures, monkeypatch):
    enqueue_debug_messages()
    ticks = itertools.count(step=100.0)  # every look at the clock moves it 100 s: the 300 s limit mid-batch
    monkeypatch.setattr(expensebot.scheduling, "_monotonic", lambda: float(next(ticks)))
    figures.faults += 1

    redeliver(fault_system, "DefaultQueue", rounds=10)

    score(figures, fault_system, CHATS)
    assert delivered_per_chat(fault_system) == {chat: 1 for chat in CHATS}


@pytest.mark.parametrize("failed_entries", [1, 4])
def test_sqs_refuses_some_entries_of_a_send_message_batch(fault_system, figures, failed_entries):
    from expensebot.bootstrap import get_runtime

    client = get_runtime().queues.client
    original = client.send_message_batch
    refused = {"done": False}

    def partly_failing(**kwargs: Any) -> dict[str, Any]:
        if refused["done"]:
            return original(**kwargs)
        refused["done"] = True
        entries = kwargs["Entries"]
        accepted = original(**{**kwargs, "Entries": entries[failed_entries:]})
        accepted["Failed"] = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError",
                               "Message": "injected"} for e in entries[:failed_entries]]
        return accepted

    client.send_message_batch = partly_failing
    figures.faults += failed_entries
    try:
        enqueue_debug_messages()
    finally:
        client.send_message_batch = original

    redeliver(fault_system, "DefaultQueue")

    score(figures, fault_system, CHATS)
    assert delivered_per_chat(fault_system) == {chat: 1 for chat in CHATS}
