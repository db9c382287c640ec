"""Shared fixtures: a real PostgreSQL (embedded, or DATABASE_URL), moto for AWS, the Telegram
stand-in over HTTP, and the application wired from template.yaml."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from expensebot_tools.local.events import LocalLambdaContext
from expensebot_tools.local.stack import (
    LOCAL_BOT_TOKEN,
    EmbeddedPostgres,
    LocalSystem,
    migrate_database,
    running_system,
)
from expensebot_tools.project.template import Template

EVENTS_DIR = Path(__file__).resolve().parents[1] / "infra" / "events"
MOSCOW = ZoneInfo("Europe/Moscow")

APPLICATION_TABLES = (
    "processed_updates", "job_runs", "notifications", "monthly_reports", "budget_alerts", "budgets",
    "expenses", "incomes", "recurring_payments", "users", "telegram_pacing", "chat_pacing",
)


def run_sql(sql: str, params: Any = None, *, database_url: str | None = None) -> list[tuple[Any, ...]]:
    """One statement on the application's database (DATABASE_URL unless given), through a connection of
    the test's own, committed; its rows, or [] for a statement that returns none."""
    import psycopg2

    conn = psycopg2.connect(database_url or os.environ["DATABASE_URL"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def sql_value(sql: str, params: Any = None) -> Any:
    """The single value a statement returns (a count, a status)."""
    ((value,),) = run_sql(sql, params)
    return value


def load_event(name: str) -> dict[str, Any]:
    """A sample event from infra/events (the files `sam local invoke -e` takes)."""
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="test-function")


@pytest.fixture(scope="session")
def template() -> Template:
    return Template()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database for the whole run: EXPENSEBOT_TEST_DATABASE_URL when set, else an embedded
    server. Never DATABASE_URL: the tests empty every table, so they refuse a database whose name does
    not end in _test."""
    from urllib.parse import urlsplit

    server = None
    url = os.environ.get("EXPENSEBOT_TEST_DATABASE_URL")
    if url and not urlsplit(url).path.rstrip("/").endswith("_test"):
        pytest.exit("EXPENSEBOT_TEST_DATABASE_URL must name a database ending in _test: the tests empty it", 2)
    if not url:
        server = EmbeddedPostgres()
        server.start()
        url = server.create_database("expensebot_test")
    migrate_database(url, timezone="Europe/Moscow")
    yield url
    if server is not None:
        server.stop()


@pytest.fixture
def clean_database(database_url: str) -> str:
    import psycopg2

    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(APPLICATION_TABLES)} RESTART IDENTITY CASCADE")
    conn.close()
    return database_url


@pytest.fixture
def telegram() -> Iterator[Any]:
    from expensebot_tools.local.telegram import TelegramStandIn

    standin = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], enforce_limits=False)
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def system(aws: None, template: Template, clean_database: str, telegram: Any) -> Iterator[LocalSystem]:
    """The whole application on the local stack, at a virtual 10 March 2026, 09:00 Moscow time."""
    from expensebot.clock import VirtualClock

    clock = VirtualClock(datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))
    with running_system(template=template, database_url=clean_database, telegram=telegram, clock=clock) as system:
        yield system


@pytest.fixture
def sql_statements(system: LocalSystem, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement the application runs from here on, through dict cursors (transactions) or
    plain ones (Database.fetch_tuples, which take the connection's cursor factory)."""
    import psycopg2.extensions
    import psycopg2.extras

    from expensebot.bootstrap import get_runtime

    statements: list[str] = []
    original = psycopg2.extras.RealDictCursor.execute

    def counting(self: Any, query: Any, vars: Any = None) -> Any:
        statements.append(str(query))
        return original(self, query, vars)

    class CountingCursor(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:
            statements.append(str(query))
            return super().execute(query, vars)

    monkeypatch.setattr(psycopg2.extras.RealDictCursor, "execute", counting)
    monkeypatch.setattr(get_runtime().db.connection(), "cursor_factory", CountingCursor)
    return statements

