"""cleanup: deleting 1,000,000 expenses older than the retention through `delete_expired_batch` (one short
transaction per batch), against the naive single `DELETE ... WHERE spent_at < cutoff`.

The cutoff is the job's: the data set's "now" minus RETENTION_DAYS. The data set's own rows older than
that are set aside, and rows spread over the 90 days before the cutoff are added until exactly
`old_rows` are due; each run deletes them all, checks that nothing at or after the cutoff changed
(count and sum), and puts the data set's rows back. Every batch is timed: the goal (issue 4) is that no
single transaction takes over 1 s, while the naive DELETE is one transaction holding a million row
locks for its whole duration."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta
from typing import Any

from expensebot.categories import CATEGORIES
from expensebot_tools.bench import BenchContext, benchmark
from expensebot_tools.bench.dataset import (
    connect,
    restore_set_aside_rows,
    set_aside_rows_older_than,
    vacuum,
)

FILLER_DESCRIPTION = "bench: past the retention"
FILLER_SPAN_DAYS = 90

# Spread over the 90 days before the cutoff, oldest first (ids grow with time, as the bot writes them),
# cycling through the data set's users and categories.
_ADD_FILLERS = """
INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)
SELECT u.first_user + n %% u.users,
       (100 + (n * 7919) %% 500000) / 100.0,
       (%(categories)s::text[])[1 + n %% cardinality(%(categories)s::text[])],
       %(description)s,
       %(cutoff)s - make_interval(secs => %(span)s * (1 - n::float8 / %(count)s)),
       %(cutoff)s - make_interval(secs => %(span)s * (1 - n::float8 / %(count)s))
  FROM generate_series(0::bigint, %(count)s - 1) AS n,
       (SELECT min(user_id) AS first_user, count(*) AS users FROM users) AS u
"""


def _newer_than_cutoff(conn: Any, cutoff: datetime) -> tuple[int, Any]:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), COALESCE(sum(amount), 0) FROM expenses WHERE spent_at >= %s", (cutoff,))
        count, total = cur.fetchone()
    return int(count), total


def _older_than_cutoff(conn: Any, cutoff: datetime) -> int:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM expenses WHERE spent_at < %s", (cutoff,))
        return int(cur.fetchone()[0])


def _prepare(conn: Any, cutoff: datetime, old_rows: int) -> tuple[int, int]:
    """Exactly old_rows rows older than the cutoff: the data set's own (set aside first) and fillers."""
    own = set_aside_rows_older_than(conn, cutoff)
    fillers = max(0, old_rows - own)
    if fillers:
        with conn, conn.cursor() as cur:
            cur.execute(_ADD_FILLERS, {"categories": list(CATEGORIES), "description": FILLER_DESCRIPTION,
                                       "cutoff": cutoff, "span": FILLER_SPAN_DAYS * 86400.0, "count": fillers})
    vacuum(conn, "expenses")
    return own, fillers


def _check_untouched(conn: Any, cutoff: datetime, before: tuple[int, Any], how: str) -> None:
    after = _newer_than_cutoff(conn, cutoff)
    if after != before:
        raise AssertionError(f"{how} touched rows at or after the cutoff: (count, sum) {before} → {after}")
    left = _older_than_cutoff(conn, cutoff)
    if left:
        raise AssertionError(f"{how} left {left} rows older than the cutoff")


@benchmark("cleanup")
def run(ctx: BenchContext) -> None:
    """cleanup_old_expenses: 1M old rows in batches vs one DELETE (goal: no transaction over 1 s)"""
    try:
        from expensebot.jobs import cleanup
    except ImportError as exc:
        ctx.console.print(f"cleanup: not available (expensebot.jobs.cleanup: {exc})")
        ctx.record({"available": False, "reason": str(exc)})
        return

    runtime = ctx.runtime()
    retention = runtime.settings.retention_days
    cutoff = ctx.dataset.now - timedelta(days=retention)
    batch_size = getattr(runtime.settings, "cleanup_batch_size", cleanup.DEFAULT_BATCH_SIZE)
    old_rows = ctx.options.old_rows
    conn = connect(ctx.dataset.url, ctx.dataset.timezone)
    try:
        # Batched, through the job's own function.
        own, fillers = _prepare(conn, cutoff, old_rows)
        before = _newer_than_cutoff(conn, cutoff)
        durations: list[float] = []
        deleted = 0
        with ctx.progress() as progress:
            task = progress.add_task(f"batches of {batch_size:,}", total=old_rows)
            started = time.perf_counter()
            while True:
                batch_started = time.perf_counter()
                removed = cleanup.delete_expired_batch(runtime, cutoff, batch_size)
                durations.append(time.perf_counter() - batch_started)
                deleted += removed
                progress.advance(task, removed)
                if removed < batch_size:
                    break
            batched_seconds = time.perf_counter() - started
        _check_untouched(conn, cutoff, before, "delete_expired_batch")
        restore_set_aside_rows(conn)

        # Naive: one statement, one transaction.
        _prepare(conn, cutoff, old_rows)
        before = _newer_than_cutoff(conn, cutoff)
        ctx.console.print(f"naive: one DELETE of {old_rows:,} rows in one transaction ...")
        started = time.perf_counter()
        with runtime.db.transaction() as cur:
            cur.execute("DELETE FROM expenses WHERE spent_at < %s", (cutoff,))
            naive_deleted = cur.rowcount
        naive_seconds = time.perf_counter() - started
        _check_untouched(conn, cutoff, before, "the single DELETE")
    finally:
        restore_set_aside_rows(conn)
        conn.close()
        runtime.db.close()

    durations_sorted = sorted(durations)
    longest = durations_sorted[-1]
    p99 = durations_sorted[min(len(durations_sorted) - 1, int(len(durations_sorted) * 0.99))]
    ctx.record({
        "available": True,
        "cutoff": cutoff.isoformat(),
        "rows_due": own + fillers,
        "rows_of_the_data_set": own,
        "rows_added": fillers,
        "batch_size": batch_size,
        "rows_deleted": deleted,
        "transactions": len(durations),
        "total_seconds": round(batched_seconds, 2),
        "rows_per_second": round(deleted / batched_seconds),
        "median_transaction_seconds": round(statistics.median(durations), 4),
        "p99_transaction_seconds": round(p99, 4),
        "longest_transaction_seconds": round(longest, 4),
        "goal_no_transaction_over_1s": longest <= 1.0,
        "naive_rows_deleted": naive_deleted,
        "naive_transaction_seconds": round(naive_seconds, 2),
        "naive_rows_per_second": round(naive_deleted / naive_seconds),
        "longest_transaction_ratio": round(naive_seconds / longest, 1),
        "total_time_ratio": round(batched_seconds / naive_seconds, 2),
        "newer_rows_untouched": True,
    }, note="cleanup: longest_transaction_ratio = the naive DELETE's one transaction / the longest batch; "
             "total_time_ratio = batched total / naive")
