"""In AWS the functions get secret names, not values: the library reads them from Secrets Manager (moto)."""

from __future__ import annotations

import json

import boto3
import pytest

from expensebot.bootstrap import build_runtime, database_dsn
from expensebot.config import Settings
from expensebot.errors import ConfigurationError


@pytest.fixture
def secrets(aws):
    from aws_lambda_powertools.utilities.parameters.secrets import DEFAULT_PROVIDERS

    DEFAULT_PROVIDERS.clear()  # Powertools caches its provider (and values) per process
    client = boto3.client("secretsmanager", region_name="us-east-1")
    yield client
    DEFAULT_PROVIDERS.clear()


def _settings(monkeypatch, **values: str) -> Settings:
    names = ("TELEGRAM_BOT_TOKEN", "WEBHOOK_SECRET", "DATABASE_URL", "DATABASE_URL_SECRET_ARN", "DATABASE_SECRET_ARN")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def test_the_bot_token_and_webhook_secret_are_read_from_secrets_manager_by_name(secrets, monkeypatch):
    secrets.create_secret(Name="expensebot/telegram-bot-token", SecretString="777:FROM-SECRETS-MANAGER")
    secrets.create_secret(Name="expensebot/webhook-secret", SecretString="s3cret-token\n")
    runtime = build_runtime(_settings(monkeypatch, TELEGRAM_BOT_TOKEN_SECRET_NAME="expensebot/telegram-bot-token",
                                      WEBHOOK_SECRET_NAME="expensebot/webhook-secret"))
    assert runtime.bot_token() == "777:FROM-SECRETS-MANAGER"
    assert runtime.webhook_secret() == "s3cret-token"


def test_a_plain_value_wins_over_the_secret_name(secrets, monkeypatch):
    runtime = build_runtime(_settings(monkeypatch, TELEGRAM_BOT_TOKEN="1:PLAIN",
                                      TELEGRAM_BOT_TOKEN_SECRET_NAME="never/read"))
    assert runtime.bot_token() == "1:PLAIN"


def test_a_missing_secret_says_which_secret_and_what_to_set(secrets, monkeypatch):
    runtime = build_runtime(_settings(monkeypatch, TELEGRAM_BOT_TOKEN_SECRET_NAME="no/such/secret"))
    with pytest.raises(ConfigurationError, match="cannot read the Telegram bot token secret 'no/such/secret'"):
        runtime.bot_token()
    with pytest.raises(ConfigurationError, match="set WEBHOOK_SECRET, or WEBHOOK_SECRET_NAME"):
        runtime.webhook_secret()


def test_the_database_url_is_built_from_an_rds_secret_with_the_proxy_host(secrets, monkeypatch):
    arn = secrets.create_secret(
        Name="rds/expensebot",
        SecretString=json.dumps({"username": "app", "password": "p@ss/word", "host": "db.internal",
                                 "port": 5432, "dbname": "expensebot"}),
    )["ARN"]
    dsn = database_dsn(_settings(monkeypatch, DATABASE_SECRET_ARN=arn, DATABASE_HOST="proxy.internal"))()
    assert dsn == "postgresql://app:p%40ss%2Fword@proxy.internal:5432/expensebot?sslmode=require"


def test_the_database_url_is_read_from_the_secret_the_stack_makes_from_the_database_url_parameter(
    secrets, monkeypatch
):
    # As the template creates it: the URL as a plain string, the functions given the secret's ARN.
    url = "postgresql://app:p%40ss@db.example:5432/expensebot?sslmode=require"
    arn = secrets.create_secret(Name="DatabaseUrlSecret-AbCdEf", SecretString=url)["ARN"]
    dsn = database_dsn(_settings(monkeypatch, DATABASE_URL="", DATABASE_URL_SECRET_ARN=arn))()
    assert dsn == url


def test_an_unreadable_database_url_secret_says_which_secret(secrets, monkeypatch):
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"
    with pytest.raises(ConfigurationError, match=f"cannot read the database URL secret '{missing}'"):
        database_dsn(_settings(monkeypatch, DATABASE_URL_SECRET_ARN=missing))()


def test_no_database_configured_is_a_clear_error(monkeypatch):
    with pytest.raises(ConfigurationError, match="set DATABASE_URL, or DATABASE_URL_SECRET_ARN or DATABASE_SECRET_ARN"):
        database_dsn(_settings(monkeypatch))()
