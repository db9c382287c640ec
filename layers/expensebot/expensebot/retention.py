"""Retention of the bookkeeping tables: the rows that turn a duplicate delivery into a no-op are kept as long
as a duplicate can still come, then pruned by the Sunday cleanup (jobs/cleanup.py), oldest first, in short
batches like the expenses.

| table | kept for (setting) | a row is never pruned while |
|---|---|---|
| processed_updates | PROCESSED_UPDATES_RETENTION_DAYS after it was processed | (always prunable after the retention) |
| notifications | NOTIFICATIONS_RETENTION_DAYS after its claim and after its send | its claim is `sending` |
| job_runs | JOB_RUNS_RETENTION_DAYS after its start | it is not finished, or it is its job's latest run |

Each setting has a floor (config.RETENTION_FLOORS) below which a pruned row could no longer stop a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from expensebot.bootstrap import Runtime
from expensebot.config import Settings
from expensebot.scheduling import Deadline

# As for the expenses: a batch waiting on a row lock longer than this gives up, and the run goes on later.
LOCK_TIMEOUT = "2s"


@dataclass(frozen=True)
class BookkeepingTable:
    name: str
    key: str  # the primary key, by which a batch's rows are deleted
    time_column: str  # the row's age, and the order of pruning (each has an index: migration 0008)
    setting: str  # the Settings field holding its retention in days
    # Which rows may go: SQL over the table aliased `t`, with {cutoff} for the table's cutoff parameter. One
    # predicate serves the cleanup's deletes and `ops status`'s count, so the two cannot disagree.
    prunable: str

    def retention_days(self, settings: Settings) -> int:
        return int(getattr(settings, self.setting))

    def prunable_where(self, cutoff_parameter: str = "cutoff") -> str:
        return self.prunable.format(cutoff=f"%({cutoff_parameter})s")

    def delete_batch(self) -> str:
        """Deletes at most %(batch_size)s prunable rows, the oldest first through the time column's index;
        SKIP LOCKED leaves a row someone is writing (a claim being confirmed) for next time, unwaited for.
        `= ANY(ARRAY(...))` makes the delete fetch the batch's rows by primary key: with `IN (...)` the
        planner hashed the batch and read the whole table for every batch (65 ms instead of 11 ms a batch of
        5,000 at 200,000 rows, growing with the table)."""
        return (
            f"DELETE FROM {self.name} WHERE {self.key} = ANY(ARRAY("
            f"SELECT t.{self.key} FROM {self.name} t WHERE {self.prunable_where()}"
            f" ORDER BY t.{self.time_column} LIMIT %(batch_size)s FOR UPDATE SKIP LOCKED))"
        )


BOOKKEEPING_TABLES = (
    BookkeepingTable(
        name="processed_updates",
        key="update_id",
        time_column="processed_at",
        setting="processed_updates_retention_days",
        prunable="t.processed_at < {cutoff}",
    ),
    BookkeepingTable(
        name="notifications",
        key="id",
        time_column="created_at",
        setting="notifications_retention_days",
        # A `sending` claim is a send in progress (or a crashed one whose redelivery will send it): kept. A
        # message that failed, was held back or was sent late in its life counts from its send, the latest
        # time it is known to have been alive. Listed statuses, so a status added later is kept until
        # someone decides about it.
        prunable=(
            "t.created_at < {cutoff} AND (t.sent_at IS NULL OR t.sent_at < {cutoff})"
            " AND t.status IN ('sent', 'dropped', 'failed', 'held')"
        ),
    ),
    BookkeepingTable(
        name="job_runs",
        key="id",
        time_column="started_at",
        setting="job_runs_retention_days",
        # Only finished runs, and never a job's latest: `ops schedules` and `ops doctor` show each job's last
        # run, however long ago its schedule was disabled. The job's latest start is a subquery per candidate
        # row (the planner walks started_at backwards to the job's newest run): 31 ms a batch of 5,000 at
        # 50,000 runs. Written as EXISTS (a newer run of the same job) the planner hash-joined the table with
        # itself on job instead: 24 s for the same batch.
        prunable=(
            "t.started_at < {cutoff} AND t.status IN ('succeeded', 'failed')"
            " AND t.started_at < (SELECT max(latest.started_at) FROM job_runs latest WHERE latest.job = t.job)"
        ),
    ),
)


def bookkeeping_cutoffs(slot: datetime, settings: Settings) -> dict[str, datetime]:
    """Per table, the instant before which its rows are past their retention, counted back from the slot."""
    return {table.name: slot - timedelta(days=table.retention_days(settings)) for table in BOOKKEEPING_TABLES}


def prune_batch(runtime: Runtime, table: BookkeepingTable, cutoff: datetime, batch_size: int) -> int:
    """One short transaction: deletes up to batch_size of the table's oldest prunable rows before cutoff."""
    with runtime.db.transaction() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cur.execute(table.delete_batch(), {"cutoff": cutoff, "batch_size": batch_size})
        return int(cur.rowcount)


def prune_until_done_or_deadline(
    runtime: Runtime, cutoffs: Mapping[str, datetime], deadline: Deadline, batch_size: int
) -> tuple[dict[str, int], bool]:
    """Prunes table after table, batch after batch; returns (rows deleted per table, whether rows may
    remain). Every call deletes at least one batch of each table it reaches, so a run that starts at its
    deadline still makes progress; the deadline is looked at between batches."""
    deleted: dict[str, int] = {}
    for table in BOOKKEEPING_TABLES:
        cutoff = cutoffs.get(table.name)
        if cutoff is None:
            continue
        deleted[table.name] = 0
        while True:
            removed = prune_batch(runtime, table, cutoff, batch_size)
            deleted[table.name] += removed
            if removed < batch_size:
                break
            if deadline.expired():
                return deleted, True
    return deleted, False


@dataclass(frozen=True)
class TableSize:
    table: str
    rows: int
    oldest: datetime | None
    retention_days: int
    prunable: int  # rows the cleanup would prune now (past retention, and not kept for a reason)


def table_sizes(runtime: Runtime) -> list[TableSize]:
    """Row count, oldest row and prunable rows of each bookkeeping table, in one statement (an exact count:
    with retention these tables stay small enough to count)."""
    now = runtime.clock.now()
    parts = [
        f"SELECT '{t.name}' AS name, count(*) AS total, min(t.{t.time_column}) AS oldest,"
        f" count(*) FILTER (WHERE {t.prunable_where(t.name)}) AS prunable FROM {t.name} t"
        for t in BOOKKEEPING_TABLES
    ]
    cutoffs = bookkeeping_cutoffs(now, runtime.settings)
    rows = {row["name"]: row for row in runtime.db.fetch_all(" UNION ALL ".join(parts), cutoffs)}
    return [
        TableSize(
            table=t.name,
            rows=int(rows[t.name]["total"]),
            oldest=rows[t.name]["oldest"],
            retention_days=t.retention_days(runtime.settings),
            prunable=int(rows[t.name]["prunable"]),
        )
        for t in BOOKKEEPING_TABLES
    ]
