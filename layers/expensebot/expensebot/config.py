"""One validated settings model, read from the environment the SAM template (or a local run) provides."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from expensebot.adapters.queues import QUEUE_NAMES

# The bookkeeping tables exist to turn a duplicate into a no-op, so each keeps its rows at least as long as
# a duplicate can still arrive; a shorter retention is refused with the reason (README: "Bookkeeping
# retention"). The template's parameters carry the same floors as their MinValue.
RETENTION_FLOORS: dict[str, tuple[int, str]] = {
    "processed_updates_retention_days": (
        1,
        "Telegram retries an update for up to 24 hours, and an update pruned before that would be processed"
        " again",
    ),
    # A standard queue's DLQ counts retention from the first enqueue, and a redrive enqueues the message anew:
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html
    "notifications_retention_days": (
        18,
        "a message can come back for 18 days: 14 in its queue and DLQ (a standard queue's DLQ counts from the"
        " first enqueue), then a redrive gives it its queue's 4 days afresh; a claim pruned before that sends"
        " the message again",
    ),
    "job_runs_retention_days": (
        32,
        "the ledger is the schedules' only history: a continuation can come back for 18 days and claims its"
        " step in its run's row, a failed schedule event waits 14 days in its DLQ, and a month's runs (the"
        " month-end report's slot) must stay visible to ops and doctor through the next month",
    ),
}


def _whole_numbers(value: object, *, signed: bool, what: str) -> object:
    """'1, -100200' → ['1', '-100200'] for pydantic to convert; a part that is not a whole number is
    refused with a message saying which part and what was expected."""
    if isinstance(value, int):
        return [value]
    if not isinstance(value, str):
        return value
    parts = [part.strip() for part in value.split(",") if part.strip()]
    for part in parts:
        if not (part.lstrip("-") if signed else part).isdigit():
            raise ValueError(f"{part!r} is not {what}")
    return parts


class Settings(BaseSettings):
    """Every variable is documented in the README's configuration table."""

    # An empty variable counts as unset: the template declares local-only variables blank.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    # Lambda reserves TZ, so the application's zone has a name of its own.
    app_timezone: str = Field("Europe/Moscow", validation_alias="APP_TIMEZONE")

    database_url: SecretStr | None = Field(None, validation_alias="DATABASE_URL")
    # In AWS: a secret holding the URL (the stack makes it from its DatabaseUrl parameter), so the password
    # never sits in the function's environment.
    database_url_secret_arn: str | None = Field(None, validation_alias="DATABASE_URL_SECRET_ARN")
    # In AWS: an RDS-style secret (host, port, username, password, dbname); DATABASE_HOST overrides its
    # host so the functions can go through an RDS Proxy endpoint.
    database_secret_arn: str | None = Field(None, validation_alias="DATABASE_SECRET_ARN")
    database_host: str | None = Field(None, validation_alias="DATABASE_HOST")
    database_connect_timeout: int = Field(5, ge=1, le=60, validation_alias="DATABASE_CONNECT_TIMEOUT")

    telegram_bot_token: SecretStr | None = Field(None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_bot_token_secret_name: str | None = Field(None, validation_alias="TELEGRAM_BOT_TOKEN_SECRET_NAME")
    webhook_secret: SecretStr | None = Field(None, validation_alias="WEBHOOK_SECRET")
    webhook_secret_name: str | None = Field(None, validation_alias="WEBHOOK_SECRET_NAME")
    telegram_api_base: str = Field("https://api.telegram.org", validation_alias="TELEGRAM_API_BASE")
    telegram_timeout_seconds: float = Field(10.0, gt=0, le=60, validation_alias="TELEGRAM_TIMEOUT_SECONDS")

    # Telegram's limits for one bot token, shared by every worker through PostgreSQL (pacing.py).
    # TELEGRAM_PACING=false sends as fast as the workers go (for comparison; Telegram then answers 429s).
    telegram_pacing: bool = Field(True, validation_alias="TELEGRAM_PACING")
    telegram_rate_per_second: float = Field(30.0, gt=0, le=1000, validation_alias="TELEGRAM_RATE_PER_SECOND")
    telegram_chat_interval_seconds: float = Field(
        1.0, ge=0, le=60, validation_alias="TELEGRAM_CHAT_INTERVAL_SECONDS"
    )
    telegram_group_messages_per_minute: int = Field(
        20, ge=1, le=60, validation_alias="TELEGRAM_GROUP_MESSAGES_PER_MINUTE"
    )
    # Paid broadcasts (Bot API 7.11): up to 1000 messages/s, each beyond the free 30/s paid in Stars.
    telegram_paid_broadcast: bool = Field(False, validation_alias="TELEGRAM_PAID_BROADCAST")
    telegram_paid_rate_per_second: float = Field(
        1000.0, gt=0, le=1000, validation_alias="TELEGRAM_PAID_RATE_PER_SECOND"
    )
    # Sends are paced this much under the rate: they leave a little after their slot, unevenly, and a
    # pace of exactly Telegram's rate puts one send too many in some one-second window now and then.
    pacing_safety_margin: float = Field(0.95, ge=0.5, le=1.0, validation_alias="PACING_SAFETY_MARGIN")
    # The longest a worker sleeps for its send slot; a later slot holds the message back instead.
    pacing_max_wait_seconds: float = Field(3.0, ge=0.1, le=30, validation_alias="PACING_MAX_WAIT_SECONDS")

    admin_chat_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias="ADMIN_CHAT_IDS"
    )
    retention_days: int = Field(730, ge=1, le=36500, validation_alias="RETENTION_DAYS")
    budget_thresholds: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [80, 90, 100], validation_alias="BUDGET_THRESHOLDS"
    )
    soft_time_limit_seconds: int = Field(300, ge=1, le=900, validation_alias="SOFT_TIME_LIMIT_SECONDS")
    # The function timeout (Celery's task_time_limit). A run opened before job leases existed counts as
    # "running" this long.
    hard_time_limit_seconds: int = Field(600, ge=1, le=900, validation_alias="HARD_TIME_LIMIT_SECONDS")
    # How long a job run's attempt holds its slot without renewing (scheduling.RunLease). Shorter than
    # Lambda's first async retry (about a minute after a failed attempt), so that retry finds a dead
    # attempt's lease expired; each step between two renewals must take well under it.
    job_lease_seconds: int = Field(30, ge=5, le=300, validation_alias="JOB_LEASE_SECONDS")

    # How long the bookkeeping tables keep a row; RETENTION_FLOORS says why each has a minimum. The Sunday
    # cleanup prunes them in batches of CLEANUP_BATCH_SIZE.
    processed_updates_retention_days: int = Field(7, le=36500, validation_alias="PROCESSED_UPDATES_RETENTION_DAYS")
    notifications_retention_days: int = Field(30, le=36500, validation_alias="NOTIFICATIONS_RETENTION_DAYS")
    job_runs_retention_days: int = Field(90, le=36500, validation_alias="JOB_RUNS_RETENTION_DAYS")

    # Rows per cleanup transaction: each batch must stay well under a second (make bench BENCH=cleanup).
    cleanup_batch_size: int = Field(5_000, ge=1, le=100_000, validation_alias="CLEANUP_BATCH_SIZE")

    queue_url_default: str | None = Field(None, validation_alias="QUEUE_URL_DEFAULT")
    queue_url_reports: str | None = Field(None, validation_alias="QUEUE_URL_REPORTS")
    queue_url_recurring: str | None = Field(None, validation_alias="QUEUE_URL_RECURRING")
    queue_url_maintenance: str | None = Field(None, validation_alias="QUEUE_URL_MAINTENANCE")
    queue_url_notifications: str | None = Field(None, validation_alias="QUEUE_URL_NOTIFICATIONS")
    # Each queue's DLQ, so a worker parks a message and the admin report reads a DLQ's depth without asking
    # SQS for URLs (which would need sqs:GetQueueUrl in every role). Unset: found through the redrive policy.
    dead_letter_queue_url_default: str | None = Field(None, validation_alias="DEAD_LETTER_QUEUE_URL_DEFAULT")
    dead_letter_queue_url_reports: str | None = Field(None, validation_alias="DEAD_LETTER_QUEUE_URL_REPORTS")
    dead_letter_queue_url_recurring: str | None = Field(None, validation_alias="DEAD_LETTER_QUEUE_URL_RECURRING")
    dead_letter_queue_url_maintenance: str | None = Field(
        None, validation_alias="DEAD_LETTER_QUEUE_URL_MAINTENANCE"
    )
    dead_letter_queue_url_notifications: str | None = Field(
        None, validation_alias="DEAD_LETTER_QUEUE_URL_NOTIFICATIONS"
    )

    # A local SQS endpoint (moto server) for `sam local invoke`; empty in AWS.
    sqs_endpoint_url: str | None = Field(None, validation_alias="SQS_ENDPOINT_URL")

    # A new user's currency, and the currency of amounts stored before amounts had one (migration 0009).
    default_currency: str = Field("RUB", validation_alias="DEFAULT_CURRENCY")

    @field_validator("default_currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        code = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code such as RUB, USD or EUR")
        return code

    @field_validator("app_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Moscow") from exc
        return value

    @field_validator(*RETENTION_FLOORS)
    @classmethod
    def _not_below_its_floor(cls, value: int, info: ValidationInfo) -> int:
        floor, why = RETENTION_FLOORS[str(info.field_name)]
        if value < floor:
            raise ValueError(f"{value} days is below the minimum of {floor}: {why}")
        return value

    @field_validator("admin_chat_ids", mode="before")
    @classmethod
    def _parse_chat_ids(cls, value: object) -> object:
        return _whole_numbers(value, signed=True, what="a Telegram chat id (whole numbers, comma-separated)")

    @field_validator("budget_thresholds", mode="before")
    @classmethod
    def _parse_thresholds(cls, value: object) -> object:
        return _whole_numbers(value, signed=False, what="a whole percentage (expected e.g. 80,90,100)")

    @field_validator("budget_thresholds")
    @classmethod
    def _sane_thresholds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one threshold is needed, e.g. 80,90,100")
        if any(not 1 <= t <= 1000 for t in value):
            raise ValueError("thresholds are percentages between 1 and 1000")
        if len(set(value)) != len(value):
            raise ValueError("thresholds must not repeat")
        return sorted(value)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.app_timezone)

    def queue_url(self, queue: str) -> str | None:
        return self._per_queue("queue_url", queue)

    def dead_letter_queue_url(self, queue: str) -> str | None:
        return self._per_queue("dead_letter_queue_url", queue)

    def _per_queue(self, setting: str, queue: str) -> str | None:
        if queue not in QUEUE_NAMES:
            raise KeyError(f"unknown queue {queue!r}; queues are {', '.join(QUEUE_NAMES)}")
        return getattr(self, f"{setting}_{queue}")
