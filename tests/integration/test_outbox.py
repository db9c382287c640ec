"""A batch's messages of several parts (an export's CSV and XLSX; a report's text, chart and PDF). Telegram takes one
message a second in a private chat, so each message's later parts wait for their chat. They wait in the batch's
outbox (delivery.Outbox) while the worker runs the batch's other records, instead of the worker sleeping through
each chat's second: a batch of ten exports takes about one second, not ten. The parts still go in order, a second
apart, once each, and what befalls a waiting part befalls its record."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from typing import Any

import psycopg2

from expensebot.bootstrap import get_runtime
from expensebot.clock import VirtualClock
from expensebot.delivery import Attachment, Delivery, OutboundMessage, OutboxTimeout, batch_outbox, deliver
from expensebot.jobs.exports import ExportRequest, send_export
from expensebot.tasks import parse_message
from expensebot_tools.local.telegram.errors import ApiError
from tests.conftest import MOSCOW
from tests.integration.test_pacing import paced_system

START = datetime(2026, 3, 2, 10, 0, tzinfo=MOSCOW)
USERS = range(101, 111)


def _users_with_an_expense(users: range) -> None:
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        for user in users:
            cur.execute("INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (%s, %s, now(), now())",
                        (user, user))
            cur.execute("INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
                        " VALUES (%s, 250, 'кафе', 'кофе', '2026-02-10 12:00+03', now())", (user,))
    conn.close()


def _export_everyone(system: Any, users: range) -> list[dict[str, Any]]:
    _users_with_an_expense(users)
    send_export.delay_many([ExportRequest(user_id=user, chat_id=user, month=date(2026, 2, 1), request_id=f"r{user}")
                            for user in users])
    received = system.receive_raw("ReportsQueue")
    assert len(received) == len(users)
    return received


def _files(system: Any, chat_id: int) -> list[Any]:
    return [c for c in system.telegram.calls
            if c.method == "sendDocument" and c.status == 200 and c.params["chat_id"] == chat_id]


def test_a_batch_of_exports_sends_every_chat_its_two_files_a_second_apart_in_about_one_second(
    aws, template, clean_database
):
    clock = VirtualClock(START)
    with paced_system(template, clean_database, clock) as system:
        response = system.invoke_worker("ReportsQueue", _export_everyone(system, USERS))
        elapsed = (clock.now() - START).total_seconds()

        assert response == {"batchItemFailures": []}
        assert [c for c in system.telegram.calls if c.status == 429] == []
        for user in USERS:
            files = _files(system, user)
            assert [f.params["document"].filename[-4:] for f in files] == [".csv", "xlsx"]
            assert (files[1].at - files[0].at).total_seconds() >= 1.0
    # One chat after another, sleeping through each one's second, would take ten seconds.
    assert elapsed < 2.0, elapsed


def test_a_waiting_part_that_fails_fails_its_own_record_only_and_its_redelivery_sends_only_that_part(
    aws, template, clean_database
):
    clock = VirtualClock(START)
    with paced_system(template, clean_database, clock) as system:
        received = _export_everyone(system, USERS)
        original = system.telegram.handlers["sendDocument"]

        def xlsx_fails_for_103(token: str, params: dict[str, Any], now: Any) -> Any:
            if params["chat_id"] == 103 and params["document"].filename.endswith(".xlsx"):
                raise ApiError(502, "Bad Gateway")
            return original(token, params, now)

        system.telegram.handlers["sendDocument"] = xlsx_fails_for_103
        response = system.invoke_worker("ReportsQueue", received)
        failed_ids = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        failed = [m for m in received if m["MessageId"] in failed_ids]

        assert [parse_message(m["Body"]).args["user_id"] for m in failed] == [103]
        assert all(len(_files(system, user)) == 2 for user in USERS if user != 103)
        assert [f.params["document"].filename[-4:] for f in _files(system, 103)] == [".csv"]

        system.telegram.handlers["sendDocument"] = original
        clock.advance(timedelta(seconds=30))
        assert system.invoke_worker("ReportsQueue", failed) == {"batchItemFailures": []}
        assert [f.params["document"].filename[-4:] for f in _files(system, 103)] == [".csv", "xlsx"]


def test_parts_still_waiting_when_the_batch_runs_out_of_time_come_back_unclaimed(system):
    runtime = get_runtime()
    for chat in (31, 32):
        system.telegram.add_chat(chat)
    messages = [
        OutboundMessage(f"late:{chat}", "export", chat, "", attachments=(
            Attachment("sendDocument", "one.csv", b"a;b\n", "text/csv"),
            Attachment("sendDocument", "two.csv", b"c;d\n", "text/csv"),
        ))
        for chat in (31, 32)
    ]
    settled: list[tuple[Any, Any]] = []
    with batch_outbox() as outbox:
        for owner, message in enumerate(messages):
            outbox.owner = owner
            assert deliver(runtime, message) is Delivery.DEFERRED
        outbox.flush(runtime, lambda owner, outcome: settled.append((owner, outcome)), time_left=lambda: 0.5)

    assert [(owner, type(outcome)) for owner, outcome in settled] == [(0, OutboxTimeout), (1, OutboxTimeout)]
    statuses = runtime.db.fetch_all("SELECT dedupe_key, status FROM notifications ORDER BY dedupe_key")
    # The first files went; the second ones were never claimed, so the records' redelivery sends them.
    assert statuses == [{"dedupe_key": "late:31#file1", "status": "sent"},
                        {"dedupe_key": "late:32#file1", "status": "sent"}]
    assert deliver(runtime, messages[0]) is Delivery.SENT
    assert [c.params["document"].filename for c in system.telegram.calls if c.params.get("chat_id") == 31] == [
        "one.csv", "two.csv"]


def test_outside_a_batch_a_message_waits_for_its_chat_in_place(system):
    system.telegram.add_chat(33)
    message = OutboundMessage("inline:33", "export", 33, "text", attachments=(
        Attachment("sendDocument", "one.csv", b"a;b\n", "text/csv"),))
    started = system.clock.now()

    assert deliver(get_runtime(), message) is Delivery.SENT

    calls = [c for c in system.telegram.calls if c.params.get("chat_id") == 33]
    assert [c.method for c in calls] == ["sendMessage", "sendDocument"]
    # The worker slept (on the system's virtual clock) until the chat was free for the document.
    assert (system.clock.now() - started).total_seconds() >= 1.0

