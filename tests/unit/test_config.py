"""Settings read from the environment: defaults, parsing, and errors that say what to fix."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from expensebot.config import QUEUE_NAMES, Settings

# Every variable the model reads, so that nothing from the developer's shell leaks into a test.
SETTINGS_VARIABLES = {str(field.validation_alias).upper() for field in Settings.model_fields.values()}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The model matches names case-insensitively, so a lowercase variable would be read too.
    for name in list(os.environ):
        if name.upper() in SETTINGS_VARIABLES:
            monkeypatch.delenv(name)


def build() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_fixture_knows_the_variables_the_model_reads() -> None:
    assert {"APP_TIMEZONE", "ADMIN_CHAT_IDS", "BUDGET_THRESHOLDS", "QUEUE_URL_REPORTS"} <= SETTINGS_VARIABLES


def test_without_any_variables_the_defaults_apply() -> None:
    settings = build()

    assert settings.app_timezone == "Europe/Moscow"
    assert str(settings.tz) == "Europe/Moscow"
    assert settings.retention_days == 730
    assert settings.budget_thresholds == [80, 90, 100]
    assert settings.soft_time_limit_seconds == 300
    assert settings.admin_chat_ids == []
    assert settings.default_currency == "RUB"


def test_admin_chat_ids_are_comma_separated_with_spaces_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_CHAT_IDS", "1, -100200")

    assert build().admin_chat_ids == [1, -100200]


def test_a_single_admin_chat_id_is_a_list_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_CHAT_IDS", "12345")

    assert build().admin_chat_ids == [12345]


def test_budget_thresholds_given_out_of_order_are_sorted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGET_THRESHOLDS", "100,80,90")

    assert build().budget_thresholds == [80, 90, 100]


def test_budget_thresholds_may_have_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGET_THRESHOLDS", " 50 , 75 ")

    assert build().budget_thresholds == [50, 75]


def test_other_values_are_read_from_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TIMEZONE", "Asia/Yekaterinburg")
    monkeypatch.setenv("RETENTION_DAYS", "365")
    monkeypatch.setenv("SOFT_TIME_LIMIT_SECONDS", "120")

    settings = build()

    assert str(settings.tz) == "Asia/Yekaterinburg"
    assert settings.retention_days == 365
    assert settings.soft_time_limit_seconds == 120


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("APP_TIMEZONE", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("APP_TIMEZONE", "Moscow", "use an IANA name such as Europe/Moscow"),
        ("ADMIN_CHAT_IDS", "abc", "'abc' is not a Telegram chat id"),
        ("ADMIN_CHAT_IDS", "1, abc", "'abc' is not a Telegram chat id"),
        ("BUDGET_THRESHOLDS", "80,80", "thresholds must not repeat"),
        ("BUDGET_THRESHOLDS", "0", "thresholds are percentages between 1 and 1000"),
        ("BUDGET_THRESHOLDS", " , ", "at least one threshold is needed"),
        ("BUDGET_THRESHOLDS", "80%,90", "'80%' is not a whole percentage"),
        ("BUDGET_THRESHOLDS", "-10", "is not a whole percentage"),
    ],
)
def test_a_bad_value_is_refused_with_a_message_saying_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as caught:
        build()

    assert variable in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize("queue", QUEUE_NAMES)
def test_each_queue_url_is_read_from_its_own_variable(monkeypatch: pytest.MonkeyPatch, queue: str) -> None:
    url = f"https://sqs.eu-central-1.amazonaws.com/123456789012/expensebot-{queue}"
    monkeypatch.setenv(f"QUEUE_URL_{queue.upper()}", url)

    assert build().queue_url(queue) == url


def test_queue_url_reports_reads_queue_url_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_URL_REPORTS", "https://sqs.example/reports")
    monkeypatch.setenv("QUEUE_URL_DEFAULT", "https://sqs.example/default")

    assert build().queue_url("reports") == "https://sqs.example/reports"


def test_a_queue_without_a_url_has_none() -> None:
    assert build().queue_url("reports") is None


def test_an_unknown_queue_name_raises_key_error() -> None:
    with pytest.raises(KeyError, match="unknown queue 'celery'"):
        build().queue_url("celery")


def test_an_empty_variable_counts_as_unset_because_the_template_declares_local_only_ones_blank(monkeypatch):
    monkeypatch.setenv("BUDGET_THRESHOLDS", "")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    settings = Settings(_env_file=None)
    assert settings.budget_thresholds == [80, 90, 100]
    assert settings.telegram_bot_token is None


def test_the_bookkeeping_retentions_default_to_a_week_a_month_and_a_quarter() -> None:
    settings = build()

    assert settings.processed_updates_retention_days == 7
    assert settings.notifications_retention_days == 30
    assert settings.job_runs_retention_days == 90


@pytest.mark.parametrize(
    ("variable", "floor", "reason"),
    [
        ("PROCESSED_UPDATES_RETENTION_DAYS", 1, "Telegram retries an update for up to 24 hours"),
        ("NOTIFICATIONS_RETENTION_DAYS", 18, "then a redrive gives it its queue's 4 days afresh"),
        ("JOB_RUNS_RETENTION_DAYS", 32, "a continuation can come back for 18 days"),
    ],
)
def test_a_bookkeeping_retention_below_its_floor_is_refused_saying_why(
    monkeypatch: pytest.MonkeyPatch, variable: str, floor: int, reason: str
) -> None:
    monkeypatch.setenv(variable, str(floor - 1))

    with pytest.raises(ValidationError) as caught:
        build()

    assert variable in str(caught.value)
    assert f"below the minimum of {floor}" in str(caught.value)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "floor"),
    [("PROCESSED_UPDATES_RETENTION_DAYS", 1), ("NOTIFICATIONS_RETENTION_DAYS", 18), ("JOB_RUNS_RETENTION_DAYS", 32)],
)
def test_a_bookkeeping_retention_at_its_floor_is_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str, floor: int
) -> None:
    monkeypatch.setenv(variable, str(floor))

    assert getattr(build(), variable.lower()) == floor
