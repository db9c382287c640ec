"""`expensebot ops`: what operators did with `celery inspect`, `celery purge`, `redis-cli LLEN` and Flower,
against SQS and the job-run ledger. It reads the functions' own configuration (DATABASE_URL, QUEUE_URL_*,
TELEGRAM_*; AWS_ENDPOINT_URL for a local moto server, which boto3 honours by itself).

- `tasks`: every registered task, its queue and its job (`celery inspect registered`).
- `queues`: per queue the messages waiting, in flight, delayed and in its DLQ (`LLEN`). The age of the
  oldest message is CloudWatch's ApproximateAgeOfOldestMessage, not a queue attribute; peeking would
  count as a receive and bring a message nearer its DLQ, so it is left to the dashboard.
- `status`: the queues, plus job runs in progress and the latest ones from the ledger
  (`celery inspect active/stats`), a 'running' run whose lease ran out marked as stale (its attempt died),
  the missed slots: failed or stale runs no later attempt has turned into a success, and months whose
  reports no run has sent; and the size of each bookkeeping table (rows, oldest row, rows past retention
  the cleanup would prune).
- `purge QUEUE [--dlq] [--yes]`: empties a queue, or its DLQ, after a confirmation.
- `dlq show QUEUE`: peeks at the DLQ's messages with the `task` and `error` attributes the worker wrote,
  making them visible again at once, so nothing is consumed.
- `dlq redrive QUEUE [--method auto|move|copy]`: moves the DLQ's messages back to their queue: SQS's
  StartMessageMoveTask (`move`), or receive → re-send → only then delete (`copy`), which loses nothing if
  it stops half way (a message re-sent but not yet deleted is delivered twice, and every task is
  idempotent). `auto` tries `move` and falls back to `copy` where it is unavailable (moto).
- `run JOB [--slot ISO]`: runs a job now through the ledger, in-process against the configured database
  and queues, or with `--function-name` through a Lambda invoke of the deployed job function.
- `send TASK --args JSON`: validates the arguments against the task's model and enqueues one unit.
- `schedules [disable|enable NAME]` (operations/schedules.py) and `doctor` (operations/doctor.py).
Every read command takes `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from expensebot_tools.console import CliError, opened_runtime, print_json, print_table

RECEIVE_BATCH = 10
# How long a message peeked by `dlq show`, or taken by a `copy` redrive, stays hidden if this command dies:
# short, so an interrupted command leaves the messages where they were a minute later.
PEEK_VISIBILITY_SECONDS = 60


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


# --- queues and status -----------------------------------------------------------------------------------


def queue_rows(runtime: Any) -> list[dict[str, Any]]:
    from expensebot.config import QUEUE_NAMES

    rows = []
    for queue in QUEUE_NAMES:
        url = runtime.settings.queue_url(queue)
        row: dict[str, Any] = {"queue": queue, "url": url}
        if not url:
            row["problem"] = f"no URL configured (QUEUE_URL_{queue.upper()})"
        else:
            try:
                depth = runtime.queues.depth(queue)
            except Exception as exc:  # a missing queue or DLQ is reported on its row, not as a crash
                row["problem"] = f"{type(exc).__name__}: {exc}"
            else:
                row.update(waiting=depth.waiting, in_flight=depth.in_flight, delayed=depth.delayed,
                           dead_letter=depth.dead_letter)
        rows.append(row)
    return rows


def _print_queues(rows: list[dict[str, Any]]) -> None:
    print_table(
        "Queues (SQS's approximate counts; age of the oldest message: CloudWatch ApproximateAgeOfOldestMessage)",
        ["queue", "waiting", "in flight", "delayed", "DLQ", "problem"],
        [[r["queue"], r.get("waiting", ""), r.get("in_flight", ""), r.get("delayed", ""), r.get("dead_letter", ""),
          r.get("problem", "")] for r in rows],
    )


def cmd_queues(args: argparse.Namespace) -> int:
    with opened_runtime() as runtime:
        rows = queue_rows(runtime)
    if args.json:
        print_json(rows)
    else:
        _print_queues(rows)
    return 0


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


# Slots that never succeeded: a run failed, or stale (its lease ran out), that no later attempt of the same
# slot turned into a success (a takeover reuses the slot's row, so a success replaces it here); and each
# month, since the monthly report job first ran, whose reports no succeeded run covered (its last-day run
# records `month`, a catch-up `caught_up`). Months are the session's, i.e. the application's zone.
_MISSED_SLOTS = """
SELECT job, slot, status, attempts, error,
       CASE WHEN status = 'failed' THEN 'failed' ELSE 'stale: its attempt stopped renewing the lease' END
           AS problem
  FROM job_runs
 WHERE status = 'failed'
    OR ({lease_ran_out})
UNION ALL
SELECT %(monthly_job)s, month + interval '1 month' - interval '4 hours',  -- the last day's 20:00 slot
       'no success', NULL, NULL,
       'the reports of ' || to_char(month, 'YYYY-MM') || ' never went out'
  FROM generate_series((SELECT date_trunc('month', min(slot)) FROM job_runs WHERE job = %(monthly_job)s),
                       date_trunc('month', %(now)s::timestamptz) - interval '1 month', interval '1 month') month
 WHERE NOT EXISTS (SELECT 1 FROM job_runs r
                    WHERE r.job = %(monthly_job)s AND r.status = 'succeeded'
                      AND to_char(month, 'YYYY-MM') IN (r.details ->> 'month', r.details ->> 'caught_up'))
 ORDER BY slot DESC, job, status
 LIMIT 100
"""


def missed_slot_rows(runtime: Any) -> list[dict[str, Any]]:
    from expensebot.jobs.monthly_reports import JOB as MONTHLY_REPORTS
    from expensebot.scheduling import lease_parameters, lease_ran_out

    params = {**lease_parameters(runtime), "monthly_job": MONTHLY_REPORTS}
    return [dict(row) for row in runtime.db.fetch_all(_MISSED_SLOTS.format(lease_ran_out=lease_ran_out()), params)]


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
    with opened_runtime() as runtime:
        queues = queue_rows(runtime)
        runs = job_run_rows(runtime, limit=args.limit)
        missed = missed_slot_rows(runtime)
        bookkeeping = bookkeeping_rows(runtime)
        tz = runtime.settings.tz
    if args.json:
        print_json({"queues": queues, "job_runs": runs, "missed_slots": missed, "bookkeeping": bookkeeping})
        return 0
    _print_queues(queues)
    _print_runs(runs, tz)
    _print_missed_slots(missed, tz)
    _print_bookkeeping(bookkeeping, tz)
    return 0


# --- purge and the DLQ -----------------------------------------------------------------------------------


def _queue_url(runtime: Any, queue: str, *, dead_letter: bool = False) -> str:
    from expensebot.config import QUEUE_NAMES

    if queue not in QUEUE_NAMES:
        raise CliError(f"unknown queue {queue!r}; queues are {', '.join(QUEUE_NAMES)}")
    url = runtime.queues.url(queue)
    return runtime.queues.dead_letter_url(url) if dead_letter else url


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}
    except EOFError:
        return False


def cmd_purge(args: argparse.Namespace) -> int:
    with opened_runtime() as runtime:
        url = _queue_url(runtime, args.queue, dead_letter=args.dlq)
        what = f"the {args.queue!r} queue's DLQ" if args.dlq else f"the {args.queue!r} queue"
        count = int(runtime.queues.client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
        if not args.yes and not _confirm(f"Delete every message (about {count}) in {what}?"):
            print("nothing purged")
            return 1
        runtime.queues.client.purge_queue(QueueUrl=url)
    print(f"purged {what} ({url}); it had about {count} message(s); SQS takes up to 60 s to finish")
    return 0


def _receive(client: Any, url: str, *, visibility: int, limit: int) -> list[dict[str, Any]]:
    return client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=min(RECEIVE_BATCH, limit), VisibilityTimeout=visibility,
        WaitTimeSeconds=0, AttributeNames=["All"], MessageAttributeNames=["All"],
    ).get("Messages", [])


def peek_messages(client: Any, url: str, *, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages, each made visible again before returning (none is consumed)."""
    seen: list[dict[str, Any]] = []
    try:
        while len(seen) < limit:
            batch = _receive(client, url, visibility=PEEK_VISIBILITY_SECONDS, limit=limit - len(seen))
            if not batch:
                break
            seen.extend(batch)
    finally:
        for start in range(0, len(seen), RECEIVE_BATCH):
            chunk = seen[start : start + RECEIVE_BATCH]
            client.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                         for i, m in enumerate(chunk)],
            )
    return seen


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return value.get("StringValue") if value else None


def dead_letter_rows(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for message in messages:
        task = _attribute(message, "task")
        if task is None:
            try:
                task = json.loads(message["Body"]).get("task")
            except (ValueError, AttributeError):
                task = None
        sent = int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
        rows.append({
            "message_id": message["MessageId"],
            "task": task,
            "error": _attribute(message, "error"),
            "sent_at": datetime.fromtimestamp(sent, UTC).isoformat() if sent else None,
            "receive_count": int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
            "body": message["Body"],
        })
    return rows


def cmd_dlq_show(args: argparse.Namespace) -> int:
    with opened_runtime() as runtime:
        url = _queue_url(runtime, args.queue, dead_letter=True)
        rows = dead_letter_rows(peek_messages(runtime.queues.client, url, limit=args.max))
    if args.json:
        print_json(rows)
        return 0
    print_table(
        f"DLQ of {args.queue!r}: {len(rows)} message(s) shown (none consumed)",
        ["message id", "task", "error", "sent", "receives", "body"],
        [[r["message_id"], r["task"] or "", r["error"] or "(failed too often: see the worker's logs)",
          r["sent_at"] or "", r["receive_count"], r["body"][:200]] for r in rows],
    )
    return 0


def redrive_by_copy(client: Any, dead_letter_url: str, queue_url: str, *, limit: int | None = None) -> int:
    """Receive from the DLQ, re-send to the queue, and only then delete from the DLQ what was re-sent.
    Stops at the count the DLQ held when it began, so a message failing again during the redrive is not
    redriven twice in one call. Returns how many messages moved."""
    if limit is None:
        limit = int(client.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
    moved = 0
    while moved < limit:
        batch = _receive(client, dead_letter_url, visibility=PEEK_VISIBILITY_SECONDS, limit=limit - moved)
        if not batch:
            break
        entries = []
        for i, message in enumerate(batch):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
            attributes = {k: v for k, v in message.get("MessageAttributes", {}).items() if k != "error"}
            if attributes:
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        sent = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        resent = {ok["Id"] for ok in sent.get("Successful", [])}
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch) if str(i) in resent]
        if done:
            client.delete_message_batch(QueueUrl=dead_letter_url, Entries=done)
        moved += len(done)
        if sent.get("Failed"):
            reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in sent["Failed"])
            raise CliError(f"{moved} moved, then SQS refused to re-send {len(sent['Failed'])}: {reasons}; "
                           "the rest are still in the DLQ: run the redrive again")
    return moved


def _queue_arn(client: Any, url: str) -> str:
    return str(client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    with opened_runtime() as runtime:
        client = runtime.queues.client
        queue_url = _queue_url(runtime, args.queue)
        dead_letter_url = runtime.queues.dead_letter_url(queue_url)
        if args.method in ("auto", "move"):
            try:
                task = client.start_message_move_task(SourceArn=_queue_arn(client, dead_letter_url),
                                                      DestinationArn=_queue_arn(client, queue_url))
            except (ClientError, NotImplementedError) as exc:
                if args.method == "move":
                    raise CliError(f"StartMessageMoveTask failed: {exc}; try --method copy") from exc
            else:
                print(f"redrive started by SQS (move task {task['TaskHandle'][:24]}…): "
                      f"{args.queue!r} DLQ → {args.queue!r}; `ops queues` shows it emptying")
                return 0
        moved = redrive_by_copy(client, dead_letter_url, queue_url)
    print(f"redrove {moved} message(s) from the {args.queue!r} DLQ back to {args.queue!r} (copied, then deleted)")
    return 0


# --- run and send ----------------------------------------------------------------------------------------


def _slot(text: str | None, tz: Any, now: datetime) -> datetime:
    if not text:
        return now.astimezone(tz).replace(microsecond=0)
    try:
        slot = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"--slot {text!r} is not an ISO date and time, e.g. 2026-03-10T09:00") from exc
    return slot if slot.tzinfo else slot.replace(tzinfo=tz)


def cmd_run(args: argparse.Namespace) -> int:
    from expensebot.scheduling import ScheduledInvocation, jobs, run_scheduled_job

    known = jobs()
    if args.job not in known:
        raise CliError(f"unknown job {args.job!r}; jobs are {', '.join(sorted(known))}")
    with opened_runtime() as runtime:
        slot = _slot(args.slot, runtime.settings.tz, runtime.clock.now())
        invocation = ScheduledInvocation(job=args.job, scheduled_time=slot, execution_id="expensebot-ops-run")
        if args.function_name:
            import boto3

            response = boto3.client("lambda").invoke(
                FunctionName=args.function_name, Payload=invocation.model_dump_json().encode())
            payload = json.loads(response["Payload"].read() or b"null")
            if response.get("FunctionError"):
                raise CliError(f"{args.function_name} failed: {payload}")
            outcome = payload
        else:
            outcome = run_scheduled_job(invocation, runtime=runtime).model_dump(mode="json")
    if args.json:
        print_json(outcome)
    elif outcome.get("status") == "duplicate":
        print(f"{args.job} for {slot.isoformat()}: already ran (or is running) for this slot; nothing done")
    else:
        print(f"{args.job} for {slot.isoformat()}: {outcome.get('status')}, run {outcome.get('run_id')}, "
              f"planned {outcome.get('planned')}, enqueued {outcome.get('enqueued')}"
              + (f", {json.dumps(outcome.get('details'), ensure_ascii=False)}" if outcome.get("details") else ""))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from expensebot.tasks import lookup

    task = lookup(args.task)
    try:
        task_args = task.args_model.model_validate_json(args.args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors())
        raise CliError(f"invalid --args for {task.name}: {problems}") from None
    with opened_runtime() as runtime:
        message_id = task.delay(task_args, runtime=runtime)
    print(f"sent {task.name} to the {task.queue!r} queue: message {message_id}")
    return 0


# --- the parser ------------------------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    from expensebot.errors import ExpenseBotError

    def guarded(func: Any) -> Any:
        def run(args: argparse.Namespace) -> int:
            try:
                return int(func(args))
            except (CliError, ExpenseBotError) as exc:
                print(f"expensebot ops {args.ops_command}: {exc}", file=sys.stderr)
                return 2

        return run

    ops = commands.add_parser("ops", help="operations: tasks, queues, job runs, DLQs (the seed's celery inspect)")
    sub = ops.add_subparsers(dest="ops_command", required=True)

    tasks = sub.add_parser("tasks", help="every registered task: its queue and job")
    tasks.add_argument("--json", action="store_true")
    tasks.set_defaults(func=guarded(cmd_tasks))

    queues = sub.add_parser("queues", help="per queue: waiting, in flight, delayed, DLQ")
    queues.add_argument("--json", action="store_true")
    queues.set_defaults(func=guarded(cmd_queues))

    status = sub.add_parser("status", help="the queues, and job runs in progress and latest")
    status.add_argument("--limit", type=int, default=20, help="latest runs to show (default 20)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=guarded(cmd_status))

    purge = sub.add_parser("purge", help="delete every message in a queue (or its DLQ)")
    purge.add_argument("queue")
    purge.add_argument("--dlq", action="store_true", help="purge the queue's DLQ instead")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(func=guarded(cmd_purge))

    dlq = sub.add_parser("dlq", help="a queue's dead-letter queue")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    show = dlq_sub.add_parser("show", help="peek at the DLQ's messages and their errors (none consumed)")
    show.add_argument("queue")
    show.add_argument("--max", type=int, default=50, help="messages to show (default 50)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=guarded(cmd_dlq_show))
    redrive = dlq_sub.add_parser("redrive", help="move the DLQ's messages back to their queue")
    redrive.add_argument("queue")
    redrive.add_argument("--method", choices=("auto", "move", "copy"), default="auto",
                         help="move: SQS StartMessageMoveTask; copy: receive, re-send, delete; auto: move, else copy")
    redrive.set_defaults(func=guarded(cmd_dlq_redrive))

    run = sub.add_parser("run", help="run a job now (through the run ledger)")
    run.add_argument("job")
    run.add_argument("--slot", help="the scheduled time to run for (ISO; default now; no zone: the app's zone)")
    run.add_argument("--function-name", help="invoke this deployed job function instead of running in-process")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=guarded(cmd_run))

    send = sub.add_parser("send", help="enqueue one unit of a task")
    send.add_argument("task")
    send.add_argument("--args", default="{}", help="the task's arguments as JSON (validated first)")
    send.set_defaults(func=guarded(cmd_send))

    from expensebot_tools.operations.dashboard import add_parser as add_dashboard_parser
    from expensebot_tools.operations.doctor import add_parser as add_doctor_parser
    from expensebot_tools.operations.schedules import add_parser as add_schedules_parser

    add_schedules_parser(sub, guarded)
    add_doctor_parser(sub, guarded)
    add_dashboard_parser(sub, guarded)
