"""sendPhoto and sendDocument at the Telegram stand-in: multipart uploads over real HTTP (urllib3, aiogram and
the project's own TelegramClient), Telegram's limits on files and captions, the same blocks, rate limits and
faults as sendMessage, and each file recorded in the outbox and saved beside it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BufferedInputFile

from expensebot.adapters.telegram import InputFile, TelegramClient
from expensebot.errors import TelegramBadRequest, TelegramChatUnavailable, TelegramRetryAfter
from expensebot_tools.local.telegram import TelegramStandIn
from expensebot_tools.local.telegram.uploads import Upload
from tests.images import jpeg_header, png
from tests.integration.test_telegram_standin import (
    ALICE,
    BOB,
    GROUP,
    TOKEN,
    FakeClock,
    assert_error,
    make_standin,
    retry_after,
    send,
)

MB = 1024 * 1024


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    manager = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=30))
    yield manager
    manager.clear()


@pytest.fixture
def standin(clock: FakeClock) -> Iterator[TelegramStandIn]:
    with make_standin(clock) as server:
        yield server


def upload(
    http: urllib3.PoolManager,
    standin: TelegramStandIn,
    method: str,
    field: str,
    file: tuple[str, bytes, str] | str,
    **params: Any,
) -> tuple[int, dict[str, Any]]:
    """A multipart upload as a client sends it: the file as a part with a file name, the rest as fields."""
    fields: dict[str, Any] = {key: str(value) for key, value in params.items()}
    fields[field] = file
    response = http.request("POST", f"{standin.base_url}/bot{TOKEN}/{method}", fields=fields)
    return response.status, json.loads(response.data)


def photo(http: urllib3.PoolManager, standin: TelegramStandIn, chat_id: int, content: bytes,
          **params: Any) -> tuple[int, dict[str, Any]]:
    return upload(http, standin, "sendPhoto", "photo", ("chart.png", content, "image/png"), chat_id=chat_id,
                  **params)


def document(http: urllib3.PoolManager, standin: TelegramStandIn, chat_id: int, content: bytes,
             name: str = "report.pdf", mime: str = "application/pdf", **params: Any) -> tuple[int, dict[str, Any]]:
    return upload(http, standin, "sendDocument", "document", (name, content, mime), chat_id=chat_id, **params)


# ---------------------------------------------------------------- answers


def test_a_photo_is_answered_with_its_sizes_and_caption_and_saved_beside_the_outbox(http, tmp_path, clock):
    outbox = tmp_path / "outbox.jsonl"
    chart = png(1200, 800)
    with make_standin(clock, outbox_path=outbox) as standin:
        status, body = photo(http, standin, ALICE, chart, caption="<b>Март</b>: 12 300 ₽", parse_mode="HTML")

    assert status == 200, body
    message = body["result"]
    assert (message["message_id"], message["chat"]["id"], message["caption"]) == (1, ALICE, "Март: 12 300 ₽")
    assert "text" not in message
    sizes = message["photo"]
    # Thumbnails smallest first, then the photo itself at its own sides.
    assert [(s["width"], s["height"]) for s in sizes] == [(90, 60), (320, 213), (800, 533), (1200, 800)]
    assert sizes[-1]["file_size"] == len(chart)
    assert all({"file_id", "file_unique_id", "file_size", "width", "height"} == s.keys() for s in sizes)
    assert len({s["file_id"] for s in sizes}) == len(sizes)

    saved = outbox.with_name("outbox.jsonl.files") / str(ALICE) / "1-chart.png"
    assert saved.read_bytes() == chart
    recorded = standin.sent_files(ALICE)
    assert [(c.method, c.file_path) for c in recorded] == [("sendPhoto", saved)]
    assert recorded[0].params["photo"] == Upload("chart.png", chart, "image/png")
    line = json.loads(outbox.read_text(encoding="utf-8"))
    assert line["method"] == "sendPhoto" and line["status"] == 200
    assert line["photo"] == {"file_name": "chart.png", "mime_type": "image/png", "file_size": len(chart),
                             "path": str(saved)}


def test_a_document_keeps_its_name_type_and_bytes_and_a_missing_type_comes_from_the_name(http, tmp_path, clock):
    outbox = tmp_path / "outbox.jsonl"
    csv = "\ufeffДата;Сумма\n2026-03-01;450,00\n".encode()
    with make_standin(clock, outbox_path=outbox) as standin:
        first = document(http, standin, ALICE, b"%PDF-1.7 report", name="Отчёт март 2026.pdf")
        clock.advance(1)
        second = document(http, standin, ALICE, csv, name="../расходы.csv", mime="application/octet-stream")

    assert first[0] == 200 and second[0] == 200
    sent = first[1]["result"]["document"]
    assert sent["file_name"] == "Отчёт март 2026.pdf"
    assert sent["mime_type"] == "application/pdf"
    assert sent["file_size"] == len(b"%PDF-1.7 report")
    assert {"file_id", "file_unique_id"} <= sent.keys()
    assert second[1]["result"]["document"]["mime_type"] == "text/csv"
    files = outbox.with_name("outbox.jsonl.files") / str(ALICE)
    # A name with a path in it is saved under its last part, inside the files folder.
    assert sorted(p.name for p in files.iterdir()) == ["1-Отчёт март 2026.pdf", "2-расходы.csv"]
    assert (files / "2-расходы.csv").read_bytes() == csv


def test_a_file_sent_before_can_be_sent_again_by_its_file_id(http, standin):
    _, body = document(http, standin, ALICE, b"%PDF-1.7")
    file_id = body["result"]["document"]["file_id"]

    again = call_json(http, standin, "sendDocument", {"chat_id": BOB, "document": file_id})

    assert again[0] == 200
    assert again[1]["result"]["document"]["file_unique_id"] == body["result"]["document"]["file_unique_id"]
    assert_error(call_json(http, standin, "sendDocument", {"chat_id": BOB, "document": "nope"}), 400,
                 "Bad Request: wrong file identifier/HTTP URL specified")


def call_json(http: urllib3.PoolManager, standin: TelegramStandIn, method: str,
              params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = http.request("POST", f"{standin.base_url}/bot{TOKEN}/{method}", json=params)
    return response.status, json.loads(response.data)


# ----------------------------------------------------------------- limits


# Contents are built in the test, not at collection, so that collecting the suite stays fast.
@pytest.mark.parametrize(
    ("content", "description"),
    [
        (lambda: png(9000, 1001), "Bad Request: PHOTO_INVALID_DIMENSIONS"),  # width + height over 10000
        (lambda: png(2100, 100), "Bad Request: PHOTO_INVALID_DIMENSIONS"),  # 21 : 1
        (lambda: png(100, 2001), "Bad Request: PHOTO_INVALID_DIMENSIONS"),  # a little over 20 : 1, standing
        (lambda: png(1, 1) + b"\0" * (10 * MB), "Bad Request: PHOTO_SAVE_FILE_INVALID"),  # over 10 MB
        (lambda: b"%PDF-1.7 not a picture", "Bad Request: IMAGE_PROCESS_FAILED"),
        (lambda: b"", "Bad Request: file must be non-empty"),
    ],
    ids=["sides-sum", "ratio-wide", "ratio-tall", "over-10-MB", "not-an-image", "empty"],
)
def test_a_photo_beyond_telegrams_limits_is_refused_and_nothing_is_saved(
    http, standin, content: Callable[[], bytes], description
):
    assert_error(photo(http, standin, ALICE, content()), 400, description)
    assert standin.sent_files() == []


@pytest.mark.parametrize(
    "content",
    [
        lambda: png(5000, 5000),
        lambda: png(2000, 100),
        lambda: png(1, 1) + b"\0" * (10 * MB - len(png(1, 1))),
        lambda: jpeg_header(1280, 960),
    ],
    ids=["sides-sum-10000", "ratio-20", "exactly-10-MB", "jpeg"],
)
def test_a_photo_at_telegrams_limits_goes_out(http, standin, content: Callable[[], bytes]):
    status, body = photo(http, standin, ALICE, content())

    assert status == 200, body
    assert [c.method for c in standin.sent_files(ALICE)] == ["sendPhoto"]


def test_a_document_over_50_MB_is_too_large_and_50_MB_goes_out(http, standin, clock):
    assert_error(document(http, standin, ALICE, b"\0" * (50 * MB + 1)), 413, "Request Entity Too Large")
    clock.advance(1)
    status, body = document(http, standin, ALICE, b"\0" * (50 * MB))
    assert status == 200 and body["result"]["document"]["file_size"] == 50 * MB


def test_a_caption_is_limited_to_1024_characters_after_entity_parsing(http, standin, clock):
    assert_error(document(http, standin, ALICE, b"x", caption="я" * 1025), 400,
                 "Bad Request: message caption is too long")
    assert document(http, standin, ALICE, b"x", caption="<b>" + "я" * 1024 + "</b>", parse_mode="HTML")[0] == 200
    assert_error(document(http, standin, BOB, b"x", caption="1 < 2", parse_mode="HTML"), 400,
                 "Bad Request: can't parse entities: Unescaped \"<\" at byte offset 2")


def test_a_request_without_its_file_says_so(http, standin):
    assert_error(call_json(http, standin, "sendPhoto", {"chat_id": ALICE}), 400,
                 "Bad Request: there is no photo in the request")
    assert_error(call_json(http, standin, "sendDocument", {"chat_id": ALICE}), 400,
                 "Bad Request: there is no document in the request")


# ---------------------------------------------- blocks, rate limits, faults


def test_files_share_the_chats_rate_limit_and_blocks_with_messages(http, standin, clock):
    assert send(http, standin, ALICE)[0] == 200
    clock.advance(0.5)
    assert retry_after(photo(http, standin, ALICE, png(10, 10))) == 1
    assert retry_after(document(http, standin, ALICE, b"x")) == 1
    clock.advance(0.5)
    assert document(http, standin, ALICE, b"x")[0] == 200
    assert [c.method for c in standin.sent_files(ALICE)] == ["sendDocument"]

    standin.block(BOB)
    assert_error(photo(http, standin, BOB, png(10, 10)), 403, "Forbidden: bot was blocked by the user")
    assert_error(document(http, standin, 999, b"x"), 400, "Bad Request: chat not found")


def test_an_injected_flood_limit_and_failures_apply_to_files(http, clock):
    with make_standin(clock, enforce_limits=False) as standin:
        standin.set_failures(too_many_requests=1, retry_after=7)
        assert retry_after(document(http, standin, ALICE, b"x")) == 7
        assert document(http, standin, ALICE, b"x")[0] == 200

        standin.set_failures(fail_fraction=1.0)
        status, _ = photo(http, standin, GROUP, png(10, 10))
        assert status in {500, 502}
    assert len(standin.sent_files()) == 1


# ------------------------------------------------------------------ clients


def test_the_projects_client_uploads_photos_and_documents_with_caption_and_paid_broadcast(clock, tmp_path):
    with make_standin(clock, files_dir=tmp_path / "files") as standin:
        client = TelegramClient(standin.base_url, lambda: TOKEN)
        chart = png(640, 480)
        sent = client.send_photo(ALICE, InputFile("март.png", chart, "image/png"), caption="Итого 12 300 ₽",
                                 allow_paid_broadcast=True)
        clock.advance(1)
        pdf = client.send_document(ALICE, InputFile("Отчёт.pdf", b"%PDF-1.7", "application/pdf"))
        clock.advance(1)
        standin.block(BOB)
        with pytest.raises(TelegramChatUnavailable):
            client.send_document(BOB, InputFile("a.csv", b"x", "text/csv"))
        with pytest.raises(TelegramBadRequest, match="too long"):
            client.send_document(ALICE, InputFile("a.csv", b"x", "text/csv"), caption="я" * 1025)
        with pytest.raises(TelegramBadRequest) as too_large:
            client.send_document(ALICE, InputFile("big.bin", b"\0" * (50 * MB + 1), "application/octet-stream"))
        client.send_document(ALICE, InputFile("a.csv", b"x", "text/csv"))
        with pytest.raises(TelegramRetryAfter):
            client.send_document(ALICE, InputFile("a.csv", b"x", "text/csv"))

    assert sent["caption"] == "Итого 12 300 ₽" and sent["photo"][-1]["width"] == 640
    assert pdf["document"]["file_name"] == "Отчёт.pdf" and "caption" not in pdf
    assert too_large.value.error_code == 413
    photo_call = standin.sent_files(ALICE)[0]
    assert photo_call.params["allow_paid_broadcast"] is True
    assert photo_call.params["chat_id"] == ALICE
    assert photo_call.file_path == tmp_path / "files" / str(ALICE) / "1-март.png"
    assert Path(photo_call.file_path).read_bytes() == chart


def test_aiogram_sends_a_document_and_a_photo_to_the_stand_in(clock):
    async def scenario(base_url: str) -> tuple[Any, Any]:
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))
        try:
            sent = await bot.send_document(ALICE, BufferedInputFile(b"a;b\n", filename="export.csv"),
                                           caption="Экспорт")
            shown = await bot.send_photo(BOB, BufferedInputFile(png(300, 200), filename="chart.png"))
            return sent, shown
        finally:
            await bot.session.close()

    with make_standin(clock) as standin:
        sent, shown = asyncio.run(scenario(standin.base_url))

    assert sent.document is not None
    assert (sent.document.file_name, sent.document.file_size, sent.caption) == ("export.csv", 4, "Экспорт")
    assert shown.photo is not None and (shown.photo[-1].width, shown.photo[-1].height) == (300, 200)
    assert [c.method for c in standin.sent_files()] == ["sendDocument", "sendPhoto"]


def test_a_stand_in_without_an_outbox_keeps_the_bytes_in_the_record_only(http, clock):
    with make_standin(clock) as standin:
        document(http, standin, ALICE, b"%PDF-1.7")
    (recorded,) = standin.sent_files()
    assert recorded.file_path is None
    assert recorded.params["document"].content == b"%PDF-1.7"

