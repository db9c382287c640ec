"""Which database URL a function uses: a plain DATABASE_URL first (local runs, `sam local invoke`), then the secret
holding a URL (the stack's DatabaseUrl parameter), then an RDS-style secret. Secrets Manager is replaced by a dict."""

from __future__ import annotations

import json

import pytest

from expensebot.adapters import secrets
from expensebot.bootstrap import database_dsn
from expensebot.config import Settings
from expensebot.errors import ConfigurationError

URL_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:DatabaseUrlSecret-AbCdEf"
RDS_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-expensebot-GhIjKl"
STORED = {
    URL_SECRET: "postgresql://app:from-url-secret@db.example:5432/expensebot\n",
    RDS_SECRET: json.dumps({"username": "rds", "password": "from-rds", "host": "rds.internal", "dbname": "bot"}),
}


@pytest.fixture
def fetched(monkeypatch) -> list[str]:
    """The secret names read, in order; each read answers from STORED."""
    reads: list[str] = []

    def fetch(secret_name: str, *, what: str) -> str:
        reads.append(secret_name)
        if secret_name not in STORED:
            raise ConfigurationError(f"cannot read the {what} secret {secret_name!r}")
        return STORED[secret_name].strip()

    monkeypatch.setattr(secrets, "_fetch", fetch)
    return reads


def _dsn(monkeypatch, **values: str) -> str:
    for name in ("DATABASE_URL", "DATABASE_URL_SECRET_ARN", "DATABASE_SECRET_ARN", "DATABASE_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return database_dsn(Settings(_env_file=None))()


def test_a_plain_database_url_wins_and_no_secret_is_read(monkeypatch, fetched):
    dsn = _dsn(monkeypatch, DATABASE_URL="postgresql://local/expensebot",
               DATABASE_URL_SECRET_ARN=URL_SECRET, DATABASE_SECRET_ARN=RDS_SECRET)
    assert dsn == "postgresql://local/expensebot"
    assert fetched == []


def test_an_empty_database_url_as_the_template_declares_it_falls_through_to_the_url_secret(monkeypatch, fetched):
    assert _dsn(monkeypatch, DATABASE_URL="", DATABASE_URL_SECRET_ARN=URL_SECRET) == (
        "postgresql://app:from-url-secret@db.example:5432/expensebot"
    )
    assert fetched == [URL_SECRET]


def test_the_url_secret_is_read_before_the_rds_secret(monkeypatch, fetched):
    _dsn(monkeypatch, DATABASE_URL_SECRET_ARN=URL_SECRET, DATABASE_SECRET_ARN=RDS_SECRET)
    assert fetched == [URL_SECRET]


def test_the_rds_secret_is_used_when_no_url_is_given(monkeypatch, fetched):
    assert _dsn(monkeypatch, DATABASE_SECRET_ARN=RDS_SECRET) == "postgresql://rds:from-rds@rds.internal:5432/bot?sslmode=require"


def test_a_url_secret_that_holds_no_postgresql_url_is_refused_without_showing_its_value(monkeypatch, fetched):
    monkeypatch.setitem(STORED, URL_SECRET, "app:hunter2@db.example/expensebot")
    with pytest.raises(ConfigurationError, match="does not hold a postgresql:// URL") as refused:
        _dsn(monkeypatch, DATABASE_URL_SECRET_ARN=URL_SECRET)
    assert "hunter2" not in str(refused.value)


def test_no_database_configured_names_every_way_to_configure_one(monkeypatch, fetched):
    with pytest.raises(ConfigurationError, match="set DATABASE_URL, or DATABASE_URL_SECRET_ARN or DATABASE_SECRET_ARN"):
        _dsn(monkeypatch)
