"""The webhook as Telegram and API Gateway drive it: the secret token, redeliveries, bad bodies, and a
database that is down. Each test checks both the HTTP answer and what was (not) stored. The commands are in
test_bot_commands.py, invalid values in test_bot_invalid_input.py, unhandled updates, a bug hit by one
update and the SnapStart hooks in test_bot_updates.py."""

from __future__ import annotations

import json
import os
from datetime import datetime

import psycopg2
import pytest

from expensebot_tools.local.events import api_gateway_event
from expensebot_tools.local.updates import FakeUser, UpdateFactory
from tests.conftest import MOSCOW
from tests.conftest import sql_value as _count

ANNA = FakeUser(user_id=1001, first_name="Анна")
AT = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)


@pytest.fixture
def updates():
    return UpdateFactory()


@pytest.fixture(autouse=True)
def _no_metrics_left_behind():
    """With metrics disabled (tests), Powertools keeps what was added: a later test counting FailedUpdates
    must not see this module's."""
    yield
    from expensebot.observability import metrics

    metrics.clear_metrics()


def test_a_request_without_the_secret_token_is_refused_and_stores_nothing(system, updates):
    system.telegram.add_chat(ANNA.user_id)
    response = system.post_update(updates.message(ANNA, "250 кофе", AT), secret="")
    assert response["statusCode"] == 401
    assert _count("SELECT count(*) FROM expenses") == 0
    assert system.telegram.sent_messages() == []


def test_a_request_with_a_wrong_secret_token_is_refused(system, updates):
    response = system.post_update(updates.message(ANNA, "250 кофе", AT), secret="local-webhook-secreT")
    assert response["statusCode"] == 401
    assert _count("SELECT count(*) FROM processed_updates") == 0


def test_an_expense_is_stored_with_its_category_and_confirmed(system, updates):
    system.telegram.add_chat(ANNA.user_id)
    response = system.post_update(updates.message(ANNA, "250,50 такси", AT))
    assert response["statusCode"] == 200
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT amount::text, category, description, spent_at FROM expenses")
        assert cur.fetchall() == [("250.50", "transport", "такси", AT)]
    conn.close()
    (reply,) = system.telegram.sent_messages(ANNA.user_id)
    assert "250,50" in reply.params["text"] and "транспорт" in reply.params["text"]


def test_a_redelivered_update_stores_the_expense_once_and_replies_once(system, updates):
    system.telegram.add_chat(ANNA.user_id)
    update = updates.message(ANNA, "250 кофе", AT)
    first = system.post_update(update)
    second = system.post_update(update)
    assert (first["statusCode"], second["statusCode"]) == (200, 200)
    assert json.loads(second["body"])["status"] == "duplicate"
    assert _count("SELECT count(*) FROM expenses") == 1
    assert len(system.telegram.sent_messages(ANNA.user_id)) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("not json at all", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"update_id": "x"}', "update_id must be a whole number"),
        ('{"update_id": 7, "message": {"text": "no chat, no date"}}', "not a Telegram update: message."),
    ],
)
def test_a_body_that_is_not_a_telegram_update_gets_400_with_the_reason(system, body, fragment):
    handler = system.template.load_handler("WebhookFunction")
    from expensebot_tools.local.events import LocalLambdaContext

    response = handler(api_gateway_event(body, secret="local-webhook-secret"), LocalLambdaContext())
    assert response["statusCode"] == 400
    assert fragment in json.loads(response["body"])["error"]


def test_a_base64_encoded_body_is_decoded(system, updates):
    from expensebot_tools.local.events import LocalLambdaContext

    system.telegram.add_chat(ANNA.user_id)
    handler = system.template.load_handler("WebhookFunction")
    event = api_gateway_event(updates.message(ANNA, "100 хлеб", AT), secret="local-webhook-secret", base64_body=True)
    assert handler(event, LocalLambdaContext())["statusCode"] == 200
    assert _count("SELECT count(*) FROM expenses WHERE category = 'groceries'") == 1


def test_the_database_down_answers_503_so_telegram_retries_and_the_retry_is_processed_once(system, updates):
    from expensebot.bootstrap import build_runtime, get_runtime, set_runtime
    from expensebot_tools.local.stack import environment

    system.telegram.add_chat(ANNA.user_id)
    update = updates.message(ANNA, "250 кофе", AT)
    working = get_runtime()
    with environment({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}):
        set_runtime(build_runtime(clock=system.clock))
        assert system.post_update(update)["statusCode"] == 503

    set_runtime(build_runtime(clock=system.clock))
    assert get_runtime().settings.database_url == working.settings.database_url
    assert system.post_update(update)["statusCode"] == 200
    assert system.post_update(update)["statusCode"] == 200
    assert _count("SELECT count(*) FROM expenses") == 1


def test_without_webhook_secret_the_secret_named_in_the_environment_is_the_one_required(system, updates):
    import boto3
    from aws_lambda_powertools.utilities.parameters.secrets import DEFAULT_PROVIDERS

    from expensebot.bootstrap import build_runtime, set_runtime
    from expensebot_tools.local.stack import environment

    DEFAULT_PROVIDERS.clear()  # Powertools caches its provider (and values) per process
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="expensebot/webhook-secret", SecretString="From-Secrets_Manager-42"
    )
    system.telegram.add_chat(ANNA.user_id)
    try:
        with environment({"WEBHOOK_SECRET": "", "WEBHOOK_SECRET_NAME": "expensebot/webhook-secret"}):
            set_runtime(build_runtime(clock=system.clock))
            refused = system.post_update(updates.message(ANNA, "250 кофе", AT), secret="local-webhook-secret")
            taken = system.post_update(updates.message(ANNA, "300 такси", AT), secret="From-Secrets_Manager-42")
    finally:
        DEFAULT_PROVIDERS.clear()
    assert (refused["statusCode"], taken["statusCode"]) == (401, 200)
    assert _count("SELECT count(*) FROM expenses WHERE description = 'такси'") == 1
    assert _count("SELECT count(*) FROM expenses") == 1


# ---------------------------------------------------------------- what Telegram never sends (issue 13: 2, 7)


def _answer(system, body: str, *, base64_body: bool = False) -> dict:
    """The webhook's answer as API Gateway would give it: an exception escaping the handler is its 500."""
    from expensebot_tools.local.events import LocalLambdaContext

    handler = system.template.load_handler("WebhookFunction")
    event = api_gateway_event(body, secret="local-webhook-secret", base64_body=base64_body)
    try:
        return handler(event, LocalLambdaContext())
    except Exception as exc:
        return {"statusCode": 500, "body": json.dumps({"message": "Internal Server Error", "raised": repr(exc)})}


def _stored_rows() -> int:
    from tests.conftest import APPLICATION_TABLES

    return sum(_count(f"SELECT count(*) FROM {table}") for table in APPLICATION_TABLES)


def _with(update: dict, path: str, value: object) -> str:
    """The update as JSON with one field (a dotted path) set to a value json.dumps writes as is."""
    target = update
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    target[last] = value
    return json.dumps(update, ensure_ascii=False)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("update_id", 2**63, "update_id"),
        ("update_id", -1, "update_id"),
        ("update_id", True, "update_id"),
        ("update_id", 7.0, "update_id"),
        ("message.date", 25_000_000_000, "message.date"),
        ("message.date", 1_773_000_000.5, "message.date"),
        ("message.date", "2026-03-10T09:00:00", "message.date"),
        ("message.date", -5, "message.date"),
        ("message.message_id", 3.0, "message.message_id"),
        ("message.from.id", True, "message.from.id"),
        ("message.chat.id", 2**64, "message.chat.id"),
        ("message.text", "250 кофе\x00", "message.text"),
        ("message.from.first_name", "\ud800", "message.from.first_name"),
    ],
    ids=["update_id 2**63", "negative update_id", "update_id true", "update_id 7.0", "date in milliseconds",
         "fractional date", "ISO date", "negative date", "float message_id", "user id true", "chat id 2**64",
         "NUL in text", "lone surrogate"],
)
def test_a_value_telegram_never_sends_gets_400_naming_the_field_and_stores_nothing(system, updates, path, value,
                                                                                   field):
    system.telegram.add_chat(ANNA.user_id)
    response = _answer(system, _with(updates.message(ANNA, "250 кофе", AT), path, value))

    assert response["statusCode"] == 400, response
    assert json.loads(response["body"])["error"].startswith(field)
    assert _stored_rows() == 0
    assert system.telegram.sent_messages() == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[" * 100_000, "nests deeper than 32 levels"),
        ('{"update_id": 1, "x": ' + "[" * 40 + "]" * 40 + "}", "nests deeper than 32 levels"),
        ('{"update_id": NaN}', "NaN is not a number"),
        ('{"update_id": 1, "message": {"x": 1e400}}', "out of range"),
        ('{"update_id": ' + "9" * 5000 + "}", "too many digits"),
    ],
    ids=["100,000 brackets", "40 levels", "NaN", "1e400", "5,000 digits"],
)
def test_a_body_json_takes_but_telegram_never_sends_gets_400_not_a_crash(system, body, fragment):
    response = _answer(system, body)

    assert response["statusCode"] == 400, response
    assert fragment in json.loads(response["body"])["error"]
    assert _stored_rows() == 0


def test_a_body_over_a_mebibyte_gets_413_before_it_is_parsed(system):
    response = _answer(system, '{"update_id": 1, "pad": "' + "x" * (1024 * 1024) + '"}')

    assert response["statusCode"] == 413
    assert "at most 1048576" in json.loads(response["body"])["error"]
    assert _stored_rows() == 0


def test_a_base64_body_that_is_not_base64_gets_400(system):
    from expensebot_tools.local.events import LocalLambdaContext

    handler = system.template.load_handler("WebhookFunction")
    event = api_gateway_event("{}", secret="local-webhook-secret")
    event.update(body="!!! not base64 !!!", isBase64Encoded=True)
    response = handler(event, LocalLambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == "body is not valid base64"


def test_a_poison_update_whose_failure_cannot_be_recorded_still_answers_200(system, updates, monkeypatch):
    # The bug fails the update; recording `failed` then fails too, and not because the database is down
    # (here a constraint refuses it). The answer must still be 200: a 500 would hold the chat for a day.
    from expensebot.bot.handlers import expenses
    from tests.conftest import run_sql

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug in record_expense")

    monkeypatch.setattr(expenses, "record_expense", broken)
    system.telegram.add_chat(ANNA.user_id)
    run_sql("ALTER TABLE processed_updates ADD CONSTRAINT test_refuses_failed CHECK (outcome NOT LIKE 'failed%')")
    try:
        response = system.post_update(updates.message(ANNA, "250 кофе", AT))
    finally:
        run_sql("ALTER TABLE processed_updates DROP CONSTRAINT test_refuses_failed")

    assert (response["statusCode"], json.loads(response["body"])) == (200, {"status": "failed"})
    assert _count("SELECT count(*) FROM expenses") == 0
    assert _count("SELECT count(*) FROM processed_updates") == 0


# ---------------------------------------------------------------- /command@botname (issue 13: 3)


def test_a_command_to_the_bot_by_name_while_telegram_fails_is_retried_not_lost(system, updates):
    # A new execution environment does not know the bot's username; aiogram asks Telegram (getMe) the first
    # time a command names a bot. Telegram failing then must leave the update to Telegram's retry.
    from expensebot_tools.local.updates import Conversation

    anna = Conversation(system, ANNA, updates)
    anna.reply("250 кофе")
    undo = updates.message(ANNA, "/undo@expensebot_local_bot", AT)
    system.telegram.set_failures(fail_fraction=1.0)
    try:
        refused = system.post_update(undo)
    finally:
        system.telegram.set_failures(fail_fraction=0.0)

    assert refused["statusCode"] == 503
    assert _count("SELECT count(*) FROM processed_updates WHERE update_id = %s", (undo["update_id"],)) == 0
    assert _count("SELECT count(*) FROM expenses") == 1

    assert anna.post(undo)[0].startswith("Удалил расход")
    assert anna.last_response["statusCode"] == 200
    assert _count("SELECT count(*) FROM expenses") == 0


def test_the_bot_asks_telegram_who_it_is_once_and_never_inside_an_update_s_transaction(system, updates):
    import psycopg2.extensions

    from expensebot.bootstrap import get_runtime
    from expensebot_tools.local.updates import Conversation

    anna = Conversation(system, ANNA, updates)
    anna.reply("250 кофе")
    # What the webhook's database connection was doing when getMe reached Telegram: a failure there inside
    # the update's transaction would lose the update (finding 3 of issue 13).
    during_get_me = []
    answer_get_me = system.telegram.handlers["getMe"]

    def recording(*args: object) -> object:
        during_get_me.append(get_runtime().db.connection().info.transaction_status)
        return answer_get_me(*args)

    system.telegram.handlers["getMe"] = recording
    assert anna.reply("/help@expensebot_local_bot").startswith("Команды:")
    assert anna.reply("/undo@another_bot").startswith("Не понял")  # meant for another bot: not undone
    assert anna.reply("/undo@ExpenseBot_Local_Bot").startswith("Удалил расход")

    assert [call.method for call in system.telegram.calls].count("getMe") == 1
    assert during_get_me == [psycopg2.extensions.TRANSACTION_STATUS_IDLE]
