"""A job run's lease on real PostgreSQL: an attempt that lost the database mid-run is taken over by the slot's
next delivery (Lambda's retry a minute later) instead of blocking it for the 600 s hard limit, two live
attempts of one slot never both work, and a month whose last-day run never succeeded is reported late
rather than never."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from expensebot import scheduling
from expensebot.adapters.database import Database
from expensebot.bootstrap import Runtime, get_runtime
from expensebot.errors import DatabaseUnavailable
from expensebot.jobs import monthly_reports
from expensebot.scheduling import (
    Job,
    JobContext,
    JobResult,
    ScheduledInvocation,
    run_scheduled_job,
)
from expensebot_tools.local.events import schedule_event
from tests.conftest import MOSCOW, run_sql

USERS = (1001, 1002, 1003)
MARCH = date(2026, 3, 1)
MARCH_LAST_SLOT = datetime(2026, 3, 31, 20, 0, tzinfo=MOSCOW)
APRIL_FIRST_SLOT = datetime(2026, 4, 1, 20, 0, tzinfo=MOSCOW)
# How long Lambda waits before its first and second async retry of a failed attempt
# (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
FIRST_RETRY_DELAY = timedelta(minutes=1)
SECOND_RETRY_DELAY = timedelta(minutes=2)
LEASE = timedelta(seconds=30)  # JOB_LEASE_SECONDS' default


class _Killed(BaseException):
    """The attempt's process ends mid-run (Lambda's timeout, out of memory): a BaseException, so no
    `except Exception` gets to record 'failed'."""


class DatabaseOutage:
    """PostgreSQL gone for the application: every connection to its database killed server-side, and new
    ones refused (ALLOW_CONNECTIONS false) until the outage ends."""

    def __init__(self, database_url: str) -> None:
        self.database = psycopg2.extensions.parse_dsn(database_url)["dbname"]
        self._admin_dsn = psycopg2.extensions.make_dsn(database_url, dbname="postgres")
        self.active = False

    def _run(self, sql: str, params: Any = None) -> None:
        admin = psycopg2.connect(self._admin_dsn)
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(sql, params)
        finally:
            admin.close()

    def begin(self) -> None:
        self.active = True
        self._run(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
        self._run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                  " WHERE datname = %s AND pid <> pg_backend_pid()", (self.database,))

    def end(self) -> None:
        self._run(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')
        self.active = False


@pytest.fixture
def outage(clean_database: str) -> Iterator[DatabaseOutage]:
    controller = DatabaseOutage(clean_database)
    yield controller
    if controller.active:
        controller.end()


def _users_who_spent_in_march(system: Any) -> None:
    at = datetime(2026, 1, 5, 12, 0, tzinfo=MOSCOW)
    for user_id in USERS:
        run_sql("INSERT INTO users (user_id, chat_id, language_code, is_active, created_at, last_seen_at)"
                " VALUES (%s, %s, 'ru', true, %s, %s)", (user_id, user_id, at, at))
        system.telegram.add_chat(user_id)
        spent = datetime(2026, 3, 10, 12, 0, tzinfo=MOSCOW)
        run_sql("INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
                " VALUES (%s, %s, 'cafe', 'x', %s, %s)", (user_id, Decimal("100.00"), spent, spent))


def _schedule_input(template: Any, function_id: str) -> str:
    (schedule,) = [s for s in template.schedules() if s.function_id == function_id]
    return str(schedule.input)


def _reports_to(system: Any, user_id: int) -> list[str]:
    return [call.params["text"] for call in system.telegram.sent_messages(user_id)]


def _monthly_ledger() -> list[tuple[Any, ...]]:
    return run_sql("SELECT slot, status, attempts, details FROM job_runs WHERE job = 'send_monthly_reports'"
                   " ORDER BY slot")


def _outage_during_planning(monkeypatch: pytest.MonkeyPatch, outage: DatabaseOutage) -> None:
    """The database goes away once the run is committed as 'running', as the planner starts."""
    real = monthly_reports.plan_monthly_reports
    began: list[bool] = []

    def planning(runtime: Runtime, month: date, **kwargs: Any) -> Any:
        if not began:
            began.append(True)
            outage.begin()
        return real(runtime, month, **kwargs)

    monkeypatch.setattr(monthly_reports, "plan_monthly_reports", planning)


# ---------------------------------------------------------------- the outage of finding 1


@pytest.mark.parametrize("redelivery", ["lambda_retry", "scheduler_retry"])
def test_a_run_that_lost_the_database_mid_planning_is_taken_over_by_the_retry_a_minute_later(
    system, template, outage, monkeypatch, redelivery
):
    _users_who_spent_in_march(system)
    _outage_during_planning(monkeypatch, outage)
    first = schedule_event(_schedule_input(template, "SendMonthlyReportsFunction"), MARCH_LAST_SLOT,
                           execution_id="exec-1", attempt=1)
    system.clock.set(MARCH_LAST_SLOT)

    with pytest.raises(DatabaseUnavailable):
        system.invoke("SendMonthlyReportsFunction", first)
    outage.end()
    # Lambda's async retry re-sends the very same event; Scheduler's own retry (of a delivery it saw fail)
    # carries a new execution id and attempt number. The ledger treats both alike: the slot is the run.
    retry = first if redelivery == "lambda_retry" else {**first, "execution_id": "exec-2", "attempt": "2"}
    system.clock.advance(FIRST_RETRY_DELAY)
    outcome = system.invoke("SendMonthlyReportsFunction", retry)
    drained = system.drain("ReportsQueue")

    assert (outcome["status"], outcome["attempts"], outcome["enqueued"]) == ("succeeded", 2, 3)
    assert drained.failed == 0
    for user_id in USERS:
        (text,) = _reports_to(system, user_id)
        assert text.startswith("📊 Отчёт за март 2026")
    assert run_sql("SELECT user_id, month FROM monthly_reports ORDER BY user_id") == [(u, MARCH) for u in USERS]


def _deliver_again_while_planning(system: Any, monkeypatch: pytest.MonkeyPatch, event: dict[str, Any], *,
                                  after: timedelta, then: timedelta = timedelta(0)) -> list[dict[str, Any]]:
    """When the first attempt starts planning, the clock moves `after` on and the slot is delivered again
    (Scheduler's new execution id), then the clock moves `then` on; returns that second delivery's outcome."""
    real = monthly_reports.plan_monthly_reports
    second: list[dict[str, Any]] = []
    delivered = []  # set before the second delivery runs: it plans too, and must not deliver a third

    def planning(runtime: Runtime, month: date, **kwargs: Any) -> Any:
        if not delivered:
            delivered.append(True)
            system.clock.advance(after)
            second.append(system.invoke("SendMonthlyReportsFunction", {**event, "execution_id": "exec-2"}))
            system.clock.advance(then)
        return real(runtime, month, **kwargs)

    monkeypatch.setattr(monthly_reports, "plan_monthly_reports", planning)
    return second


def test_a_live_attempt_keeps_its_slot_against_a_duplicate_delivered_while_it_plans(system, template, monkeypatch):
    _users_who_spent_in_march(system)
    event = schedule_event(_schedule_input(template, "SendMonthlyReportsFunction"), MARCH_LAST_SLOT,
                           execution_id="exec-1")
    system.clock.set(MARCH_LAST_SLOT)
    # Scheduler delivers the slot a second time, 5 s into the first attempt.
    duplicates = _deliver_again_while_planning(system, monkeypatch, event, after=timedelta(seconds=5))

    outcome = system.invoke("SendMonthlyReportsFunction", event)
    system.drain("ReportsQueue")

    assert [d["status"] for d in duplicates] == ["duplicate"]
    assert (outcome["status"], outcome["attempts"]) == ("succeeded", 1)
    assert all(len(_reports_to(system, user_id)) == 1 for user_id in USERS)


def test_an_attempt_that_stalled_past_its_lease_stops_when_it_finds_the_run_taken_over(
    system, template, monkeypatch
):
    monkeypatch.setattr(monthly_reports, "ENQUEUE_CHUNK_SIZE", 1)
    _users_who_spent_in_march(system)
    event = schedule_event(_schedule_input(template, "SendMonthlyReportsFunction"), MARCH_LAST_SLOT,
                           execution_id="exec-1")
    system.clock.set(MARCH_LAST_SLOT)
    # The first attempt hangs longer than its lease; the slot's next delivery finds the lease run out.
    takeovers = _deliver_again_while_planning(system, monkeypatch, event, after=LEASE + timedelta(seconds=1),
                                              then=timedelta(seconds=20))

    stalled = system.invoke("SendMonthlyReportsFunction", event)
    system.drain("ReportsQueue")

    assert [(t["status"], t["attempts"]) for t in takeovers] == [("succeeded", 2)]
    # Its first chunk was already on its way (a duplicate unit, sent once); at its next renewal it stopped.
    assert stalled["status"] == "superseded"
    assert all(len(_reports_to(system, user_id)) == 1 for user_id in USERS)
    ((_, status, attempts, details),) = _monthly_ledger()
    assert (status, attempts, details["month"]) == ("succeeded", 2, "2026-03")


# ---------------------------------------------------------------- every job


def _job_functions(template: Any) -> dict[str, str]:
    return {json.loads(s.input)["job"]: s.function_id for s in template.schedules()}


@pytest.mark.parametrize(
    "job_name",
    ["send_monthly_reports", "check_budget_limits", "process_recurring_payments", "cleanup_old_expenses",
     "send_daily_admin_report"],
)
def test_every_job_whose_attempt_lost_the_database_is_taken_over_by_lambdas_first_retry(
    system, template, outage, monkeypatch, job_name
):
    registered = scheduling.jobs()[job_name]

    def losing_the_database(runtime: Runtime, ctx: JobContext) -> JobResult:
        outage.begin()
        return registered.run_fn(runtime, ctx)

    monkeypatch.setitem(scheduling._JOBS, job_name, dataclasses.replace(registered, run_fn=losing_the_database))
    function_id = _job_functions(template)[job_name]
    slot = datetime(2026, 3, 31, 10, 0, tzinfo=MOSCOW)
    event = schedule_event(_schedule_input(template, function_id), slot, execution_id="exec-1")
    system.clock.set(slot)

    with pytest.raises(DatabaseUnavailable):
        system.invoke(function_id, event)
    outage.end()
    assert run_sql("SELECT status FROM job_runs WHERE job = %s", (job_name,)) == [("running",)]
    monkeypatch.setitem(scheduling._JOBS, job_name, registered)
    system.clock.advance(FIRST_RETRY_DELAY)
    outcome = system.invoke(function_id, event)

    assert (outcome["status"], outcome["attempts"]) == ("succeeded", 2)
    assert run_sql("SELECT status, attempts FROM job_runs WHERE job = %s", (job_name,)) == [("succeeded", 2)]


# ---------------------------------------------------------------- two deliveries at once


def _probe_job(runs: list[str]) -> Job:
    def probe(runtime: Runtime, ctx: JobContext) -> JobResult:
        if getattr(runtime, "doomed", False):
            raise _Killed
        runs.append(threading.current_thread().name)
        time.sleep(0.2)  # long enough for the other delivery to arrive while this one works
        return JobResult(planned=0, enqueued=0)

    return Job(name="lease_probe", queue="default", schedule="tests only", run_fn=probe)


@dataclasses.dataclass
class _DoomedRuntime(Runtime):
    doomed: bool = True


@pytest.mark.parametrize("earlier_attempt", ["none", "died"])
def test_two_deliveries_of_one_slot_at_the_same_moment_run_it_once(
    system, clean_database, monkeypatch, earlier_attempt
):
    runs: list[str] = []
    monkeypatch.setitem(scheduling._JOBS, "lease_probe", _probe_job(runs))
    shared = get_runtime()
    system.clock.set(MARCH_LAST_SLOT)
    outcomes: list[str] = []
    for round_number in range(5):
        slot = MARCH_LAST_SLOT + timedelta(hours=round_number)
        invocation = ScheduledInvocation(job="lease_probe", scheduled_time=slot, execution_id="exec")
        if earlier_attempt == "died":
            doomed = _DoomedRuntime(**{f.name: getattr(shared, f.name) for f in dataclasses.fields(Runtime)})
            with pytest.raises(_Killed):
                run_scheduled_job(invocation, runtime=doomed)
            system.clock.advance(FIRST_RETRY_DELAY)
        # Each delivery is its own Lambda environment: its own connection to PostgreSQL.
        runtimes = [dataclasses.replace(shared, db=Database(lambda: clean_database, timezone="Europe/Moscow"))
                    for _ in range(2)]
        for runtime in runtimes:
            runtime.db.connection()
        start = threading.Barrier(2)

        def deliver(runtime: Runtime, invocation: ScheduledInvocation = invocation,
                    start: threading.Barrier = start) -> str:
            start.wait()
            return run_scheduled_job(invocation, runtime=runtime).status

        with ThreadPoolExecutor(2) as pool:
            outcomes += sorted(pool.map(deliver, runtimes))
        for runtime in runtimes:
            runtime.db.close()

    assert outcomes == ["duplicate", "succeeded"] * 5
    assert len(runs) == 5
    expected_attempts = 2 if earlier_attempt == "died" else 1
    assert run_sql("SELECT DISTINCT status, attempts FROM job_runs WHERE job = 'lease_probe'") == [
        ("succeeded", expected_attempts)
    ]


# ---------------------------------------------------------------- a month-end that never succeeded


def _fire_reports(system: Any, slot: datetime) -> dict[str, Any]:
    system.clock.set(slot)
    return system.fire_schedule("SendMonthlyReportsFunction", slot)


def test_march_whose_last_day_failed_through_every_retry_is_reported_on_1_april(
    system, template, outage, monkeypatch
):
    _users_who_spent_in_march(system)
    _fire_reports(system, datetime(2026, 3, 30, 20, 0, tzinfo=MOSCOW))  # the job was running before March ended
    _outage_during_planning(monkeypatch, outage)
    event = schedule_event(_schedule_input(template, "SendMonthlyReportsFunction"), MARCH_LAST_SLOT)
    system.clock.set(MARCH_LAST_SLOT)
    with pytest.raises(DatabaseUnavailable):
        system.invoke("SendMonthlyReportsFunction", event)
    for delay in (FIRST_RETRY_DELAY, SECOND_RETRY_DELAY):  # the outage outlasts both of Lambda's retries
        system.clock.advance(delay)
        with pytest.raises(DatabaseUnavailable):
            system.invoke("SendMonthlyReportsFunction", event)
    outage.end()

    april_first = _fire_reports(system, APRIL_FIRST_SLOT)
    april_second = _fire_reports(system, APRIL_FIRST_SLOT + timedelta(days=1))
    system.drain("ReportsQueue")

    assert (april_first["status"], april_first["enqueued"], april_first["details"]) == (
        "succeeded", 3, {"caught_up": "2026-03"}
    )
    assert april_second["details"] == {"skipped": "not the last day of the month"}
    for user_id in USERS:
        (text,) = _reports_to(system, user_id)
        assert text.startswith("📊 Отчёт за март 2026")
    assert run_sql("SELECT user_id, month FROM monthly_reports ORDER BY user_id") == [(u, MARCH) for u in USERS]


def test_a_catch_up_on_the_last_day_of_april_sends_march_then_april(system):
    _users_who_spent_in_march(system)
    run_sql("INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
            " VALUES (1001, 70, 'cafe', 'x', %(at)s, %(at)s)", {"at": datetime(2026, 4, 5, 12, 0, tzinfo=MOSCOW)})
    _fire_reports(system, datetime(2026, 3, 30, 20, 0, tzinfo=MOSCOW))
    run_sql("INSERT INTO job_runs (job, slot, status, started_at, finished_at, error) VALUES"
            " ('send_monthly_reports', %(slot)s, 'failed', %(slot)s, %(slot)s, 'DatabaseUnavailable')",
            {"slot": MARCH_LAST_SLOT})

    outcome = _fire_reports(system, datetime(2026, 4, 30, 20, 0, tzinfo=MOSCOW))
    system.drain("ReportsQueue")

    assert outcome["details"] == {"caught_up": "2026-03", "month": "2026-04"}
    assert sorted(text.splitlines()[0] for text in _reports_to(system, 1001)) == [
        "📊 Отчёт за апрель 2026", "📊 Отчёт за март 2026"
    ]
    assert [len(_reports_to(system, user_id)) for user_id in USERS[1:]] == [1, 1]


class _NoTimeLeft:
    def get_remaining_time_in_millis(self) -> int:
        return 0


def test_a_catch_up_stopped_at_its_soft_limit_continues_through_both_months(system, monkeypatch):
    monkeypatch.setattr(monthly_reports, "ENQUEUE_CHUNK_SIZE", 2)
    _users_who_spent_in_march(system)
    run_sql("INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
            " VALUES (1001, 70, 'cafe', 'x', %(at)s, %(at)s)", {"at": datetime(2026, 4, 5, 12, 0, tzinfo=MOSCOW)})
    _fire_reports(system, datetime(2026, 3, 30, 20, 0, tzinfo=MOSCOW))
    april_last = datetime(2026, 4, 30, 20, 0, tzinfo=MOSCOW)
    system.clock.set(april_last)

    # March's three reports, then April's one: the first chunk (two of March's) goes, then the soft limit.
    outcome = run_scheduled_job(ScheduledInvocation(job="send_monthly_reports", scheduled_time=april_last),
                                runtime=get_runtime(), context=_NoTimeLeft())
    drained = system.drain("ReportsQueue")

    assert (outcome.planned, outcome.enqueued, outcome.details["continued"]) == (4, 2, True)
    assert drained.failed == 0
    assert sorted(text.splitlines()[0] for text in _reports_to(system, 1001)) == [
        "📊 Отчёт за апрель 2026", "📊 Отчёт за март 2026"
    ]
    assert [[text.splitlines()[0] for text in _reports_to(system, u)] for u in USERS[1:]] == [
        ["📊 Отчёт за март 2026"], ["📊 Отчёт за март 2026"]
    ]


def test_a_first_deployment_after_a_month_end_does_not_report_the_month_before_it(system):
    _users_who_spent_in_march(system)  # the old system (Celery) may well have reported March already

    outcome = _fire_reports(system, APRIL_FIRST_SLOT)

    assert outcome["details"] == {"skipped": "not the last day of the month"}
    assert system.receive_raw("ReportsQueue") == []


def test_a_month_end_that_succeeded_is_not_caught_up_again(system):
    _users_who_spent_in_march(system)
    _fire_reports(system, MARCH_LAST_SLOT)
    system.drain("ReportsQueue")

    outcome = _fire_reports(system, APRIL_FIRST_SLOT)

    assert outcome["details"] == {"skipped": "not the last day of the month"}


def test_the_admin_report_counts_a_run_whose_lease_ran_out_as_failed_not_running(system):
    from expensebot.jobs.admin_report import gather_admin_stats

    as_of = datetime(2026, 3, 10, 10, 0, tzinfo=MOSCOW)
    run_sql("INSERT INTO job_runs (job, slot, status, started_at, lease_until) VALUES"
            " ('check_budget_limits', %(lost)s, 'running', %(lost)s, %(lost)s + interval '30 seconds'),"
            " ('check_budget_limits', %(live)s, 'running', %(live)s, %(as_of)s + interval '20 seconds')",
            {"lost": as_of - timedelta(hours=2), "live": as_of - timedelta(minutes=1), "as_of": as_of})

    stats = gather_admin_stats(get_runtime(), as_of)

    (budget,) = [runs for runs in stats.job_runs if runs.job == "check_budget_limits"]
    assert (budget.runs, budget.failed, budget.running, budget.last_status) == (2, 1, 1, "running")
