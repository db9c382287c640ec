"""cleanup_old_expenses — Sunday 03:00, queue `maintenance`.

Deletes expenses older than the retention (RETENTION_DAYS, default 730 days) counted back from the run's
scheduled time. Rows go in batches of at most `DEFAULT_BATCH_SIZE`, oldest first, each batch its own
short transaction (row locks only, no table lock), so the bot keeps writing while the cleanup runs.
When the soft time limit is near, the run stops between batches and enqueues its continuation on the
maintenance queue with the same cutoff; the continuation does the same until nothing is left. Every
deleted row is added to the run's `deleted` counter in the ledger, so the run reports its whole count.
Nothing at or after the cutoff is ever touched: the cutoff is fixed once, by the run's slot.

Once the expenses are done it prunes the bookkeeping tables the same way (retention.py): processed_updates,
notifications and job_runs past their own retention settings, each batch counted in the run's details as
`<table>_deleted`. Their cutoffs, fixed by the slot too, travel in the continuation; a continuation
enqueued before this existed carries none and prunes nothing (the next Sunday does)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, Field

from expensebot.bootstrap import Runtime
from expensebot.observability import logger, metrics
from expensebot.retention import bookkeeping_cutoffs, prune_until_done_or_deadline
from expensebot.scheduling import (
    Continuation,
    Deadline,
    JobContext,
    JobResult,
    add_to_run_counters,
    continue_run,
    current_deadline,
    job,
)
from expensebot.tasks import task

JOB = "cleanup_old_expenses"

# The batch size is a setting (CLEANUP_BATCH_SIZE, default 5,000): each batch is one transaction, and
# make bench BENCH=cleanup shows how long one takes at the default.
DEFAULT_BATCH_SIZE = 5_000

# A batch that waits on a row lock longer than this gives up (and the run continues later) rather than
# queueing behind someone's long transaction.
LOCK_TIMEOUT = "2s"


def cleanup_cutoff(slot: datetime, retention_days: int) -> datetime:
    """Expenses spent before this instant are past the retention."""
    return slot - timedelta(days=retention_days)


class CleanupContinuation(Continuation):
    """The rest of a run that reached its soft time limit: same cutoff, same ledger row."""

    cutoff: AwareDatetime
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=100_000)
    # Per bookkeeping table, the instant before which its rows are past retention.
    bookkeeping_cutoffs: dict[str, AwareDatetime] = Field(default_factory=dict)


# Oldest first through the spent_at index; SKIP LOCKED lets two copies of a continuation (a duplicate
# delivery) share the work instead of waiting for each other.
_DELETE_BATCH = """
DELETE FROM expenses
 WHERE id IN (SELECT id FROM expenses
               WHERE spent_at < %(cutoff)s
               ORDER BY spent_at
               LIMIT %(batch_size)s
               FOR UPDATE SKIP LOCKED)
"""


def delete_expired_batch(runtime: Runtime, cutoff: datetime, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """One short transaction: deletes up to batch_size of the oldest expenses spent before cutoff."""
    with runtime.db.transaction() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cur.execute(_DELETE_BATCH, {"cutoff": cutoff, "batch_size": batch_size})
        return int(cur.rowcount)


def count_expired(runtime: Runtime, cutoff: datetime) -> int:
    rows = runtime.db.fetch_all("SELECT count(*) AS expired FROM expenses WHERE spent_at < %s", (cutoff,))
    return int(rows[0]["expired"])


def delete_until_done_or_deadline(
    runtime: Runtime, cutoff: datetime, deadline: Deadline, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[int, bool]:
    """Deletes batch after batch; returns (rows deleted, whether rows may remain)."""
    deleted = 0
    while not deadline.expired():
        removed = delete_expired_batch(runtime, cutoff, batch_size)
        deleted += removed
        if removed < batch_size:
            return deleted, False
    return deleted, True


def _cleanup_until_done_or_deadline(
    runtime: Runtime, cutoff: datetime, pruning: dict[str, datetime], deadline: Deadline, batch_size: int
) -> tuple[dict[str, int], bool]:
    """The expenses first, then the bookkeeping tables; returns the run's counters and whether work remains."""
    deleted, unfinished = delete_until_done_or_deadline(runtime, cutoff, deadline, batch_size)
    counters = {"deleted": deleted}
    if not unfinished:
        pruned, unfinished = prune_until_done_or_deadline(runtime, pruning, deadline, batch_size)
        counters.update({f"{table}_deleted": rows for table, rows in pruned.items()})
    return counters, unfinished


@job(JOB, queue="maintenance", schedule="Sunday 03:00")
def cleanup_old_expenses(runtime: Runtime, ctx: JobContext) -> JobResult:
    cutoff = cleanup_cutoff(ctx.slot, runtime.settings.retention_days)
    pruning = bookkeeping_cutoffs(ctx.slot, runtime.settings)
    expired = count_expired(runtime, cutoff)
    batch_size = runtime.settings.cleanup_batch_size
    counters, unfinished = _cleanup_until_done_or_deadline(runtime, cutoff, pruning, ctx.deadline, batch_size)
    # Counted before the continuation exists: it adds its own rows to the same counters, maybe before
    # this run has finished.
    add_to_run_counters(runtime, ctx.run_id, **counters)
    _count_metrics(counters)
    enqueued = 0
    if unfinished:
        rest = CleanupContinuation(
            cutoff=cutoff, job_run_id=ctx.run_id, batch_size=batch_size, bookkeeping_cutoffs=pruning
        )
        enqueued = int(continue_run(runtime, rest, continue_cleanup))
    logger.info("cleanup", extra={"cutoff": cutoff.isoformat(), **counters, "continued": unfinished})
    return JobResult(planned=expired, enqueued=enqueued, details={"cutoff": cutoff.isoformat()})


def _count_metrics(counters: dict[str, int]) -> None:
    metrics.add_metric(name="ExpensesDeleted", unit="Count", value=counters["deleted"])
    pruned = sum(rows for name, rows in counters.items() if name != "deleted")
    metrics.add_metric(name="BookkeepingRowsDeleted", unit="Count", value=pruned)


@task("maintenance.continue_cleanup", args=CleanupContinuation, job=JOB)
def continue_cleanup(runtime: Runtime, continuation: CleanupContinuation) -> dict[str, int | bool]:
    """Go on deleting expired expenses and bookkeeping rows where a cleanup run stopped at its soft time limit."""
    deadline = current_deadline(runtime.settings.soft_time_limit_seconds)
    counters, unfinished = _cleanup_until_done_or_deadline(
        runtime, continuation.cutoff, dict(continuation.bookkeeping_cutoffs), deadline, continuation.batch_size
    )
    add_to_run_counters(runtime, continuation.job_run_id, **counters)
    _count_metrics(counters)
    if unfinished:
        continue_run(runtime, continuation.next_step(), continue_cleanup)
    return {**counters, "continued": unfinished}
