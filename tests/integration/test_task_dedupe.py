"""Every task's dedupe key comes from its message, so a duplicate delivery (the same SQS record twice) and
a duplicate message (two copies of one body) make one Telegram message. debug_task is the task whose key
could be missing from its arguments (no request_id)."""

from __future__ import annotations

import json

from expensebot.jobs.debug import DebugRequest, debug_task

CHAT = 4242


def _send_body(system, body: str) -> None:
    system.sqs.send_message(QueueUrl=system.queues.urls["DefaultQueue"], MessageBody=body)


def test_the_same_debug_task_record_delivered_twice_without_a_request_id_answers_once(system):
    system.telegram.add_chat(CHAT, first_name="operator")
    _send_body(system, json.dumps({"task": "default.debug_task", "args": {"chat_id": CHAT}, "id": "m-1"}))
    [record] = system.receive_raw("DefaultQueue")

    first = system.invoke_worker("DefaultQueue", [record])
    second = system.invoke_worker("DefaultQueue", [record])

    assert first["batchItemFailures"] == [] and second["batchItemFailures"] == []
    assert len(system.telegram.sent_messages(CHAT)) == 1


def test_two_copies_of_a_debug_task_body_without_any_id_answer_once(system):
    system.telegram.add_chat(CHAT, first_name="operator")
    body = json.dumps({"task": "default.debug_task", "args": {"chat_id": CHAT, "note": "sent by hand"}})
    _send_body(system, body)
    _send_body(system, body)

    drained = system.drain("DefaultQueue")

    assert (drained.processed, drained.failed) == (2, 0)
    assert len(system.telegram.sent_messages(CHAT)) == 1


def test_two_debug_requests_enqueued_separately_answer_twice(system):
    # Each .delay() is a message of its own (its own id): deduplication must not merge them.
    system.telegram.add_chat(CHAT, first_name="operator")
    debug_task.delay(DebugRequest(chat_id=CHAT, note="same"))
    debug_task.delay(DebugRequest(chat_id=CHAT, note="same"))

    drained = system.drain("DefaultQueue")

    assert (drained.processed, drained.failed) == (2, 0)
    assert len(system.telegram.sent_messages(CHAT)) == 2
