"""Where the adapters are created: once per execution environment, on first use, never at import.
Lambda handlers, the webhook, the CLI and the tests all get their adapters from `get_runtime()`;
tests and the local runtime install their own with `set_runtime()`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from expensebot.adapters.secrets import resolve_json_secret, resolve_secret
from expensebot.clock import Clock, SystemClock
from expensebot.errors import ConfigurationError

if TYPE_CHECKING:
    # Imported by build_runtime, not here: the handlers import this module, and the settings model
    # (pydantic-settings) and the drivers (psycopg2, urllib3) are a cold start's largest imports after the
    # X-Ray SDK. Like the connections, they come with the first use (`expensebot dev import-times`).
    from expensebot.adapters.database import Database
    from expensebot.adapters.queues import QueueClient
    from expensebot.adapters.telegram import TelegramClient
    from expensebot.config import Settings


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    queues: QueueClient
    telegram: TelegramClient

    def bot_token(self) -> str:
        return resolve_secret(
            self.settings.telegram_bot_token,
            self.settings.telegram_bot_token_secret_name,
            what="Telegram bot token",
            env="TELEGRAM_BOT_TOKEN",
            name_env="TELEGRAM_BOT_TOKEN_SECRET_NAME",
        )

    def webhook_secret(self) -> str:
        return resolve_secret(
            self.settings.webhook_secret,
            self.settings.webhook_secret_name,
            what="webhook secret token",
            env="WEBHOOK_SECRET",
            name_env="WEBHOOK_SECRET_NAME",
        )


def database_dsn(settings: Settings) -> Callable[[], str]:
    """The database URL, from the first of: DATABASE_URL (local runs, tests, `sam local invoke`), the secret
    holding a URL (DATABASE_URL_SECRET_ARN), the RDS-style secret (DATABASE_SECRET_ARN). It is called on each
    connect; secrets come through Powertools' cache (SECRET_CACHE_SECONDS)."""

    def dsn() -> str:
        if settings.database_url is not None:
            return settings.database_url.get_secret_value()
        if settings.database_url_secret_arn:
            url = resolve_secret(None, settings.database_url_secret_arn, what="database URL",
                                 env="DATABASE_URL", name_env="DATABASE_URL_SECRET_ARN")
            return _checked_url(url, settings.database_url_secret_arn)
        if settings.database_secret_arn:
            secret = resolve_json_secret(settings.database_secret_arn, what="database")
            return _dsn_from_rds_secret(secret, host_override=settings.database_host)
        raise ConfigurationError(
            "no database configured: set DATABASE_URL, or DATABASE_URL_SECRET_ARN or DATABASE_SECRET_ARN in AWS"
        )

    return dsn


def _checked_url(url: str, secret_name: str) -> str:
    # The message never quotes the value: it is a password as often as not.
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(f"the database URL secret {secret_name!r} does not hold a postgresql:// URL")
    return url


def _dsn_from_rds_secret(secret: dict[str, Any], *, host_override: str | None) -> str:
    try:
        user, password = secret["username"], secret["password"]
        host = host_override or secret["host"]
    except KeyError as exc:
        raise ConfigurationError(f"the database secret has no {exc.args[0]!r} field") from exc
    port = secret.get("port", 5432)
    dbname = secret.get("dbname", "postgres")
    # sslmode=require: RDS and RDS Proxy both speak TLS, and the password crosses the VPC.
    user, password, dbname = (quote(str(part), safe="") for part in (user, password, dbname))
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}?sslmode=require"


def _sqs_client_factory(settings: Settings) -> Callable[[], Any]:
    def create() -> Any:
        import boto3  # imported on first use: ~0.3 s of cold start that the webhook's common path skips

        return boto3.client("sqs", endpoint_url=settings.sqs_endpoint_url)

    return create


def build_runtime(settings: Settings | None = None, clock: Clock | None = None) -> Runtime:
    from expensebot.adapters.database import Database
    from expensebot.adapters.queues import QueueClient
    from expensebot.adapters.telegram import TelegramClient
    from expensebot.config import Settings

    settings = settings or Settings()
    runtime = Runtime(
        settings=settings,
        clock=clock or SystemClock(),
        db=Database(
            database_dsn(settings),
            timezone=settings.app_timezone,
            connect_timeout=settings.database_connect_timeout,
        ),
        queues=QueueClient(settings.queue_url, _sqs_client_factory(settings), settings.dead_letter_queue_url),
        telegram=TelegramClient(
            settings.telegram_api_base,
            lambda: runtime.bot_token(),  # read on the first send, through the runtime's secret lookup
            timeout=settings.telegram_timeout_seconds,
        ),
    )
    return runtime


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = build_runtime()
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install the adapters a test or the local runtime built; None forgets them (next use rebuilds)."""
    previous = swap_runtime(runtime)
    if previous is not None and previous is not runtime:
        previous.db.close()


def swap_runtime(runtime: Runtime | None) -> Runtime | None:
    """Installs a runtime without closing the one it replaces, and returns that one: the local system keeps
    a runtime per function, as Lambda keeps one per execution environment, and switches between them."""
    global _runtime
    previous, _runtime = _runtime, runtime
    return previous
