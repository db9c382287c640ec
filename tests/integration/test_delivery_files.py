"""Files through the delivery path: a message's text and then each attachment, every one a claimed, paced part of
its own, against PostgreSQL and the Telegram stand-in over HTTP. A report's photo and document reach the user once
whatever is delivered twice, a 429 holds back only what did not go, and a chat that is gone drops the rest."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import psycopg2
import pytest

from expensebot.bootstrap import get_runtime
from expensebot.delivery import MAX_CAPTION_LENGTH, Attachment, Delivery, OutboundMessage, deliver
from expensebot.pacing import HeldBack
from expensebot_tools.local.telegram.errors import ApiError
from tests.images import png

CHART = png(800, 500)
PDF = b"%PDF-1.7\n% a month's report\n"


def _user(user_id: int) -> None:
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (%s, %s, now(), now())",
            (user_id, user_id),
        )
    conn.close()


def _report(chat_id: int, key: str = "monthly_report:2026-02") -> OutboundMessage:
    return OutboundMessage(
        dedupe_key=f"{key}:{chat_id}",
        kind="monthly_report",
        chat_id=chat_id,
        user_id=chat_id,
        text="Отчёт за февраль 2026",
        attachments=(
            Attachment("sendPhoto", "февраль-2026.png", CHART, "image/png", caption="Расходы: 12 300,00 ₽"),
            Attachment("sendDocument", "Отчёт февраль 2026.pdf", PDF, "application/pdf"),
        ),
    )


def _sent(system: Any, chat_id: int) -> list[tuple[str, str]]:
    """What the user got, in order: (method, the text or the file's name)."""
    shown = {"sendMessage": lambda p: p["text"], "sendPhoto": lambda p: p["photo"].filename,
             "sendDocument": lambda p: p["document"].filename}
    return [
        (c.method, shown[c.method](c.params))
        for c in system.telegram.calls
        if c.status == 200 and c.method in shown and c.params["chat_id"] == chat_id
    ]


def _statuses(key: str) -> dict[str, str]:
    rows = get_runtime().db.fetch_all(
        "SELECT dedupe_key, status FROM notifications WHERE dedupe_key LIKE %s ORDER BY dedupe_key", (f"{key}%",)
    )
    return {row["dedupe_key"]: row["status"] for row in rows}


def test_a_report_with_a_photo_and_a_document_reaches_the_user_once_when_delivered_twice(system):
    runtime = get_runtime()
    _user(21)
    system.telegram.add_chat(21)
    report = _report(21)

    first = deliver(runtime, report)
    again = deliver(runtime, report)

    assert (first, again) == (Delivery.SENT, Delivery.ALREADY_SENT)
    assert _sent(system, 21) == [
        ("sendMessage", "Отчёт за февраль 2026"),
        ("sendPhoto", "февраль-2026.png"),
        ("sendDocument", "Отчёт февраль 2026.pdf"),
    ]
    photo, document = system.telegram.sent_files(21)
    assert photo.params["photo"].content == CHART
    assert photo.response["result"]["caption"] == "Расходы: 12 300,00 ₽"
    assert document.params["document"].content == PDF
    key = report.dedupe_key
    assert _statuses(key) == {key: "sent", f"{key}#file1": "sent", f"{key}#file2": "sent"}


def test_a_message_of_files_alone_sends_no_text(system):
    _user(22)
    system.telegram.add_chat(22)
    export = OutboundMessage("export:22:2026-02", "export", 22, "", 22, attachments=(
        Attachment("sendDocument", "expenses.csv", b"\xef\xbb\xbfdate;amount\n", "text/csv"),
    ))

    assert deliver(get_runtime(), export) is Delivery.SENT
    assert _sent(system, 22) == [("sendDocument", "expenses.csv")]


def test_a_429_on_the_document_holds_back_only_the_document(system):
    runtime = get_runtime()
    _user(23)
    system.telegram.add_chat(23)
    original = system.telegram.handlers["sendDocument"]
    refusals = []

    def flood_once(token: str, params: dict[str, Any], now: Any) -> Any:
        if not refusals:
            refusals.append(now)
            raise ApiError(429, "Too Many Requests: retry after 5", retry_after=5)
        return original(token, params, now)

    system.telegram.handlers["sendDocument"] = flood_once
    report = _report(23)

    with pytest.raises(HeldBack) as held:
        deliver(runtime, report)
    assert held.value.seconds >= 5
    key = report.dedupe_key
    assert _statuses(key) == {key: "sent", f"{key}#file1": "sent", f"{key}#file2": "held"}
    # Every worker waits out the 429: a redelivery before then is held back again and sends nothing.
    with pytest.raises(HeldBack):
        deliver(runtime, report)

    system.clock.advance(timedelta(seconds=6))
    assert deliver(runtime, report) is Delivery.SENT

    assert _sent(system, 23) == [
        ("sendMessage", "Отчёт за февраль 2026"),
        ("sendPhoto", "февраль-2026.png"),
        ("sendDocument", "Отчёт февраль 2026.pdf"),
    ]
    assert _statuses(key)[f"{key}#file2"] == "sent"


def test_a_user_who_blocked_the_bot_gets_nothing_and_is_deactivated(system):
    runtime = get_runtime()
    _user(24)
    system.telegram.add_chat(24)
    system.telegram.block(24)
    report = _report(24)

    assert deliver(runtime, report) is Delivery.DROPPED
    assert deliver(runtime, report) is Delivery.ALREADY_SENT

    assert _sent(system, 24) == []
    # Telegram was asked once: the files after the dropped text are not tried, now or on the redelivery.
    assert [c.method for c in system.telegram.calls if c.params.get("chat_id") == 24] == ["sendMessage"]
    rows = runtime.db.fetch_all("SELECT is_active FROM users WHERE user_id = 24")
    assert rows == [{"is_active": False}]


def test_a_user_who_blocks_the_bot_between_the_photo_and_the_document_loses_only_the_document(system):
    runtime = get_runtime()
    _user(25)
    system.telegram.add_chat(25)
    original = system.telegram.handlers["sendPhoto"]

    def then_block(token: str, params: dict[str, Any], now: Any) -> Any:
        answer = original(token, params, now)
        system.telegram.block(25)
        return answer

    system.telegram.handlers["sendPhoto"] = then_block
    report = _report(25)

    assert deliver(runtime, report) is Delivery.DROPPED
    key = report.dedupe_key
    assert _statuses(key) == {key: "sent", f"{key}#file1": "sent", f"{key}#file2": "dropped"}
    assert [m for m, _ in _sent(system, 25)] == ["sendMessage", "sendPhoto"]


def test_a_caption_over_telegrams_limit_is_refused_where_the_message_is_built():
    with pytest.raises(ValueError, match="1024"):
        Attachment("sendPhoto", "chart.png", CHART, "image/png", caption="я" * (MAX_CAPTION_LENGTH + 1))
