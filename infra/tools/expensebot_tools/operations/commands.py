"""`expensebot ops`: what operators did with `celery inspect`, `celery purge`, `redis-cli LLEN` and Flower,
against SQS and the job-run ledger. It reads the functions' own configuration (DATABASE_URL, QUEUE_URL_*,
TELEGRAM_*; AWS_ENDPOINT_URL for a local moto server, which boto3 honours by itself).

- `tasks`: every registered task, its queue and its job (`celery inspect registered`).
- `queues [pause|resume QUEUE]` and `purge` (operations/queues.py): every queue's depth and consumer, a
  worker stopped and started, a queue emptied.
- `status`: the queues, plus job runs in progress and the latest ones from the ledger
  (`celery inspect active/stats`), a 'running' run whose lease ran out marked as stale (its attempt died),
  the missed slots: failed or stale runs no later attempt has turned into a success, and months whose
  reports no run has sent; and the size of each bookkeeping table (rows, oldest row, rows past retention
  the cleanup would prune).
- `dlq show|retry|drop|redrive` (operations/dlq.py): the seven DLQs, per message.
- `run JOB [--slot ISO | --at TIME]` and `send TASK --args JSON` (operations/runs.py), `history`
  (operations/history.py), `logs` (operations/logs.py), `schedules [disable|enable NAME]`
  (operations/schedules.py) and `doctor` (operations/doctor.py).
Every read command takes `--json`.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from expensebot_tools.console import print_json, print_table
from expensebot_tools.operations.ledger import missed_slot_rows

# --- tasks ----------------------------------------------------------------------------------------------


def task_rows() -> list[dict[str, Any]]:
    from expensebot.scheduling import jobs
    from expensebot.tasks import registry

    known_jobs = jobs()
    rows = []
    for name, task in sorted(registry().items()):
        job = known_jobs.get(task.job) if task.job else None
        rows.append({"task": name, "queue": task.queue, "job": task.job, "schedule": job.schedule if job else None,
                     "description": task.description})
    return rows


def cmd_tasks(args: argparse.Namespace) -> int:
    rows = task_rows()
    if args.json:
        print_json(rows)
        return 0
    print_table("Registered tasks", ["task", "queue", "job", "job schedule", "description"],
                [[r["task"], r["queue"], r["job"] or "", r["schedule"] or "", r["description"]] for r in rows])
    return 0


# --- status ----------------------------------------------------------------------------------------------


_RUNS = """
SELECT id, job, slot, status, attempts, started_at, finished_at,
       EXTRACT(EPOCH FROM (finished_at - started_at))::float AS duration_seconds,
       planned, enqueued, details, error,
       {lease_ran_out} AS stale
  FROM job_runs
 WHERE id IN (SELECT id FROM job_runs WHERE status = 'running'
              UNION ALL
              (SELECT id FROM job_runs ORDER BY started_at DESC LIMIT %(limit)s))
 ORDER BY started_at DESC
"""


def job_run_rows(runtime: Any, *, limit: int) -> list[dict[str, Any]]:
    """Runs in progress and the latest `limit` runs; a run 'running' whose lease ran out is stale (its
    function died: the seed's WorkerLostError) and the slot's next delivery takes it over."""
    from expensebot.scheduling import lease_parameters, lease_ran_out

    params = {**lease_parameters(runtime), "limit": limit}
    return [dict(row) for row in runtime.db.fetch_all(_RUNS.format(lease_ran_out=lease_ran_out()), params)]


def _print_missed_slots(rows: list[dict[str, Any]], tz: Any) -> None:
    print_table(
        "Missed slots: never succeeded (`ops run JOB --slot SLOT` runs one; a month's reports are also caught "
        "up by the next 20:00 run)",
        ["job", "slot", "status", "attempts", "problem", "error"],
        [[r["job"], _when(r["slot"], tz), r["status"], r["attempts"], r["problem"], r["error"]] for r in rows],
    )


def _when(value: datetime | None, tz: Any) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _print_runs(rows: list[dict[str, Any]], tz: Any) -> None:
    def status(row: dict[str, Any]) -> str:
        return "running (stale: worker lost?)" if row["stale"] else row["status"]

    def details(row: dict[str, Any]) -> str:
        text = ", ".join(f"{k}={v}" for k, v in (row["details"] or {}).items())
        return f"{text}; error: {row['error']}" if row["error"] else text

    print_table(
        f"Job runs: in progress and latest (times in {tz.key})",
        ["id", "job", "slot", "status", "attempts", "started", "duration s", "planned", "enqueued", "details"],
        [[r["id"], r["job"], _when(r["slot"], tz), status(r), r["attempts"], _when(r["started_at"], tz),
          "" if r["duration_seconds"] is None else f"{r['duration_seconds']:.1f}", r["planned"], r["enqueued"],
          details(r)] for r in rows],
    )


def bookkeeping_rows(runtime: Any) -> list[dict[str, Any]]:
    """Each bookkeeping table's rows, oldest row, retention, and the rows the cleanup would prune now: a count
    that stays high after a Sunday says the cleanup is not keeping up (or not running)."""
    from dataclasses import asdict

    from expensebot.retention import table_sizes

    return [asdict(size) for size in table_sizes(runtime)]


def _print_bookkeeping(rows: list[dict[str, Any]], tz: Any) -> None:
    print_table(
        f"Bookkeeping tables, pruned by the Sunday cleanup (times in {tz.key})",
        ["table", "rows", "oldest row", "retention days", "prunable now"],
        [[r["table"], r["rows"], _when(r["oldest"], tz), r["retention_days"], r["prunable"]] for r in rows],
    )


def cmd_status(args: argparse.Namespace) -> int:
    from expensebot_tools.operations.queues import operations, print_queues, queue_rows

    with operations() as ops:
        runtime = ops.runtime
        queues = queue_rows(ops)
        runs = job_run_rows(runtime, limit=args.limit)
        missed = missed_slot_rows(runtime)
        bookkeeping = bookkeeping_rows(runtime)
        tz = runtime.settings.tz
    if args.json:
        print_json({"queues": queues, "job_runs": runs, "missed_slots": missed, "bookkeeping": bookkeeping})
        return 0
    print_queues(queues)
    _print_runs(runs, tz)
    _print_missed_slots(missed, tz)
    _print_bookkeeping(bookkeeping, tz)
    return 0


# --- the parser ------------------------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    ops = commands.add_parser("ops", help="operations: tasks, queues, job runs, DLQs (the seed's celery inspect)")
    sub = ops.add_subparsers(dest="ops_command", required=True)

    tasks = sub.add_parser("tasks", help="every registered task: its queue and job")
    tasks.add_argument("--json", action="store_true", help="the tasks as JSON")
    tasks.set_defaults(func=cmd_tasks)

    status = sub.add_parser("status", help="the queues, and job runs in progress and latest")
    status.add_argument("--limit", type=int, default=20, help="latest runs to show (default 20)")
    status.add_argument("--json", action="store_true", help="queues, runs, missed slots and bookkeeping as JSON")
    status.set_defaults(func=cmd_status)

    from expensebot_tools.operations.dashboard import add_parser as add_dashboard_parser
    from expensebot_tools.operations.dlq import add_parser as add_dlq_parser
    from expensebot_tools.operations.doctor import add_parser as add_doctor_parser
    from expensebot_tools.operations.history import add_parser as add_history_parser
    from expensebot_tools.operations.logs import add_parser as add_logs_parser
    from expensebot_tools.operations.queues import add_parser as add_queues_parser
    from expensebot_tools.operations.runs import add_parser as add_runs_parser
    from expensebot_tools.operations.schedules import add_parser as add_schedules_parser

    add_queues_parser(sub)
    add_dlq_parser(sub)
    add_runs_parser(sub)
    add_history_parser(sub)
    add_schedules_parser(sub)
    add_logs_parser(sub)
    add_doctor_parser(sub)
    add_dashboard_parser(sub)
