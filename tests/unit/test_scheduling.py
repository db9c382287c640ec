"""What EventBridge Scheduler sends, and the soft deadline that replaces Celery's soft time limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from expensebot import scheduling
from expensebot.scheduling import Deadline, JobContext, ScheduledInvocation


class FakeLambdaContext:
    def __init__(self, remaining_millis: int) -> None:
        self.remaining_millis = remaining_millis

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def scheduler_event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "job": "check_budget_limits",
        "scheduled_time": "2026-03-31T17:00:00Z",
        "execution_id": "c0ffee00-1111-2222-3333-444455556666",
        "attempt": "2",
    }
    event.update(overrides)
    return event


def test_the_event_scheduler_sends_is_accepted_with_the_attempt_as_a_string() -> None:
    invocation = ScheduledInvocation.model_validate(scheduler_event())

    assert invocation.job == "check_budget_limits"
    assert invocation.scheduled_time == datetime(2026, 3, 31, 17, 0, tzinfo=UTC)
    assert invocation.execution_id == "c0ffee00-1111-2222-3333-444455556666"
    assert invocation.attempt == 2


def test_a_scheduled_time_with_an_offset_is_the_same_instant() -> None:
    invocation = ScheduledInvocation.model_validate(scheduler_event(scheduled_time="2026-03-31T20:00:00+03:00"))

    assert invocation.scheduled_time == datetime(2026, 3, 31, 17, 0, tzinfo=UTC)


def test_an_event_with_only_the_job_and_the_time_defaults_to_the_first_attempt() -> None:
    invocation = ScheduledInvocation.model_validate(
        {"job": "check_budget_limits", "scheduled_time": "2026-03-31T17:00:00Z"}
    )

    assert invocation.attempt == 1
    assert invocation.execution_id == ""


def test_extra_fields_in_the_event_are_ignored() -> None:
    invocation = ScheduledInvocation.model_validate(scheduler_event(source="aws.scheduler"))

    assert invocation.job == "check_budget_limits"


def test_a_scheduled_time_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="scheduled_time"):
        ScheduledInvocation.model_validate(scheduler_event(scheduled_time="2026-03-31T17:00:00"))


def test_an_event_without_a_job_is_refused() -> None:
    event = scheduler_event()
    del event["job"]

    with pytest.raises(ValidationError, match="job"):
        ScheduledInvocation.model_validate(event)


@pytest.mark.parametrize("attempt", ["0", "-1", "first"])
def test_an_attempt_that_is_not_a_positive_number_is_refused(attempt: str) -> None:
    with pytest.raises(ValidationError, match="attempt"):
        ScheduledInvocation.model_validate(scheduler_event(attempt=attempt))


def test_a_deadline_keeps_a_20_second_margin_before_lambda_runs_out() -> None:
    deadline = Deadline(300, FakeLambdaContext(30_000))

    assert 0 < deadline.remaining() <= 10
    assert deadline.remaining() > 9
    assert not deadline.expired()


def test_a_deadline_is_the_soft_limit_when_lambda_has_more_time_left() -> None:
    deadline = Deadline(60, FakeLambdaContext(900_000))

    assert 59 < deadline.remaining() <= 60


def test_a_deadline_without_a_context_is_the_soft_limit() -> None:
    deadline = Deadline(300)

    assert 299 < deadline.remaining() <= 300
    assert not deadline.expired()


def test_a_soft_limit_of_zero_is_expired_at_once() -> None:
    deadline = Deadline(0, FakeLambdaContext(30_000))

    assert deadline.expired()
    assert deadline.remaining() == 0


def test_less_lambda_time_than_the_margin_is_expired_at_once() -> None:
    deadline = Deadline(300, FakeLambdaContext(15_000))

    assert deadline.expired()
    assert deadline.remaining() == 0


def test_a_deadline_check_is_a_heartbeat_of_the_run() -> None:
    beats: list[int] = []
    deadline = Deadline(300, heartbeat=lambda: beats.append(1))

    deadline.expired()
    deadline.expired()

    assert len(beats) == 2


class RecordingTask:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def delay_many(self, many: list[int], *, runtime: object = None, job_run_id: int | None = None) -> int:
        self.batches.append(list(many))
        return len(many)


def test_a_job_enqueues_in_chunks_and_renews_its_lease_between_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "KEEP_ALIVE_CHUNK", 2)
    renewals: list[int] = []
    ctx = JobContext(slot=datetime(2026, 3, 31, 17, 0, tzinfo=UTC), run_id=7, deadline=Deadline(300),
                     keep_alive=lambda: renewals.append(len(task.batches)))
    task = RecordingTask()

    enqueued = ctx.enqueue(None, task, [1, 2, 3, 4, 5])  # type: ignore[arg-type]

    assert enqueued == 5
    assert task.batches == [[1, 2], [3, 4], [5]]
    assert renewals == [1, 2]  # between chunks: never before the first, never after the last
