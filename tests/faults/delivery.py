"""Redelivery as AWS does it, and what users saw, for the fault scenarios."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from tests.faults.figures import Figures

MAX_RECEIVES = 5  # the queues' maxReceiveCount (template.yaml)


def pending(system: Any, queue_id: str) -> int:
    attributes = system.sqs.get_queue_attributes(
        QueueUrl=system.queues.urls[queue_id],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def redeliver(system: Any, queue_id: str, *, rounds: int = MAX_RECEIVES + 1,
              between: timedelta = timedelta(minutes=10)) -> None:
    """What the event source mapping does until the queue is empty: receive, invoke, delete what succeeded;
    a failed record comes back (SQS moves it to the DLQ after maxReceiveCount receives). Between rounds the
    virtual clock moves on, so a claim whose worker died lapses as its lease says."""
    for _ in range(rounds):
        # One receive per message per round: failed records come back at once here (fast_retries), and a
        # drain that looped would spend a message's receives in one go, which SQS's backoff never does.
        system.drain(queue_id, max_batches=max(1, -(-pending(system, queue_id) // 10)))
        if pending(system, queue_id) == 0:
            return
        system.clock.advance(between)


def delivered_per_chat(system_or_standin: Any) -> Counter[int]:
    telegram = getattr(system_or_standin, "telegram", system_or_standin)
    return Counter(int(call.params["chat_id"]) for call in telegram.calls
                   if call.method == "sendMessage" and call.status == 200)


def dead_letters(system: Any, queue_id: str) -> int:
    dlq = queue_id.replace("Queue", "DeadLetterQueue")
    return int(system.sqs.get_queue_attributes(QueueUrl=system.queues.urls[dlq], AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])


def score(figures: Figures, system: Any, expected_chats: Iterable[int], *, documented: int = 0) -> None:
    """Counts, for chats that should each get one message, the lost ones and the duplicates; up to
    `documented` duplicates are the documented kind (a send Telegram accepted before the worker could
    confirm it)."""
    counts = delivered_per_chat(system)
    expected = list(expected_chats)
    figures.expected += len(expected)
    figures.lost += sum(1 for chat in expected if counts[chat] == 0)
    extra = sum(counts[chat] - 1 for chat in expected if counts[chat] > 1)
    figures.documented_duplicates += min(extra, documented)
    figures.duplicated += max(0, extra - documented)
    figures.duplicated += sum(count for chat, count in counts.items() if chat not in expected)
