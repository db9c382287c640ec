"""The Telegram stand-in, exercised over real HTTP with urllib3 and aiogram 3.

Rate-limit tests drive a hand-advanced clock, so none of them depend on how
fast the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import urllib3
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from expensebot_tools.local.telegram import RecordedCall, TelegramStandIn

TOKEN = "123456:TEST-TOKEN"
ALICE = 1001
BOB = 1002
CAROL = 1003
GROUP = -2001


class FakeClock:
    """A clock that only moves when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    manager = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=10))
    yield manager
    manager.clear()


def make_standin(clock: FakeClock, **options: Any) -> TelegramStandIn:
    standin = TelegramStandIn(clock=clock, **options)
    for chat_id in (ALICE, BOB, CAROL):
        standin.add_chat(chat_id, first_name=f"User{chat_id}", username=f"user{chat_id}")
    standin.add_chat(GROUP, type="group", title="Family budget")
    return standin


@pytest.fixture
def standin(clock: FakeClock) -> Iterator[TelegramStandIn]:
    with make_standin(clock) as server:
        yield server


def call(
    http: urllib3.PoolManager,
    standin: TelegramStandIn,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    token: str = TOKEN,
    encoding: str = "json",
    timeout: float | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST a Bot API call the way a client would and decode the JSON answer."""
    url = f"{standin.base_url}/bot{token}/{method}"
    extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    if encoding == "json":
        response = http.request("POST", url, json=params or {}, **extra)
    elif encoding == "form":
        response = http.request("POST", url, fields=params or {}, encode_multipart=False, **extra)
    elif encoding == "multipart":
        response = http.request("POST", url, fields=params or {}, **extra)
    elif encoding == "query":
        response = http.request("GET", url, fields=params or {}, **extra)
    else:
        raise AssertionError(encoding)
    return response.status, json.loads(response.data)


def send(
    http: urllib3.PoolManager, standin: TelegramStandIn, chat_id: int, text: str = "hi", **params: Any
) -> tuple[int, dict[str, Any]]:
    return call(http, standin, "sendMessage", {"chat_id": chat_id, "text": text, **params})


def assert_error(answer: tuple[int, dict[str, Any]], code: int, description: str) -> None:
    status, body = answer
    assert (status, body) == (code, {"ok": False, "error_code": code, "description": description})


# ---------------------------------------------------------------- basics


def test_get_me_describes_the_bot_with_the_id_taken_from_the_token(http, standin):
    status, body = call(http, standin, "getMe")

    assert status == 200
    assert body["ok"] is True
    me = body["result"]
    assert me["id"] == 123456
    assert me["is_bot"] is True
    assert me["first_name"] == "ExpenseBot"
    assert me["username"] == "expensebot_local_bot"
    assert {"can_join_groups", "can_read_all_group_messages", "supports_inline_queries"} <= me.keys()


def test_send_message_returns_a_message_and_ids_count_up_per_chat(http, standin, clock):
    first = send(http, standin, ALICE, "Расход записан")
    second = send(http, standin, BOB, "hello bob")
    clock.advance(1)
    third = send(http, standin, ALICE, "again")

    assert first[0] == second[0] == third[0] == 200
    message = first[1]["result"]
    assert message["message_id"] == 1
    assert message["date"] == int(clock.now.timestamp()) - 1
    assert message["chat"] == {
        "id": ALICE,
        "type": "private",
        "first_name": "User1001",
        "username": "user1001",
    }
    assert message["from"]["id"] == 123456 and message["from"]["is_bot"] is True
    assert message["text"] == "Расход записан"
    assert second[1]["result"]["message_id"] == 1
    assert third[1]["result"]["message_id"] == 2
    assert [call.params["text"] for call in standin.sent_messages(ALICE)] == ["Расход записан", "again"]


def test_a_group_message_carries_the_group_title(http, standin):
    status, body = send(http, standin, GROUP)

    assert status == 200
    assert body["result"]["chat"] == {"id": GROUP, "type": "group", "title": "Family budget"}


def test_method_names_are_case_insensitive_and_recorded_in_canonical_spelling(http, standin):
    status, _ = call(http, standin, "sendmessage", {"chat_id": ALICE, "text": "x"})

    assert status == 200
    assert standin.calls[-1].method == "sendMessage"


@pytest.mark.parametrize("encoding", ["form", "multipart", "query"])
def test_form_multipart_and_query_string_params_decode_like_json(http, standin, encoding):
    keyboard = {"inline_keyboard": [[{"text": "Отмена", "callback_data": "cancel:42"}]]}
    params = {
        "chat_id": str(ALICE),
        "text": "<b>Итого:</b> 1 500 ₽\nвторая строка",
        "parse_mode": "HTML",
        "reply_markup": json.dumps(keyboard),
        "disable_notification": "true",
        "link_preview_options": json.dumps({"is_disabled": True}),
    }

    status, body = call(http, standin, "sendMessage", params, encoding=encoding)

    assert status == 200, body
    assert body["result"]["text"] == "Итого: 1 500 ₽\nвторая строка"
    assert body["result"]["reply_markup"] == keyboard
    recorded = standin.calls[-1].params
    assert recorded["chat_id"] == ALICE
    assert recorded["disable_notification"] is True
    assert recorded["reply_markup"] == keyboard
    assert recorded["link_preview_options"] == {"is_disabled": True}


def test_a_numeric_chat_id_sent_as_a_json_string_is_treated_as_a_number(http, standin):
    status, body = call(http, standin, "sendMessage", {"chat_id": str(ALICE), "text": "x"})

    assert status == 200
    assert body["result"]["chat"]["id"] == ALICE


# ------------------------------------------------------------ validation


def test_a_message_without_chat_id_is_a_bad_request(http, standin):
    assert_error(call(http, standin, "sendMessage", {"text": "x"}), 400, "Bad Request: chat_id is empty")


@pytest.mark.parametrize("params", [{}, {"text": ""}, {"text": "   "}, {"text": "<b></b>", "parse_mode": "HTML"}])
def test_a_message_without_visible_text_is_a_bad_request(http, standin, params):
    answer = call(http, standin, "sendMessage", {"chat_id": ALICE, **params})

    assert_error(answer, 400, "Bad Request: message text is empty")


def test_a_message_of_4097_characters_is_too_long_but_4096_is_fine(http, standin, clock):
    assert_error(send(http, standin, ALICE, "я" * 4097), 400, "Bad Request: message is too long")
    assert send(http, standin, ALICE, "я" * 4096)[0] == 200


def test_the_length_limit_counts_text_after_html_tags_and_entities_are_removed(http, standin, clock):
    text = "<b>" + "&amp;" * 4000 + "</b><i>" + "x" * 96 + "</i>"

    status, body = send(http, standin, ALICE, text, parse_mode="HTML")

    assert status == 200
    assert body["result"]["text"] == "&" * 4000 + "x" * 96
    clock.advance(1)
    assert_error(send(http, standin, ALICE, text + "y", parse_mode="HTML"), 400, "Bad Request: message is too long")


def test_an_unsupported_parse_mode_is_a_bad_request(http, standin):
    assert_error(send(http, standin, ALICE, "x", parse_mode="XML"), 400, "Bad Request: unsupported parse_mode")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("1 < 2", 'Unescaped "<" at byte offset 2'),
        ("Tom & Jerry", 'Unescaped "&" at byte offset 4'),
        ("2 > 1", 'Unescaped ">" at byte offset 2'),
        ("€ &nbsp;", 'Unescaped "&" at byte offset 4'),
        ('<span class="bold">x</span>', 'Tag "span" must have class "tg-spoiler"'),
        ("<b x", "Unclosed start tag at byte offset 0"),
    ],
)
def test_malformed_html_cannot_be_parsed(http, standin, text, reason):
    answer = send(http, standin, ALICE, text, parse_mode="HTML")

    assert_error(answer, 400, f"Bad Request: can't parse entities: {reason}")


def test_every_tag_telegram_allows_in_html_is_accepted_and_stripped(http, standin):
    text = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>"
        '<del>d</del><span class="tg-spoiler">p</span><tg-spoiler>q</tg-spoiler>'
        '<a href="https://example.com/?a=1&b=2">l</a><code>c</code>'
        '<pre><code class="language-python">x = 1</code></pre><blockquote>z</blockquote>'
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &lt;&gt;&amp;&quot;&#8381;&#x20BD;'
    )

    status, body = send(http, standin, ALICE, text, parse_mode="html")

    assert status == 200, body
    assert body["result"]["text"] == 'bsieunskdpqlcx = 1z👍 <>&"₽₽'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Итого: 1500.00", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("a-b", "Character '-' is reserved and must be escaped with the preceding '\\'"),
        ("*bold", "Can't find end of Bold entity at byte offset 0"),
        ("ok _italic", "Can't find end of Italic entity at byte offset 3"),
        ("[link](https://x.y", "Can't find end of a URL at byte offset 6"),
    ],
)
def test_markdown_v2_rejects_unescaped_reserved_characters_and_unclosed_entities(http, standin, text, reason):
    answer = send(http, standin, ALICE, text, parse_mode="MarkdownV2")

    assert_error(answer, 400, f"Bad Request: can't parse entities: {reason}")


def test_well_formed_markdown_v2_is_accepted_and_returned_as_plain_text(http, standin):
    text = (
        "*Итого:* 1500\\.00 ₽ \\(_за март_\\)\n"
        "__u__ ~s~ ||spoiler|| [сайт](https://example.com/a\\)b) `code \\` tick`\n"
        ">quoted line\n"
        "```python\nprint(1)```"
    )

    status, body = send(http, standin, ALICE, text, parse_mode="MarkdownV2")

    assert status == 200, body
    assert body["result"]["text"] == "Итого: 1500.00 ₽ (за март)\nu s spoiler сайт code ` tick\nquoted line\nprint(1)"


def test_legacy_markdown_only_rejects_unclosed_entities(http, standin, clock):
    status, body = send(http, standin, ALICE, "*Итого:* 1-2. [a](http://x) `c`", parse_mode="Markdown")
    assert (status, body["result"]["text"]) == (200, "Итого: 1-2. a c")

    clock.advance(1)
    answer = send(http, standin, ALICE, "snake_case", parse_mode="Markdown")
    assert_error(
        answer,
        400,
        "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 5",
    )


def test_callback_data_longer_than_64_bytes_is_rejected(http, standin):
    keyboard = {"inline_keyboard": [[{"text": "x", "callback_data": "я" * 33}]]}

    answer = send(http, standin, ALICE, "x", reply_markup=keyboard)

    assert_error(answer, 400, "Bad Request: BUTTON_DATA_INVALID")


def test_a_message_to_an_unknown_chat_is_not_found(http, standin):
    assert_error(send(http, standin, 999), 400, "Bad Request: chat not found")


def test_any_chat_exists_when_accept_any_chat_is_on(http, clock):
    with TelegramStandIn(clock=clock, accept_any_chat=True) as standin:
        private = send(http, standin, 555)
        supergroup = send(http, standin, -1001234567890)

    assert private[0] == supergroup[0] == 200
    assert private[1]["result"]["chat"]["type"] == "private"
    assert supergroup[1]["result"]["chat"]["type"] == "supergroup"


def test_an_unknown_token_is_unauthorized_and_is_never_delivered(http, standin):
    answer = call(http, standin, "sendMessage", {"chat_id": ALICE, "text": "x"}, token="999:WRONG")

    assert_error(answer, 401, "Unauthorized")
    assert standin.sent_messages() == []


def test_an_unknown_method_is_not_found(http, standin):
    assert_error(call(http, standin, "sendTelepathy"), 404, "Not Found")


def test_a_path_outside_bot_token_method_is_not_found(http, standin):
    response = http.request("GET", f"{standin.base_url}/health")

    assert response.status == 404
    assert json.loads(response.data) == {"ok": False, "error_code": 404, "description": "Not Found"}


# ------------------------------------------------------------ blocking


def test_a_blocked_chat_answers_403_until_unblocked(http, standin, clock):
    standin.block(ALICE)
    assert_error(send(http, standin, ALICE), 403, "Forbidden: bot was blocked by the user")

    standin.block(BOB, reason="user is deactivated")
    assert_error(send(http, standin, BOB), 403, "Forbidden: user is deactivated")

    standin.unblock(ALICE)
    assert send(http, standin, ALICE)[0] == 200
    assert [call.params["chat_id"] for call in standin.sent_messages()] == [ALICE]


# --------------------------------------------------------- rate limits


def retry_after(answer: tuple[int, dict[str, Any]]) -> int:
    status, body = answer
    assert status == 429, body
    seconds = body["parameters"]["retry_after"]
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {seconds}",
        "parameters": {"retry_after": seconds},
    }
    return seconds


def test_a_second_message_to_the_same_chat_within_a_second_gets_429_with_retry_after(http, standin, clock):
    assert send(http, standin, ALICE)[0] == 200
    clock.advance(0.4)

    assert retry_after(send(http, standin, ALICE)) == 1
    assert send(http, standin, BOB)[0] == 200
    clock.advance(0.6)
    assert send(http, standin, ALICE)[0] == 200
    assert len(standin.sent_messages(ALICE)) == 2


def test_retry_after_is_the_wait_rounded_up_to_whole_seconds(http, clock):
    with make_standin(clock, per_chat_interval=3) as standin:
        send(http, standin, ALICE)
        clock.advance(0.5)

        assert retry_after(send(http, standin, ALICE)) == 3
        clock.advance(1.6)
        assert retry_after(send(http, standin, ALICE)) == 1


def test_the_global_limit_rejects_the_send_beyond_global_rate_in_one_second(http, clock):
    with make_standin(clock, global_rate=3, per_chat_interval=0) as standin:
        for chat_id in (ALICE, BOB, CAROL):
            assert send(http, standin, chat_id)[0] == 200
            clock.advance(0.1)

        assert retry_after(send(http, standin, ALICE)) == 1
        clock.advance(0.7)  # the first send is now exactly one second old
        assert send(http, standin, ALICE)[0] == 200
        assert retry_after(send(http, standin, BOB)) == 1
        assert len(standin.sent_messages()) == 4


def test_rejected_sends_do_not_consume_the_budget(http, clock):
    with make_standin(clock, global_rate=1, per_chat_interval=0) as standin:
        send(http, standin, ALICE)
        for _ in range(5):
            clock.advance(0.1)
            retry_after(send(http, standin, BOB))
        clock.advance(0.5)

        assert send(http, standin, BOB)[0] == 200


def test_a_group_accepts_20_messages_per_minute_then_gets_429(http, standin, clock):
    for _ in range(20):
        assert send(http, standin, GROUP)[0] == 200
        clock.advance(1)
    clock.advance(-0.5)  # 19.5 s after the first send

    assert retry_after(send(http, standin, GROUP)) == 41
    assert send(http, standin, ALICE)[0] == 200
    clock.advance(40.5)
    assert send(http, standin, GROUP)[0] == 200


def test_paid_broadcast_raises_the_global_limit(http, clock):
    with make_standin(clock, global_rate=2, per_chat_interval=0) as standin:
        send(http, standin, ALICE)
        send(http, standin, BOB)
        assert retry_after(send(http, standin, CAROL)) == 1

        status, _ = send(http, standin, CAROL, allow_paid_broadcast=True)
        assert status == 200
        form = call(
            http,
            standin,
            "sendMessage",
            {"chat_id": str(GROUP), "text": "x", "allow_paid_broadcast": "true"},
            encoding="form",
        )
        assert form[0] == 200


def test_by_default_paid_sends_reach_1000_per_second_and_ordinary_ones_30_then_429(http, clock):
    # The paid broadcast benchmark relies on these defaults: Telegram's 30/s, and 1,000/s with
    # allow_paid_broadcast, each answered 429 with retry_after one send beyond.
    with TelegramStandIn(clock=clock, accept_any_chat=True) as standin:
        ordinary = [send(http, standin, 50_000 + n)[0] for n in range(31)]
        assert ordinary == [200] * 30 + [429]
        clock.advance(1)
        paid = [send(http, standin, 60_000 + n, allow_paid_broadcast=True)[0] for n in range(1001)]
        assert paid == [200] * 1000 + [429]
        assert retry_after(send(http, standin, 70_000, allow_paid_broadcast=True)) == 1
        # The paid burst used up the ordinary budget as well: a send without the flag waits too.
        assert retry_after(send(http, standin, 70_001)) == 1
        clock.advance(1)
        assert send(http, standin, 70_002, allow_paid_broadcast=True)[0] == 200


def test_limits_are_not_enforced_when_switched_off(http, clock):
    with make_standin(clock, enforce_limits=False) as standin:
        answers = [send(http, standin, ALICE)[0] for _ in range(50)]

    assert answers == [200] * 50


def test_the_global_limit_holds_under_concurrent_requests(clock):
    standin = TelegramStandIn(clock=clock, global_rate=10, accept_any_chat=True)
    statuses: list[int] = []
    statuses_lock = threading.Lock()

    def worker(chat_id: int) -> None:
        with urllib3.PoolManager(retries=False) as own:
            status, _ = send(own, standin, chat_id)
        with statuses_lock:
            statuses.append(status)

    with standin:
        threads = [threading.Thread(target=worker, args=(5000 + n,)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(statuses) == [200] * 10 + [429] * 30
    assert len(standin.sent_messages()) == 10


def test_reset_forgets_calls_and_limits_but_keeps_chats_and_blocks(http, standin):
    standin.block(BOB)
    send(http, standin, ALICE)
    standin.reset()

    assert standin.calls == []
    assert send(http, standin, ALICE)[0] == 200
    assert send(http, standin, BOB)[0] == 403


# ----------------------------------------------------- outbox & recording


def test_every_call_is_recorded_in_order_with_the_status_answered(http, standin, clock):
    call(http, standin, "getMe")
    send(http, standin, ALICE, "one")
    send(http, standin, ALICE, "two")

    calls = standin.calls
    assert [(c.method, c.status) for c in calls] == [
        ("getMe", 200),
        ("sendMessage", 200),
        ("sendMessage", 429),
    ]
    assert all(isinstance(c, RecordedCall) and c.token == TOKEN and c.at == clock.now for c in calls)
    assert calls[2].response["error_code"] == 429
    assert [c.params["text"] for c in standin.sent_messages()] == ["one"]


def test_the_outbox_gets_one_json_line_per_call_without_the_token(http, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    clock = FakeClock(datetime(2025, 3, 1, 15, 0, tzinfo=timezone(timedelta(hours=3))))
    with make_standin(clock, outbox_path=outbox) as standin:
        send(http, standin, ALICE, "<b>Итого</b>", parse_mode="HTML")
        send(http, standin, 999, "nobody")
        call(http, standin, "getMe", token="999:WRONG")

    lines = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {
        "at": "2025-03-01T15:00:00+03:00",
        "method": "sendMessage",
        "status": 200,
        "chat_id": ALICE,
        "text": "<b>Итого</b>",
        "parse_mode": "HTML",
    }
    assert lines[1]["status"] == 400 and lines[1]["chat_id"] == 999
    assert lines[2]["status"] == 401
    assert "TEST-TOKEN" not in outbox.read_text(encoding="utf-8")
    assert "WRONG" not in outbox.read_text(encoding="utf-8")


# --------------------------------------------------- failure injection


def test_fail_fraction_one_answers_every_call_with_a_5xx_and_delivers_nothing(http, clock):
    with make_standin(clock, fail_fraction=1.0, seed=7) as standin:
        answers = [send(http, standin, chat_id) for chat_id in (ALICE, BOB, CAROL, GROUP) * 3]

    assert {status for status, _ in answers} <= {500, 502}
    assert {body["description"] for _, body in answers} <= {"Internal Server Error", "Bad Gateway"}
    assert all(body["ok"] is False for _, body in answers)
    assert standin.sent_messages() == []


def test_a_hanging_call_times_the_client_out_but_is_delivered_afterwards(http, clock):
    with make_standin(clock, timeout_fraction=1.0, hang_seconds=0.5) as standin:
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            call(http, standin, "sendMessage", {"chat_id": ALICE, "text": "late"}, timeout=0.1)

        deadline = time.monotonic() + 5
        while not standin.sent_messages() and time.monotonic() < deadline:
            time.sleep(0.02)

        assert [c.params["text"] for c in standin.sent_messages()] == ["late"]


def test_stop_does_not_wait_for_hanging_calls_or_idle_connections(clock):
    standin = make_standin(clock, timeout_fraction=1.0, hang_seconds=60).start()
    idle = urllib3.PoolManager(retries=False)
    background = urllib3.PoolManager(retries=False)
    standin_threads_before = threading.active_count()

    def hang_until_stopped() -> None:
        # The server drops the connection on stop; that is the expected outcome.
        with contextlib.suppress(urllib3.exceptions.HTTPError):
            background.request("POST", f"{standin.base_url}/bot{TOKEN}/getMe", timeout=120)

    hung = threading.Thread(target=hang_until_stopped, daemon=True)
    hung.start()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        # A keep-alive connection stays open in the pool after this.
        idle.request("GET", f"{standin.base_url}/bot{TOKEN}/getMe", timeout=0.05)

    started = time.monotonic()
    standin.stop()

    assert time.monotonic() - started < 5
    hung.join(timeout=5)
    assert not hung.is_alive()
    assert threading.active_count() <= standin_threads_before, [t.name for t in threading.enumerate()]
    idle.clear()
    background.clear()


# -------------------------------------------------------------- webhook


def test_webhook_info_is_empty_before_a_webhook_is_set(http, standin):
    status, body = call(http, standin, "getWebhookInfo")

    assert (status, body) == (
        200,
        {"ok": True, "result": {"url": "", "has_custom_certificate": False, "pending_update_count": 0}},
    )


def test_set_webhook_is_reported_by_get_webhook_info_and_blocks_get_updates(http, standin, clock):
    params = {
        "url": "https://abc.execute-api.eu-central-1.amazonaws.com/webhook",
        "secret_token": "s3cr3t_token-1",
        "allowed_updates": json.dumps(["message", "callback_query"]),
        "drop_pending_updates": "true",
        "max_connections": "10",
    }
    status, body = call(http, standin, "setWebhook", params, encoding="form")
    assert (status, body["result"]) == (200, True)
    assert standin.webhook == {
        "url": params["url"],
        "secret_token": "s3cr3t_token-1",
        "allowed_updates": ["message", "callback_query"],
        "drop_pending_updates": True,
        "max_connections": 10,
    }

    standin.set_webhook_error("Wrong response from the webhook: 502 Bad Gateway")
    info = call(http, standin, "getWebhookInfo")[1]["result"]
    assert info == {
        "url": params["url"],
        "has_custom_certificate": False,
        "pending_update_count": 0,
        "max_connections": 10,
        "allowed_updates": ["message", "callback_query"],
        "last_error_date": int(clock.now.timestamp()),
        "last_error_message": "Wrong response from the webhook: 502 Bad Gateway",
    }
    assert_error(
        call(http, standin, "getUpdates"),
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    )

    standin.set_webhook_error(None)
    assert call(http, standin, "deleteWebhook", {"drop_pending_updates": True})[1]["result"] is True
    assert standin.webhook == {}
    assert call(http, standin, "getWebhookInfo")[1]["result"]["url"] == ""
    assert call(http, standin, "getUpdates") == (200, {"ok": True, "result": []})


@pytest.mark.parametrize("secret", ["has space", "slash/", "x" * 257, "ключ"])
def test_a_webhook_secret_token_with_unallowed_characters_is_rejected(http, standin, secret):
    answer = call(http, standin, "setWebhook", {"url": "https://example.com/hook", "secret_token": secret})

    assert_error(answer, 400, "Bad Request: secret token contains unallowed characters")
    assert standin.webhook == {}


# ------------------------------------------------------- other methods


def test_commands_can_be_set_read_back_and_deleted(http, standin):
    commands = [{"command": "start", "description": "Начать"}, {"command": "report", "description": "Отчёт"}]

    assert call(http, standin, "setMyCommands", {"commands": commands})[1]["result"] is True
    assert call(http, standin, "getMyCommands")[1]["result"] == commands
    assert call(http, standin, "deleteMyCommands")[1]["result"] is True
    assert call(http, standin, "getMyCommands")[1]["result"] == []
    bad = call(http, standin, "setMyCommands", {"commands": [{"command": "Bad-Name", "description": "x"}]})
    assert_error(bad, 400, "Bad Request: BOT_COMMAND_INVALID")


def test_chat_actions_and_callback_answers_succeed_for_known_chats(http, standin):
    assert call(http, standin, "sendChatAction", {"chat_id": ALICE, "action": "typing"})[1]["result"] is True
    assert_error(
        call(http, standin, "sendChatAction", {"chat_id": 999, "action": "typing"}),
        400,
        "Bad Request: chat not found",
    )
    assert call(http, standin, "answerCallbackQuery", {"callback_query_id": "42"})[1]["result"] is True


def test_a_sent_message_can_be_edited_and_deleted(http, standin, clock):
    message_id = send(http, standin, ALICE, "draft")[1]["result"]["message_id"]
    clock.advance(5)

    status, body = call(http, standin, "editMessageText", {"chat_id": ALICE, "message_id": message_id, "text": "final"})
    assert (status, body["result"]["text"], body["result"]["edit_date"]) == (
        200,
        "final",
        int(clock.now.timestamp()),
    )
    same = call(http, standin, "editMessageText", {"chat_id": ALICE, "message_id": message_id, "text": "final"})
    assert same[0] == 400 and same[1]["description"].startswith("Bad Request: message is not modified")
    assert call(http, standin, "deleteMessage", {"chat_id": ALICE, "message_id": message_id})[1]["result"]
    assert_error(
        call(http, standin, "deleteMessage", {"chat_id": ALICE, "message_id": message_id}),
        400,
        "Bad Request: message to delete not found",
    )


# -------------------------------------------------------------- aiogram


def test_aiogram_talks_to_the_stand_in_and_maps_its_errors(clock):
    async def scenario(base_url: str) -> None:
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))
        try:
            me = await bot.get_me()
            assert (me.id, me.username, me.is_bot) == (123456, "expensebot_local_bot", True)

            keyboard = InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="Удалить", callback_data="del:1")]]
            )
            sent = await bot.send_message(
                ALICE, "<b>Итого</b> &lt;1 500 ₽&gt;", parse_mode="HTML", reply_markup=keyboard
            )
            assert (sent.message_id, sent.chat.id, sent.text) == (1, ALICE, "Итого <1 500 ₽>")
            assert sent.reply_markup is not None
            assert sent.reply_markup.model_dump() == keyboard.model_dump()

            with pytest.raises(TelegramRetryAfter) as too_fast:
                await bot.send_message(ALICE, "again")
            assert too_fast.value.retry_after == 1

            with pytest.raises(TelegramForbiddenError):
                await bot.send_message(BOB, "blocked")

            with pytest.raises(TelegramBadRequest, match="can't parse entities"):
                await bot.send_message(CAROL, "1 < 2", parse_mode="HTML")

            assert await bot.set_webhook("https://example.com/hook", secret_token="abc_DEF-1") is True
            info = await bot.get_webhook_info()
            assert info.url == "https://example.com/hook"
        finally:
            await bot.session.close()

    with make_standin(clock) as standin:
        standin.block(BOB)
        asyncio.run(scenario(standin.base_url))

    assert [c.method for c in standin.calls] == [
        "getMe",
        "sendMessage",
        "sendMessage",
        "sendMessage",
        "sendMessage",
        "setWebhook",
        "getWebhookInfo",
    ]
    assert standin.webhook["secret_token"] == "abc_DEF-1"


def test_base_url_is_unavailable_before_start_and_the_outbox_path_may_be_a_string(tmp_path: Path, clock):
    standin = TelegramStandIn(clock=clock, outbox_path=str(tmp_path / "o.jsonl"))
    with pytest.raises(RuntimeError):
        _ = standin.base_url
    with standin:
        assert standin.base_url.startswith("http://127.0.0.1:")
