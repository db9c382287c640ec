"""The worker's soft time limit: records not started when the batch reaches it go back to the queue at
once, as batch item failures, and are not lost."""

from __future__ import annotations

import itertools

import pytest

import expensebot.scheduling
from expensebot.jobs.debug import DebugRequest, debug_task


@pytest.fixture
def time_runs_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every look at the monotonic clock moves it 100 s on (the soft limit is 300 s)."""
    ticks = itertools.count(step=100.0)
    monkeypatch.setattr(expensebot.scheduling, "_monotonic", lambda: float(next(ticks)))


def test_records_not_started_at_the_soft_limit_are_handed_back_and_run_next_time(time_runs_fast, system):
    for note in ("one", "two", "three", "four"):
        debug_task.delay(DebugRequest(note=note))
    received = system.receive_raw("DefaultQueue", max_messages=10)
    assert len(received) == 4

    response = system.invoke_worker("DefaultQueue", received)

    # The batch's deadline is taken at its start; each record's check moves the clock 100 s: two records
    # start before 300 s, the other two are handed back.
    handed_back = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert handed_back == [m["MessageId"] for m in received[2:]]
    system.delete("DefaultQueue", [m for m in received if m["MessageId"] not in handed_back])

    # Visible again at once (not after the queue's 3600 s visibility timeout), and done by the next call.
    again = system.receive_raw("DefaultQueue", max_messages=10)
    assert sorted(m["MessageId"] for m in again) == sorted(handed_back)
