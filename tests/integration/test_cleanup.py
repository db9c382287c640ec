"""cleanup_old_expenses against real PostgreSQL: the retention boundary, batches, the soft time limit
with its continuation on the maintenance queue, and duplicate deliveries."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

import expensebot.scheduling
from expensebot.bootstrap import get_runtime
from expensebot.jobs.cleanup import cleanup_cutoff, delete_expired_batch
from tests.conftest import MOSCOW, run_sql, sql_value

# A Sunday, 03:00 Moscow time: the schedule's slot.
SLOT = datetime(2026, 3, 8, 3, 0, tzinfo=MOSCOW)
USER = 5001


def _seed_expenses(spent_at: list[datetime], description: str = "x") -> None:
    run_sql(
        "INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (%s, %s, now(), now())"
        " ON CONFLICT DO NOTHING",
        (USER, USER),
    )
    run_sql(
        "INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
        " SELECT %s, 10, 'other', %s, at, now() FROM unnest(%s::timestamptz[]) AS at",
        (USER, description, spent_at),
    )


def _descriptions() -> list[str]:
    return [description for (description,) in run_sql("SELECT description FROM expenses ORDER BY spent_at")]


def _run_details(job: str = "cleanup_old_expenses") -> dict[str, Any]:
    return sql_value("SELECT details FROM job_runs WHERE job = %s", (job,))


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of five rows, set before the system reads its settings."""
    monkeypatch.setenv("CLEANUP_BATCH_SIZE", "5")


@pytest.fixture
def time_runs_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every look at the monotonic clock moves it 100 s on: a 300 s soft limit is reached after a few
    batches, the same way every run, instead of after five real minutes."""
    ticks = itertools.count(step=100.0)
    monkeypatch.setattr(expensebot.scheduling, "_monotonic", lambda: float(next(ticks)))


def test_the_cutoff_is_the_retention_counted_back_from_the_slot():
    assert cleanup_cutoff(SLOT, 730) == SLOT - timedelta(days=730)
    assert cleanup_cutoff(SLOT, 1) == datetime(2026, 3, 7, 3, 0, tzinfo=MOSCOW)


def test_731_days_old_is_deleted_and_729_days_old_is_kept(system):
    _seed_expenses([SLOT - timedelta(days=731)], "731 days")
    _seed_expenses([SLOT - timedelta(days=729)], "729 days")
    _seed_expenses([SLOT - timedelta(days=730, seconds=-1)], "730 days less a second")

    outcome = system.fire_schedule("CleanupOldExpensesFunction", SLOT)

    assert outcome["status"] == "succeeded"
    assert outcome["planned"] == 1
    assert outcome["details"]["deleted"] == 1
    assert _descriptions() == ["730 days less a second", "729 days"]
    assert _run_details()["deleted"] == 1


def test_the_retention_is_a_setting(aws, template, clean_database, telegram):
    from expensebot.clock import VirtualClock
    from expensebot_tools.local.stack import running_system

    with running_system(template=template, database_url=clean_database, telegram=telegram,
                        clock=VirtualClock(SLOT), parameters={"RetentionDays": "30"}) as system:
        _seed_expenses([SLOT - timedelta(days=31)], "31 days")
        _seed_expenses([SLOT - timedelta(days=29)], "29 days")
        outcome = system.fire_schedule("CleanupOldExpensesFunction", SLOT)
        assert outcome["details"]["deleted"] == 1
        assert _descriptions() == ["29 days"]


def test_a_batch_deletes_at_most_its_size_oldest_first_and_nothing_after_the_cutoff(system):
    cutoff = SLOT - timedelta(days=730)
    _seed_expenses([cutoff - timedelta(days=day) for day in range(1, 8)], "old")
    _seed_expenses([cutoff, cutoff + timedelta(days=1)], "kept")

    runtime = get_runtime()
    assert delete_expired_batch(runtime, cutoff, batch_size=3) == 3
    assert delete_expired_batch(runtime, cutoff, batch_size=3) == 3
    assert delete_expired_batch(runtime, cutoff, batch_size=3) == 1
    assert delete_expired_batch(runtime, cutoff, batch_size=3) == 0
    # Spent exactly at the cutoff is not older than the retention.
    assert _descriptions() == ["kept", "kept"]


def test_cleanup_stops_at_the_soft_limit_and_its_continuation_finishes_the_work(
    small_batches, time_runs_fast, system
):
    cutoff = SLOT - timedelta(days=730)
    _seed_expenses([cutoff - timedelta(hours=hour) for hour in range(1, 24)], "old")  # 23 rows
    _seed_expenses([cutoff + timedelta(hours=hour) for hour in range(0, 3)], "kept")

    outcome = system.fire_schedule("CleanupOldExpensesFunction", SLOT)

    # The job run stopped between batches, with rows left, and handed the rest to the maintenance queue.
    assert outcome["status"] == "succeeded"
    assert outcome["planned"] == 23
    assert outcome["enqueued"] == 1
    first_part = outcome["details"]["deleted"]
    assert 0 < first_part < 23
    assert len(_descriptions()) == 26 - first_part

    drained = system.drain("MaintenanceQueue")

    assert drained.failed == 0 and drained.processed >= 1
    assert _descriptions() == ["kept"] * 3
    details = _run_details()
    assert details["deleted"] == 23
    assert details["continuations"] == drained.processed


def test_a_duplicated_continuation_deletes_each_row_once_and_enqueues_one_successor(
    small_batches, time_runs_fast, system
):
    cutoff = SLOT - timedelta(days=730)
    _seed_expenses([cutoff - timedelta(hours=hour) for hour in range(1, 41)], "old")  # 40 rows
    system.fire_schedule("CleanupOldExpensesFunction", SLOT)
    continuation = system.receive_raw("MaintenanceQueue")
    assert len(continuation) == 1

    # SQS delivers the same message twice: both copies work, each stops at its soft limit.
    system.invoke_worker("MaintenanceQueue", continuation)
    system.invoke_worker("MaintenanceQueue", continuation)
    system.delete("MaintenanceQueue", continuation)

    successors = system.receive_raw("MaintenanceQueue")
    assert len(successors) == 1
    system.delete("MaintenanceQueue", successors)
    deleted_so_far = _run_details()["deleted"]
    assert deleted_so_far == 40 - len(_descriptions())


def test_a_second_delivery_of_the_same_slot_does_not_run_the_cleanup_again(system):
    _seed_expenses([SLOT - timedelta(days=800)], "old")
    first = system.fire_schedule("CleanupOldExpensesFunction", SLOT)
    _seed_expenses([SLOT - timedelta(days=800)], "old again")
    duplicate = system.fire_schedule("CleanupOldExpensesFunction", SLOT, attempt=2)

    assert first["status"] == "succeeded" and duplicate["status"] == "duplicate"
    assert _descriptions() == ["old again"]
    assert _run_details()["deleted"] == 1
