"""Scheduled jobs: what EventBridge Scheduler sends, the run ledger keyed by (job, scheduled slot), and
the soft deadline that replaces Celery's task_soft_time_limit."""

from __future__ import annotations

import json
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import monotonic as _monotonic
from typing import Any, Literal, Protocol, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from expensebot.bootstrap import Runtime, get_runtime
from expensebot.errors import ConfigurationError, DatabaseUnavailable, ExpenseBotError
from expensebot.observability import logger, metrics


class ScheduledInvocation(BaseModel):
    """The schedule's Input in template.yaml, with Scheduler's context attributes filled in.

    The scheduled time is the same on every attempt of one run, so the slot identifies the run. The
    execution id and attempt number are Scheduler's: they change when Scheduler retries a delivery that
    failed, but Lambda's own async retries re-send the same event with the same ones, so neither can tell a
    retry from a duplicate. They are only logged."""

    # Built at first use, not at import (as the other models here): a model's validator is most of the cost of
    # defining it, and it counts in every cold start's import (`expensebot dev import-times`).
    model_config = ConfigDict(extra="ignore", defer_build=True)

    job: str
    scheduled_time: AwareDatetime
    execution_id: str = ""
    attempt: int = Field(1, ge=1)


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    """Celery's soft limit: work checks `expired()` between units and checkpoints instead of being killed
    at the hard limit (the function timeout). The earlier of the soft limit and what Lambda has left,
    minus a margin to checkpoint, wins."""

    CHECKPOINT_MARGIN_SECONDS = 20.0

    def __init__(
        self,
        soft_limit_seconds: float,
        context: LambdaContextLike | None = None,
        *,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        budget = soft_limit_seconds
        if context is not None:
            budget = min(budget, context.get_remaining_time_in_millis() / 1000 - self.CHECKPOINT_MARGIN_SECONDS)
        self._ends_at = _monotonic() + max(0.0, budget)
        self._heartbeat = heartbeat

    def remaining(self) -> float:
        return max(0.0, self._ends_at - _monotonic())

    def expired(self) -> bool:
        # A job run checks its deadline between units of work: the same moments prove the attempt alive,
        # so the run's lease is renewed here (raising LeaseLost when another attempt has taken it).
        if self._heartbeat is not None:
            self._heartbeat()
        return self.remaining() <= 0


# The deadline of the worker invocation running the current task (set per batch by the worker), so a
# long task (the cleanup's continuation) checkpoints at the same soft limit as a job run.
_task_deadline: ContextVar[Deadline | None] = ContextVar("task_deadline", default=None)


@contextmanager
def task_deadline(deadline: Deadline) -> Iterator[Deadline]:
    token = _task_deadline.set(deadline)
    try:
        yield deadline
    finally:
        _task_deadline.reset(token)


def current_deadline(soft_limit_seconds: float) -> Deadline:
    """The running batch's deadline; outside a worker (a test, the CLI) a fresh soft limit."""
    return _task_deadline.get() or Deadline(soft_limit_seconds)


# Units sent between two renewals of the run's lease: 100 SendMessageBatch calls, a few seconds against SQS,
# far under the lease (a plan of 11,557 budget alerts takes longer than the lease to send in one go).
KEEP_ALIVE_CHUNK = 1_000


class EnqueuesMany(Protocol):
    def delay_many(self, many: Any, *, runtime: Runtime | None = None, job_run_id: int | None = None) -> int: ...


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class JobContext:
    slot: datetime  # the scheduled time: the run's "now" for every rule, so a retry decides the same
    run_id: int
    deadline: Deadline
    keep_alive: Callable[[], None] = _nothing  # renews the run's lease when due (RunLease.renew_if_due)

    def enqueue(self, runtime: Runtime, task: EnqueuesMany, units: Sequence[Any]) -> int:
        """Enqueues every unit, renewing the run's lease between chunks; returns how many were sent."""
        enqueued = 0
        for start in range(0, len(units), KEEP_ALIVE_CHUNK):
            if start:
                self.keep_alive()
            enqueued += task.delay_many(units[start : start + KEEP_ALIVE_CHUNK], runtime=runtime,
                                        job_run_id=self.run_id)
        return enqueued


@dataclass(frozen=True)
class JobResult:
    planned: int
    enqueued: int
    # Whatever else the run wants in the ledger: {"deleted": 1200, "continued": true}, {"skipped": "..."}.
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    name: str
    queue: str
    schedule: str  # for people; the expression itself lives in template.yaml
    run_fn: Callable[[Runtime, JobContext], JobResult]


_JOBS: dict[str, Job] = {}


def job(name: str, *, queue: str, schedule: str) -> Callable[[Callable[[Runtime, JobContext], JobResult]], Job]:
    def register(fn: Callable[[Runtime, JobContext], JobResult]) -> Job:
        if name in _JOBS:
            raise ValueError(f"job {name!r} is registered twice")
        _JOBS[name] = Job(name=name, queue=queue, schedule=schedule, run_fn=fn)
        return _JOBS[name]

    return register


def jobs() -> dict[str, Job]:
    """Every job, by name. Importing the jobs package registers them."""
    import expensebot.jobs  # noqa: F401

    return _JOBS


class JobOutcome(BaseModel):
    model_config = ConfigDict(defer_build=True)

    job: str
    slot: datetime
    # duplicate: another attempt holds the slot's live lease, or the slot already succeeded; superseded:
    # this attempt stopped renewing in time and another took the run over, so this one stopped.
    status: Literal["succeeded", "duplicate", "superseded"]
    run_id: int | None = None
    attempts: int | None = None
    planned: int = 0
    enqueued: int = 0
    details: dict[str, Any] = {}


class LeaseLost(ExpenseBotError):
    """Another attempt took this run over: this attempt let its lease run out (it stalled longer than the
    lease between two renewals) and must stop, so two attempts never both work on one slot."""


def lease_ran_out(*, now: str = "now", table: str = "") -> str:
    """SQL that is true of a job run still 'running' whose attempt is gone: its lease ran out. A row without a
    lease, opened by code older than migration 0007 (an old version still running during a deploy), keeps
    the old rule, the hard time limit. Takes the parameters %(hard_limit)s (an interval) and %(<now>)s; the
    run ledger, the admin report, `ops status` and `ops doctor` all judge a run with it."""
    column = f"{table}." if table else ""
    return (f"{column}status = 'running'"
            f" AND COALESCE({column}lease_until, {column}started_at + %(hard_limit)s) <= %({now})s")


def lease_parameters(runtime: Runtime) -> dict[str, Any]:
    """The parameters lease_ran_out() takes, as of the runtime's clock."""
    return {"now": runtime.clock.now(), "hard_limit": timedelta(seconds=runtime.settings.hard_time_limit_seconds)}


# Opens the run for a slot, or takes it over from an attempt that failed or whose lease ran out (it died,
# or lost the database, before it could record 'failed'). A run that succeeded, or whose holder still
# renews its lease, is left alone: the caller is a duplicate delivery. Under READ COMMITTED two deliveries
# racing here serialise on the slot's row: the second sees the first's fresh lease and gets no row.
# Rows without a lease (opened by code older than migration 0007) keep the old rule, the hard limit.
_OPEN_RUN = f"""
INSERT INTO job_runs (job, slot, status, attempts, execution_id, started_at, lease_holder, lease_until)
VALUES (%(job)s, %(slot)s, 'running', 1, %(execution_id)s, %(now)s, %(holder)s, %(lease_until)s)
ON CONFLICT ON CONSTRAINT job_runs_once_per_slot DO UPDATE
   SET status = 'running', attempts = job_runs.attempts + 1, execution_id = EXCLUDED.execution_id,
       started_at = EXCLUDED.started_at, finished_at = NULL, error = NULL,
       lease_holder = EXCLUDED.lease_holder, lease_until = EXCLUDED.lease_until
 WHERE job_runs.status = 'failed' OR ({lease_ran_out(table="job_runs")})
RETURNING id, attempts
"""

_RENEW_LEASE = """
UPDATE job_runs SET lease_until = %(lease_until)s
 WHERE id = %(run_id)s AND lease_holder = %(holder)s AND status = 'running'
RETURNING id
"""


class RunLease:
    """An attempt's hold on its run: renewed at most every third of the lease, from the run's deadline
    checks (between chunks and batches) and before the run is closed. Times come from the runtime's clock,
    so the virtual clock of tests and the simulation moves leases as it moves schedules."""

    def __init__(self, runtime: Runtime, run_id: int, holder: str, renewed_at: datetime) -> None:
        self._runtime = runtime
        self.run_id = run_id
        self.holder = holder
        self._seconds = timedelta(seconds=runtime.settings.job_lease_seconds)
        self._renewed_at = renewed_at

    def renew_if_due(self) -> None:
        if self._runtime.clock.now() - self._renewed_at >= self._seconds / 3:
            self.renew()

    def renew(self) -> None:
        now = self._runtime.clock.now()
        with self._runtime.db.transaction() as cur:
            cur.execute(_RENEW_LEASE, {"lease_until": now + self._seconds, "run_id": self.run_id,
                                       "holder": self.holder})
            held = cur.fetchone() is not None
        if not held:
            raise LeaseLost(f"job run {self.run_id} was taken over by another attempt")
        self._renewed_at = now


def open_run(runtime: Runtime, job_name: str, invocation: ScheduledInvocation) -> tuple[RunLease, int] | None:
    """Opens or takes over the slot's run with a fresh lease; returns the lease and the attempt number, or
    None when the delivery is a duplicate."""
    lease = lease_parameters(runtime)
    now = lease["now"]
    holder = uuid.uuid4().hex  # this attempt's own token: execution ids repeat across Lambda's retries
    with runtime.db.transaction() as cur:
        cur.execute(
            _OPEN_RUN,
            {
                **lease,
                "job": job_name,
                "slot": invocation.scheduled_time,
                "execution_id": invocation.execution_id,
                "holder": holder,
                "lease_until": now + timedelta(seconds=runtime.settings.job_lease_seconds),
            },
        )
        opened = cur.fetchone()
    if opened is None:
        return None
    return RunLease(runtime, opened["id"], holder, renewed_at=now), opened["attempts"]


def run_scheduled_job(
    invocation: ScheduledInvocation,
    *,
    runtime: Runtime | None = None,
    context: LambdaContextLike | None = None,
) -> JobOutcome:
    runtime = runtime or get_runtime()
    known = jobs()
    registered = known.get(invocation.job)
    if registered is None:
        raise ConfigurationError(f"unknown job {invocation.job!r}; jobs are {', '.join(sorted(known))}")
    opened = open_run(runtime, registered.name, invocation)
    if opened is None:
        logger.info(
            "duplicate schedule delivery: the slot already succeeded or its attempt holds a live lease",
            extra={"job": registered.name, "slot": invocation.scheduled_time.isoformat()},
        )
        metrics.add_metric(name="DuplicateScheduleDeliveries", unit="Count", value=1)
        return JobOutcome(job=registered.name, slot=invocation.scheduled_time, status="duplicate")

    lease, attempts = opened
    run_id = lease.run_id
    logger.append_keys(job=registered.name, job_run_id=run_id)
    if attempts > 1:
        logger.info("took the run over from an attempt that failed or stopped renewing its lease",
                    extra={"attempt": attempts, "execution_id": invocation.execution_id})
    deadline = Deadline(runtime.settings.soft_time_limit_seconds, context, heartbeat=lease.renew_if_due)
    try:
        result = registered.run_fn(
            runtime, JobContext(slot=invocation.scheduled_time, run_id=run_id, deadline=deadline,
                                keep_alive=lease.renew_if_due)
        )
    except LeaseLost:
        return _superseded(registered.name, invocation, run_id)
    except Exception as exc:
        try:
            _finish(runtime, lease, status="failed", error=_describe(exc))
        except DatabaseUnavailable:
            # The outage that failed the run keeps it from being marked failed: the lease runs out instead,
            # and Lambda's retry (a minute later) takes the run over.
            logger.warning("could not record the failed run; its lease will run out", extra={"job_run_id": run_id})
        metrics.add_metric(name="JobFailures", unit="Count", value=1)
        logger.exception("job run failed", extra={"attempt": attempts})
        raise
    details = _finish(runtime, lease, status="succeeded", result=result)
    if details is None:
        return _superseded(registered.name, invocation, run_id)
    metrics.add_metric(name="UnitsEnqueued", unit="Count", value=result.enqueued)
    logger.info("job run succeeded", extra={"planned": result.planned, "enqueued": result.enqueued})
    return JobOutcome(
        job=registered.name,
        slot=invocation.scheduled_time,
        status="succeeded",
        run_id=run_id,
        attempts=attempts,
        planned=result.planned,
        enqueued=result.enqueued,
        details=details,
    )


def _superseded(job_name: str, invocation: ScheduledInvocation, run_id: int) -> JobOutcome:
    # Not a failure to retry: the attempt that took the run over does the work and records its outcome.
    logger.warning("another attempt took this run over; this attempt stopped", extra={"job_run_id": run_id})
    metrics.add_metric(name="SupersededJobAttempts", unit="Count", value=1)
    return JobOutcome(job=job_name, slot=invocation.scheduled_time, status="superseded", run_id=run_id)


def _finish(
    runtime: Runtime, lease: RunLease, *, status: str, result: JobResult | None = None, error: str | None = None
) -> dict[str, Any] | None:
    """Closes the run if this attempt still holds it; returns its details as the ledger now has them (with
    continuations' counters), or None when another attempt has taken the run over."""
    with runtime.db.transaction() as cur:
        cur.execute(
            # `||` keeps counters a continuation may already have added to this run.
            "UPDATE job_runs SET status = %s, finished_at = %s, planned = %s, enqueued = %s, error = %s,"
            " details = details || %s::jsonb WHERE id = %s AND lease_holder = %s RETURNING details",
            (
                status,
                runtime.clock.now(),
                result.planned if result else None,
                result.enqueued if result else None,
                error,
                json.dumps(result.details if result else {}, default=str),
                lease.run_id,
                lease.holder,
            ),
        )
        row = cur.fetchone()
    return dict(row["details"]) if row else None


_ADD_TO_COUNTERS = """
UPDATE job_runs
   SET details = details || (
       SELECT jsonb_object_agg(key, COALESCE((details ->> key)::bigint, 0) + value::bigint)
         FROM jsonb_each_text(%(counters)s::jsonb)
   )
 WHERE id = %(run_id)s
"""


# The ledger row remembers the highest continuation enqueued, so two copies of one continuation (SQS
# delivers at least once) enqueue one successor between them, not one each.
_CLAIM_CONTINUATION = """
UPDATE job_runs
   SET details = details || jsonb_build_object('continuations', %(generation)s::int)
 WHERE id = %(run_id)s AND COALESCE((details ->> 'continuations')::int, 0) < %(generation)s
RETURNING id
"""


class Continuation(BaseModel):
    """The rest of a run that reached its soft time limit, as a task's arguments: which run it belongs to,
    and which step of it this is (only one copy of each step is ever enqueued)."""

    model_config = ConfigDict(defer_build=True)

    job_run_id: int
    generation: int = Field(1, ge=1)

    def next_step(self, **changes: Any) -> Self:
        return self.model_copy(update={**changes, "generation": self.generation + 1})


class EnqueuesContinuations(Protocol):
    def delay(self, args: Any, *, runtime: Runtime | None = None) -> str: ...


def continue_run(runtime: Runtime, continuation: Continuation, task: EnqueuesContinuations) -> bool:
    """Enqueues the continuation on `task` unless a copy of the same step already did; returns whether
    this call enqueued it. The enqueue runs inside the claim's transaction: if SQS refuses, the claim rolls
    back with it and a retry can enqueue again."""
    run_id, generation = continuation.job_run_id, continuation.generation
    with runtime.db.transaction() as cur:
        cur.execute(_CLAIM_CONTINUATION, {"generation": generation, "run_id": run_id})
        claimed = cur.fetchone() is not None
        if claimed:
            task.delay(continuation, runtime=runtime)
            logger.info("the run continues on its queue", extra={"job_run_id": run_id, "generation": generation})
    return claimed


def add_to_run_counters(runtime: Runtime, run_id: int | None, **counters: int) -> None:
    """Adds to a run's counters in the ledger (a continuation's deleted rows to the run that began it)."""
    if run_id is None or not counters:
        return
    with runtime.db.transaction() as cur:
        cur.execute(_ADD_TO_COUNTERS, {"counters": json.dumps(counters), "run_id": run_id})


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


def handle_scheduled_event(event: dict[str, Any], context: LambdaContextLike | None) -> dict[str, Any]:
    """What a job function's lambda_handler calls: parse, run, shape the answer."""
    invocation = ScheduledInvocation.model_validate(event)
    # Five functions share this handler; each is told its job (JOB_NAME). An event for another job
    # (a schedule pointed at the wrong function, a wrong `sam local invoke -e` file) is refused.
    expected = os.environ.get("JOB_NAME")
    if expected and expected != invocation.job:
        raise ConfigurationError(f"this function runs {expected!r}, but the event is for {invocation.job!r}")
    return run_scheduled_job(invocation, context=context).model_dump(mode="json")
