"""Delivery at Telegram's speed limit, against the stand-in enforcing Telegram's limits: global pacing
across workers, 429 with retry_after, held-back messages that never reach the DLQ, 5xx retried and then
parked, splitting, and paid broadcasts."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg2
import pytest

from expensebot.bootstrap import build_runtime, get_runtime
from expensebot.clock import SystemClock, VirtualClock
from expensebot.config import Settings
from expensebot.delivery import Delivery, OutboundMessage, deliver
from expensebot.jobs.debug import DebugRequest, debug_task
from expensebot.pacing import HeldBack, Pacer
from expensebot_tools.local.stack import LOCAL_BOT_TOKEN, running_system
from expensebot_tools.local.telegram import TelegramStandIn
from tests.conftest import MOSCOW

START = datetime(2026, 3, 31, 20, 0, tzinfo=MOSCOW)


@contextmanager
def paced_system(template: Any, database_url: str, clock: Any, **standin: Any) -> Iterator[Any]:
    """The application with a stand-in that enforces Telegram's limits on the same clock as the workers."""
    telegram = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], clock=clock.now, accept_any_chat=True, **standin)
    telegram.start()
    try:
        with running_system(template=template, database_url=database_url, telegram=telegram, clock=clock) as system:
            yield system
    finally:
        telegram.stop()


def broadcast(chats: range | list[int]) -> None:
    debug_task.delay_many([DebugRequest(chat_id=chat, request_id=f"broadcast-{chat}") for chat in chats])


def answers(system: Any, status: int) -> list[Any]:
    return [c for c in system.telegram.calls if c.method == "sendMessage" and c.status == status]


def delivered_chats(system: Any) -> list[int]:
    return sorted(c.params["chat_id"] for c in answers(system, 200))


def test_a_broadcast_is_paced_under_the_global_limit_with_no_429(aws, template, clean_database):
    clock = VirtualClock(START)
    with paced_system(template, clean_database, clock) as system:
        broadcast(range(1, 91))
        drained = system.drain("DefaultQueue")

        assert (drained.processed, drained.failed) == (90, 0)
        assert delivered_chats(system) == list(range(1, 91))
        assert answers(system, 429) == []
        # 90 sends at 30/s less the safety margin take a little over three seconds of (virtual) time.
        elapsed = (clock.now() - START).total_seconds()
        assert 89 / 30 <= elapsed <= 89 / 30 / 0.9


def test_messages_to_one_chat_go_a_second_apart_and_a_group_three(aws, template, clean_database, monkeypatch):
    # A group's next message waits its three seconds and the safety margin, longer than the default longest
    # sleep (which would hold it back to the queue instead): this test sends in place.
    monkeypatch.setenv("PACING_MAX_WAIT_SECONDS", "5")
    clock = VirtualClock(START)
    with paced_system(template, clean_database, clock) as system:
        runtime = get_runtime()
        for n in range(3):
            deliver(runtime, OutboundMessage(f"private:{n}", "test", 42, f"private {n}"))
            deliver(runtime, OutboundMessage(f"group:{n}", "test", -100500, f"group {n}"))

        assert answers(system, 429) == []
        for chat, spacing in ((42, 1.0), (-100500, 3.0)):
            times = [c.at for c in answers(system, 200) if c.params["chat_id"] == chat]
            assert len(times) == 3
            assert all((b - a).total_seconds() >= spacing for a, b in itertools.pairwise(times))


def test_a_message_whose_slot_is_too_far_off_is_held_back_as_a_new_delayed_copy(aws, template, clean_database):
    clock = VirtualClock(START)
    with paced_system(template, clean_database, clock) as system:
        runtime = get_runtime()
        Pacer(runtime).pause(60)  # as after a 429 with retry_after 60
        broadcast([7])
        received = system.receive_raw("DefaultQueue")

        response = system.invoke_worker("DefaultQueue", received)

        # Not a failure (it would count towards maxReceiveCount): the record succeeds and a copy waits.
        assert response == {"batchItemFailures": []}
        system.delete("DefaultQueue", received)
        attributes = system.sqs.get_queue_attributes(
            QueueUrl=system.queues.urls["DefaultQueue"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
        assert system.telegram.calls == []


def test_a_429_pauses_every_worker_until_retry_after_and_each_message_still_arrives_once(
    aws, template, clean_database
):
    clock = VirtualClock(START)
    # Telegram allows this bot 5/s here while we pace at 30/s: Telegram answers 429 and we must adapt.
    with paced_system(template, clean_database, clock, global_rate=5) as system:
        broadcast(range(1, 13))
        system.drain("DefaultQueue")
        delayed = system.sqs.get_queue_attributes(
            QueueUrl=system.queues.urls["DefaultQueue"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
        assert int(delayed) >= 1  # the refused ones wait out retry_after as delayed copies
        too_many = answers(system, 429)
        assert too_many, "the stand-in should have answered 429 to sends beyond 5/s"
        assert all(c.response["parameters"]["retry_after"] >= 1 for c in too_many)

        # The pause is shared: another worker (another runtime, its own connection) holds off too.
        conn = psycopg2.connect(clean_database)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT rate_factor FROM telegram_pacing")
            (rate_factor,) = cur.fetchone()
        conn.close()
        assert rate_factor < 1.0

        # The messages Telegram refused come back after retry_after (a real second here) and go out.
        deadline = time.monotonic() + 15
        while len(delivered_chats(system)) < 12 and time.monotonic() < deadline:
            time.sleep(0.5)
            clock.advance(timedelta(seconds=5))
            system.drain("DefaultQueue")

        assert delivered_chats(system) == list(range(1, 13))
        dead = system.sqs.get_queue_attributes(
            QueueUrl=system.queues.urls["DefaultDeadLetterQueue"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        assert dead["ApproximateNumberOfMessages"] == "0"


def test_a_pause_set_by_one_worker_holds_off_another(aws, template, clean_database):
    clock = VirtualClock(START)
    with paced_system(template, clean_database, clock) as system:
        one = get_runtime()
        other = build_runtime(Settings(), clock=clock)
        try:
            Pacer(one).pause(retry_after=10)
            with pytest.raises(HeldBack) as held:
                Pacer(other).reserve(12345)
            assert held.value.reason == "Telegram asked every sender to wait (429)"
            clock.advance(timedelta(seconds=8))
            slot = Pacer(other).reserve(12345)
            assert slot.send_at == START + timedelta(seconds=10)
        finally:
            other.db.close()
        assert system.telegram.calls == []


def _runtime_for(database_url: str, standin: TelegramStandIn, **settings: str) -> Any:
    return build_runtime(
        Settings(DATABASE_URL=database_url, TELEGRAM_API_BASE=standin.base_url, TELEGRAM_BOT_TOKEN=LOCAL_BOT_TOKEN,
                 **settings),
        clock=SystemClock(),
    )


def _send_from_threads(
    make_runtime: Callable[[], Any], workers: int, per_worker: int, run: str
) -> tuple[float, int]:
    held = []

    def work(worker: int) -> None:
        runtime = make_runtime()
        try:
            for n in range(per_worker):
                chat = 1000 + worker * per_worker + n
                try:
                    deliver(runtime, OutboundMessage(f"{run}:{chat}", "test", chat, "hello"))
                except HeldBack:
                    held.append(chat)
        finally:
            runtime.db.close()

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, len(held)


def test_pacing_holds_across_concurrent_workers_and_without_it_telegram_answers_429(clean_database):
    with TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], accept_any_chat=True, global_rate=10) as standin:
        seconds, held = _send_from_threads(
            # Paced at 8/s against Telegram's 10/s: room for a loaded CI machine waking a thread late.
            lambda: _runtime_for(clean_database, standin, TELEGRAM_RATE_PER_SECOND="8"), workers=4, per_worker=8,
            run="paced",
        )
        paced_429s = [c for c in standin.calls if c.status == 429]
        delivered = {c.params["chat_id"] for c in standin.calls if c.status == 200}

        assert paced_429s == [] and held == 0
        assert delivered == set(range(1000, 1032))
        assert seconds >= 31 / 8 * 0.97  # 32 sends at 8/s (less the margin): the workers shared one pace

        standin.reset()
        _, unpaced_held = _send_from_threads(
            lambda: _runtime_for(clean_database, standin, TELEGRAM_PACING="false"), workers=4, per_worker=8,
            run="unpaced",
        )
    # The same workers without the shared pacing overrun the limit.
    assert unpaced_held > 0


def test_a_held_back_message_never_reaches_the_dlq_however_often_it_waits(aws, template, clean_database, monkeypatch):
    monkeypatch.setenv("PACING_MAX_WAIT_SECONDS", "0.1")
    clock = SystemClock()
    with paced_system(template, clean_database, clock) as system:
        runtime = get_runtime()
        url = system.queues.urls["DefaultQueue"]
        broadcast([77])
        # Held back seven times, more than the queue's maxReceiveCount of 5.
        for _ in range(7):
            received = system.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3, AttributeNames=["All"]).get(
                "Messages", []
            )
            assert len(received) == 1
            assert received[0]["Attributes"]["ApproximateReceiveCount"] == "1"  # a fresh copy each time
            Pacer(runtime).pause(1)  # as if Telegram had just answered 429 with retry_after 1
            assert system.invoke_worker("DefaultQueue", received) == {"batchItemFailures": []}
            system.delete("DefaultQueue", received)
        time.sleep(1.1)
        received = system.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3, AttributeNames=["All"])["Messages"]
        system.invoke_worker("DefaultQueue", received)
        system.delete("DefaultQueue", received)

        assert delivered_chats(system) == [77]
        dead = system.sqs.get_queue_attributes(
            QueueUrl=system.queues.urls["DefaultDeadLetterQueue"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        assert dead["ApproximateNumberOfMessages"] == "0"


def test_a_5xx_is_retried_and_after_five_receives_the_message_is_in_the_dlq(system, monkeypatch):
    import expensebot.worker

    monkeypatch.setattr(expensebot.worker, "BACKOFF_FIRST_SECONDS", 0)  # retry at once instead of after 30 s
    system.telegram.add_chat(88, first_name="x")
    system.telegram.set_failures(fail_fraction=1.0)
    debug_task.delay(DebugRequest(chat_id=88))

    drained = system.drain("DefaultQueue")

    attempts = [c for c in system.telegram.calls if c.method == "sendMessage"]
    assert drained.processed == 0 and drained.failed == 5
    assert len(attempts) == 5 and all(c.status >= 500 for c in attempts)
    parked = system.receive_raw("DefaultDeadLetterQueue")
    assert len(parked) == 1


def test_another_400_is_final_keeps_telegrams_description_and_is_parked_by_the_worker(system):
    from expensebot.errors import TelegramBadRequest
    from expensebot.worker import FINAL_ERRORS

    with pytest.raises(TelegramBadRequest) as refused:
        deliver(get_runtime(), OutboundMessage("blank:1", "test", 42, "   "))  # Telegram: message text is empty

    assert "text is empty" in refused.value.description
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT status, last_error FROM notifications WHERE dedupe_key = 'blank:1'")
        status, last_error = cur.fetchone()
    conn.close()
    assert status == "failed" and "text is empty" in last_error
    # The worker parks such a record in the DLQ at once instead of retrying it (see test_adapters' poison test).
    assert issubclass(TelegramBadRequest, FINAL_ERRORS)


def test_a_message_over_4096_characters_arrives_in_order_in_parts_once(aws, template, clean_database):
    clock = VirtualClock(START)
    text = "\n".join(f"{n:03d} " + "расход " * 20 for n in range(100))
    with paced_system(template, clean_database, clock) as system:
        runtime = get_runtime()
        first = deliver(runtime, OutboundMessage("long:1", "monthly_report", 42, text))
        again = deliver(runtime, OutboundMessage("long:1", "monthly_report", 42, text))

        parts = [c.params["text"] for c in answers(system, 200)]
    assert (first, again) == (Delivery.SENT, Delivery.ALREADY_SENT)
    assert len(parts) == 4 and all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == text


def test_paid_broadcast_sends_with_allow_paid_broadcast_far_above_30_per_second(
    aws, template, clean_database, monkeypatch
):
    monkeypatch.setenv("TELEGRAM_PAID_BROADCAST", "true")
    clock = VirtualClock(START)
    with paced_system(template, clean_database, clock) as system:
        broadcast(range(1, 201))
        system.drain("DefaultQueue")

        sent = answers(system, 200)
        assert len(sent) == 200 and answers(system, 429) == []
        assert all(c.params.get("allow_paid_broadcast") is True for c in sent)
        assert (clock.now() - START).total_seconds() < 1.0
