"""Updates the bot does not handle, a bug hit by one update, and the SnapStart restore hooks, all through
the webhook handler as Lambda calls it."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import pytest

from expensebot_tools.local.updates import Conversation, FakeUser, UpdateFactory
from tests.conftest import MOSCOW
from tests.conftest import run_sql as rows

ANNA = FakeUser(user_id=1001, first_name="Анна")
AT = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)


@pytest.fixture
def updates() -> UpdateFactory:
    return UpdateFactory()


@pytest.mark.parametrize(
    "make",
    [
        lambda u: u.edited_message(ANNA, "300 кофе", AT),
        lambda u: u.channel_post("250 кофе", AT),
        lambda u: u.group_message(ANNA, "250 кофе", AT),
        lambda u: u.group_message(ANNA, "/undo", AT),
    ],
    ids=["edited message", "channel post", "group message", "command in a group"],
)
def test_an_update_the_bot_does_not_handle_is_acknowledged_and_changes_nothing(system, updates, make):
    anna = Conversation(system, ANNA, updates)
    anna.reply("100 хлеб")
    update = make(updates)

    response = system.post_update(update)

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ignored"}
    assert rows("SELECT description FROM expenses") == [("хлеб",)]
    assert rows("SELECT outcome FROM processed_updates WHERE update_id = %s", (update["update_id"],)) == [
        ("ignored",)
    ]
    assert len(system.telegram.sent_messages()) == 1


def test_a_message_in_a_group_does_not_register_its_sender(system, updates):
    system.post_update(updates.group_message(ANNA, "/start", AT))

    assert rows("SELECT count(*) FROM users") == [(0,)]


def test_a_sticker_in_the_private_chat_gets_the_hint(system, updates):
    anna = Conversation(system, ANNA, updates)

    assert anna.post(updates.sticker(ANNA, AT)) == [
        "Не понял. Напишите сумму и описание, например «250 кофе», или /help."
    ]
    assert anna.last_response["statusCode"] == 200


def test_a_bug_hit_by_one_update_answers_200_logs_the_update_and_the_error_and_counts_it(
    system, updates, monkeypatch, capsys
):
    from expensebot.bot.handlers import expenses
    from expensebot.observability import logger, metrics

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug in record_expense")

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    # Lambda sets the namespace's variable before the import; this process may have imported earlier.
    monkeypatch.setattr(metrics, "namespace", "ExpenseBot")
    monkeypatch.setattr(expenses, "record_expense", broken)
    # The logger's handler holds the stream it was created with; point it at this test's capture.
    monkeypatch.setattr(logger.registered_handler, "stream", sys.stdout)
    anna = Conversation(system, ANNA, updates)
    capsys.readouterr()
    update = updates.message(ANNA, "250 кофе", AT)

    assert anna.post(update) == []
    assert anna.last_response["statusCode"] == 200
    assert json.loads(anna.last_response["body"]) == {"status": "failed"}

    output = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (failure,) = [line for line in output if line.get("level") == "ERROR"]
    assert failure["update_id"] == update["update_id"]
    assert "ZeroDivisionError: a bug in record_expense" in failure["exception"]
    (emf,) = [line for line in output if "_aws" in line]
    assert emf["FailedUpdates"] == [1.0]
    assert {"Name": "FailedUpdates", "Unit": "Count"} in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    assert rows("SELECT outcome FROM processed_updates") == [("failed: ZeroDivisionError",)]
    assert rows("SELECT count(*) FROM expenses") == [(0,)]

    # The chat is not blocked behind it: the next update is handled.
    monkeypatch.undo()
    assert anna.reply("300 такси").startswith("Записал 300,00")


# ---------------------------------------------------------------- SnapStart


def _webhook_connections() -> int:
    return rows("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'expensebot'")[0][0]


def test_after_restore_the_next_update_opens_new_connections_in_a_new_event_loop(system, updates):
    from expensebot.bot import webhook

    anna = Conversation(system, ANNA, updates)
    anna.reply("250 кофе")
    before = webhook._get_app()
    assert _webhook_connections() == 1

    webhook.before_snapshot()
    assert _webhook_connections() == 0
    assert before.loop.is_closed()
    webhook.after_restore()

    assert anna.reply("100 хлеб").startswith("Записал 100,00")
    after = webhook._get_app()
    assert after is not before and not after.loop.is_closed()
    assert _webhook_connections() == 1
    assert rows("SELECT count(*) FROM expenses") == [(2,)]


def test_the_webhook_function_registers_its_hooks_with_the_lambda_runtime(system, updates):
    snapshot_restore_py = pytest.importorskip("snapshot_restore_py")
    from expensebot.bot import webhook

    system.template.load_handler("WebhookFunction")  # init, as Lambda runs it before the snapshot
    assert (webhook.before_snapshot, (), {}) in snapshot_restore_py.get_before_snapshot()
    assert (webhook.after_restore, (), {}) in snapshot_restore_py.get_after_restore()

    # What the runtime does around a snapshot, with a connection open.
    anna = Conversation(system, ANNA, updates)
    anna.reply("250 кофе")
    for hook, args, kwargs in snapshot_restore_py.get_before_snapshot():
        hook(*args, **kwargs)
    assert _webhook_connections() == 0
    for hook, args, kwargs in snapshot_restore_py.get_after_restore():
        hook(*args, **kwargs)
    assert anna.reply("100 хлеб").startswith("Записал 100,00")
