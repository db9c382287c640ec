"""`expensebot webhook set | info | delete` as an operator runs them, against the Telegram stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expensebot_tools.local.stack import LOCAL_BOT_TOKEN

EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))
URL = "https://abc123.execute-api.eu-central-1.amazonaws.com/webhook"
SECRET = "Webhook-Secret_42"


@pytest.fixture
def run(telegram):
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {
            **os.environ, "TELEGRAM_API_BASE": telegram.base_url, "TELEGRAM_BOT_TOKEN": LOCAL_BOT_TOKEN,
            "WEBHOOK_SECRET": SECRET, "COLUMNS": "120", **env,
        }
        return subprocess.run([EXPENSEBOT, "webhook", *args], capture_output=True, text=True, timeout=60,
                              env=environment)

    return run


def test_set_registers_the_url_with_the_secret_token_and_only_the_update_types_the_bot_handles(run, telegram):
    result = run("set", "--url", URL)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"webhook set: {URL} (updates: message; secret token sent)"
    assert telegram.webhook == {
        "url": URL, "secret_token": SECRET, "allowed_updates": ["message"], "max_connections": 40,
    }


def test_info_shows_the_url_pending_updates_and_the_last_error(run, telegram):
    run("set", "--url", URL, "--max-connections", "10")
    telegram.set_webhook_error("Wrong response from the webhook: 503 Service Unavailable")

    result = run("info")

    assert result.returncode == 0, result.stderr
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines() if "│" in line]
    shown = dict(cells)
    assert shown["url"] == URL
    assert shown["pending updates"] == "0"
    assert shown["last error"].endswith(": Wrong response from the webhook: 503 Service Unavailable")
    assert (shown["allowed updates"], shown["max connections"]) == ("message", "10")


def test_info_json_is_telegrams_answer(run, telegram):
    run("set", "--url", URL)

    result = run("info", "--json")

    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["url"] == URL and info["pending_update_count"] == 0 and info["allowed_updates"] == ["message"]
    assert "last_error_message" not in info


def test_delete_removes_the_webhook(run, telegram):
    run("set", "--url", URL)

    result = run("delete", "--drop-pending-updates")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "webhook deleted, pending updates dropped"
    assert telegram.webhook == {}
    assert "(no webhook" in run("info").stdout


def test_a_secret_telegram_would_refuse_is_reported_before_anything_is_registered(run, telegram):
    result = run("set", "--url", URL, WEBHOOK_SECRET="has spaces and ümlauts")

    assert result.returncode != 0
    assert "A-Z, a-z, 0-9, _ and -" in result.stderr
    assert telegram.webhook == {}


def test_a_wrong_bot_token_is_one_line_saying_what_telegram_answered(run, telegram):
    result = run("info", TELEGRAM_BOT_TOKEN="999:WRONG")

    assert result.returncode == 2  # a configuration error (the token), as in every command
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "401" in result.stderr or "404" in result.stderr


def test_the_update_types_registered_are_exactly_those_the_bots_routers_handle():
    from expensebot.bot import HANDLED_UPDATE_TYPES
    from expensebot.bot.webhook import _dispatcher

    assert sorted(HANDLED_UPDATE_TYPES) == sorted(_dispatcher().resolve_used_update_types())
