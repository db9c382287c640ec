"""A job run under faults: PostgreSQL stopped before the ledger insert, right after it, during planning,
between two SendMessageBatch calls, and before the run is closed. Lambda then retries the same event as it
does for an asynchronous invocation (about 1 and 3 minutes later), the workers drain the queue, and every
user gets the month's report once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest

import expensebot.scheduling
from expensebot_tools.local.events import schedule_event
from tests.conftest import MOSCOW, run_sql
from tests.faults.delivery import dead_letters, delivered_per_chat, redeliver, score

SLOT = datetime(2026, 3, 31, 20, 0, tzinfo=MOSCOW)  # the month's last day: the reports are due
USERS = range(3001, 3013)  # twelve: two SendMessageBatch calls of ten and two
LAMBDA_RETRY_DELAYS = (timedelta(0), timedelta(minutes=1), timedelta(minutes=2))  # the first try, then two


def add_users_with_march_expenses() -> None:
    for user in USERS:
        run_sql("INSERT INTO users (user_id, chat_id, language_code, created_at, last_seen_at)"
                " VALUES (%s, %s, 'en', '2026-01-01 12:00+03', '2026-03-20 12:00+03')", (user, user))
        run_sql("INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
                " VALUES (%s, 100, 'food', 'lunch', '2026-03-15 13:00+03', '2026-03-15 13:00+03')", (user,))


def invoke_as_lambda_async(system: Any, figures: Any, *, before_each: Callable[[int], None]) -> Any:
    """Lambda's asynchronous invocation of the job function: the same event up to three times, the retries
    about a minute and then two more minutes after the failure (EventInvokeConfig MaximumRetryAttempts 2)."""
    [spec] = [s for s in system.template.schedules() if s.function_id == "SendMonthlyReportsFunction"]
    event = schedule_event(spec.input, SLOT)
    for attempt, delay in enumerate(LAMBDA_RETRY_DELAYS, start=1):
        system.clock.advance(delay)
        before_each(attempt)
        try:
            return system.invoke("SendMonthlyReportsFunction", event)
        except Exception as exc:  # Lambda records the error and retries the event
            figures.notes.append(f"attempt {attempt}: {type(exc).__name__}")
    raise AssertionError(f"every attempt failed: {figures.notes}")


@contextmanager
def stop_once_at(target: Any, name: str, postgres: Any, *, call: int = 1, after: bool = False) -> Iterator[None]:
    """Stops PostgreSQL just before the `call`-th call of target.name (then the call runs, and fails), or
    just after it returned."""
    original = getattr(target, name)
    calls = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call and not after:
            postgres.stop_server()
        result = original(*args, **kwargs)
        if calls["n"] == call and after:
            postgres.stop_server()
        return result

    setattr(target, name, wrapped)
    try:
        yield
    finally:
        setattr(target, name, original)


def restart_before_retries(postgres: Any) -> Callable[[int], None]:
    def before(attempt: int) -> None:
        if attempt > 1:
            postgres.restart_server()

    return before


def assert_every_user_got_one_report(system: Any, figures: Any) -> None:
    redeliver(system, "ReportsQueue")
    score(figures, system, USERS)
    assert delivered_per_chat(system) == {user: 1 for user in USERS}
    assert dead_letters(system, "ReportsQueue") == 0
    assert run_sql("SELECT status FROM job_runs WHERE job = 'send_monthly_reports'") == [("succeeded",)]


@pytest.fixture
def month_end(fault_system: Any) -> Any:
    add_users_with_march_expenses()
    fault_system.clock.advance(SLOT - fault_system.clock.now())
    return fault_system


def test_database_stopped_before_the_ledger_insert(month_end, figures):
    month_end.postgres.stop_server()
    figures.faults += 1

    outcome = invoke_as_lambda_async(month_end, figures, before_each=restart_before_retries(month_end.postgres))

    assert outcome["status"] == "succeeded"
    assert_every_user_got_one_report(month_end, figures)


@pytest.mark.parametrize("step", ["after_the_ledger_insert", "during_planning", "before_finishing"])
def test_database_stopped_during_a_run_is_taken_over_by_lambdas_retry(step, month_end, figures):
    from expensebot.bootstrap import get_runtime

    target, name, after = {
        # the run is committed 'running' with its lease, then the outage
        "after_the_ledger_insert": (expensebot.scheduling, "open_run", True),
        "during_planning": (type(get_runtime().db), "fetch_tuples", False),  # the planner's query
        "before_finishing": (expensebot.scheduling, "_finish", False),
    }[step]
    figures.faults += 1

    with stop_once_at(target, name, month_end.postgres, after=after):
        outcome = invoke_as_lambda_async(month_end, figures,
                                         before_each=restart_before_retries(month_end.postgres))

    assert outcome["status"] == "succeeded" and outcome["attempts"] == 2
    assert_every_user_got_one_report(month_end, figures)


def test_database_stopped_between_two_send_message_batch_calls(month_end, figures):
    from expensebot.bootstrap import get_runtime

    client = get_runtime().queues.client
    figures.faults += 1

    with stop_once_at(client, "send_message_batch", month_end.postgres, call=2):
        outcome = invoke_as_lambda_async(month_end, figures,
                                         before_each=restart_before_retries(month_end.postgres))

    # The first attempt enqueued its units, then could neither finish nor mark the run; the retry plans
    # the month again and enqueues the reports again: the workers' keys make the copies no-ops.
    assert outcome["status"] == "succeeded"
    assert_every_user_got_one_report(month_end, figures)
