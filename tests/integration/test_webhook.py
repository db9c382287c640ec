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

from expensebot_tools.events import api_gateway_event
from expensebot_tools.updates import FakeUser, UpdateFactory
from tests.conftest import MOSCOW
from tests.conftest import sql_value as _count

ANNA = FakeUser(user_id=1001, first_name="Анна")
AT = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)


@pytest.fixture
def updates():
    return UpdateFactory()


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
        ("[1, 2]", "no integer update_id"),
        ('{"update_id": "x"}', "no integer update_id"),
        ('{"update_id": 7, "message": {"text": "no chat, no date"}}', "not a Telegram update"),
    ],
)
def test_a_body_that_is_not_a_telegram_update_gets_400_with_the_reason(system, body, fragment):
    handler = system.template.load_handler("WebhookFunction")
    from expensebot_tools.events import LocalLambdaContext

    response = handler(api_gateway_event(body, secret="local-webhook-secret"), LocalLambdaContext())
    assert response["statusCode"] == 400
    assert fragment in json.loads(response["body"])["error"]


def test_a_base64_encoded_body_is_decoded(system, updates):
    from expensebot_tools.events import LocalLambdaContext

    system.telegram.add_chat(ANNA.user_id)
    handler = system.template.load_handler("WebhookFunction")
    event = api_gateway_event(updates.message(ANNA, "100 хлеб", AT), secret="local-webhook-secret", base64_body=True)
    assert handler(event, LocalLambdaContext())["statusCode"] == 200
    assert _count("SELECT count(*) FROM expenses WHERE category = 'groceries'") == 1


def test_the_database_down_answers_503_so_telegram_retries_and_the_retry_is_processed_once(system, updates):
    from expensebot.bootstrap import build_runtime, get_runtime, set_runtime
    from expensebot_tools.local_stack import environment

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
    from expensebot_tools.local_stack import environment

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
