"""planners: for each job, the time its planner takes to find the work on the whole data set, and how fast
its units go through `Task.delay_many` (SendMessageBatch, ten to a call) into SQS.

SQS is moto's server (`moto.server.ThreadedMotoServer`) on a free local port, reached over HTTP by the
application's own boto3 client, as Lambda reaches SQS: the throughput includes a real HTTP round trip per
call of ten, but moto's speed, not AWS's. moto recounts the whole queue on every message it accepts (its
sends slow down as the queue grows, which SQS's do not), so units go in chunks of ENQUEUE_CHUNK and each
chunk is received and deleted again before the next, outside the timing. The queues are created from
template.yaml. A job whose module is not there yet is shown as "not available"."""

from __future__ import annotations

import importlib
import inspect
import logging
import socket
import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rich.table import Table

from expensebot_tools.bench import BenchContext, benchmark
from expensebot_tools.bench.explain import captured_statements, print_plans

TIMED_RUNS = 3
ENQUEUE_CHUNK = 100


@dataclass(frozen=True)
class Planner:
    job: str
    module: str
    function: str


PLANNERS = (
    Planner("check_budget_limits", "expensebot.jobs.budget_limits", "plan_budget_alerts"),
    Planner("send_monthly_reports", "expensebot.jobs.monthly_reports", "plan_monthly_reports"),
    Planner("process_recurring_payments", "expensebot.jobs.recurring_payments", "plan_recurring_payments"),
    Planner("send_daily_admin_report", "expensebot.jobs.admin_report", "gather_admin_stats"),
    Planner("cleanup_old_expenses", "expensebot.jobs.cleanup", "count_expired"),
)


def planner_arguments(fn: Any, runtime: Any, now: Any) -> dict[str, Any]:
    """The planner's arguments, by their names, as its job passes them at the data set's "now"."""
    from expensebot.periods import month_start

    local = now.astimezone(runtime.settings.tz)
    known = {
        "as_of": now, "now": now, "slot": now,
        "today": local.date(),
        "month": month_start(now, runtime.settings.tz).date(),
        "cutoff": now - timedelta(days=runtime.settings.retention_days),
    }
    arguments: dict[str, Any] = {}
    for position, (name, parameter) in enumerate(inspect.signature(fn).parameters.items()):
        if position == 0:
            continue  # the runtime
        if name in known:
            arguments[name] = known[name]
        elif parameter.default is inspect.Parameter.empty:
            raise LookupError(f"{fn.__name__} takes {name!r}, which this benchmark does not know how to give")
    return arguments


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@benchmark("planners")
def run(ctx: BenchContext) -> None:
    """every job's planner on the whole data set, and enqueue throughput into SQS (moto server)"""
    from moto.server import ThreadedMotoServer

    from expensebot.tasks import registry
    from expensebot_tools.local.stack import LocalQueues, environment, sqs_client
    from expensebot_tools.project.template import Template

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1"}
    rows: list[dict[str, Any]] = []
    try:
        with environment(credentials):
            sqs = sqs_client(endpoint)
            template = Template()
            queues = LocalQueues.create(template, sqs, prefix="expensebot-bench-")
            # The queue URLs as the template hands them to the functions (QUEUE_URL_NOTIFICATIONS, ...).
            urls = {name: value for name, value in template.environment(None, queues.resolver(template)).items()
                    if name.startswith("QUEUE_URL_")}
            runtime = ctx.runtime(SQS_ENDPOINT_URL=endpoint, **urls)
            try:
                tasks = registry()
                for planner in PLANNERS:
                    rows.append(_measure(ctx, runtime, planner, tasks, sqs))
            finally:
                runtime.db.close()
    finally:
        server.stop()

    table = Table(title="planners: time to find the work (median of the timed runs after a first one) and "
                        "enqueue throughput", title_justify="left")
    for column in ("job", "planner", "units", "first s", "median s", "enqueued", "msg/s"):
        table.add_column(column, justify="left" if column in ("job", "planner") else "right", no_wrap=True)
    for row in rows:
        if not row["available"]:
            table.add_row(row["job"], row["planner"], "not available", "", "", "", "", style="dim")
            continue
        table.add_row(row["job"], row["planner"], _text(row["units"]), f"{row['first_seconds']:.3f}",
                      f"{row['median_seconds']:.3f}", _text(row.get("enqueued")), _text(row.get("messages_per_second")))
    ctx.console.print(table)
    unavailable = [row for row in rows if not row["available"]]
    for row in unavailable:
        ctx.console.print(f"{row['job']}: not available ({row['reason']})")
    enqueue_rates = [row["messages_per_second"] for row in rows if row.get("messages_per_second")]
    ctx.record({
        "sqs": "moto.server.ThreadedMotoServer over HTTP",
        "planners_available": sum(1 for row in rows if row["available"]),
        "slowest_planner_seconds": max((row["median_seconds"] for row in rows if row["available"]), default=None),
        "enqueue_messages_per_second": round(statistics.median(enqueue_rates), 1) if enqueue_rates else None,
        "planners": rows,
    })


def _drain(sqs: Any, url: str, count: int) -> None:
    """Takes `count` messages off the queue (moto allows one PurgeQueue a minute, as SQS does)."""
    while count > 0:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            raise AssertionError(f"{count} message(s) expected in {url} are not there")
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        count -= len(messages)


def _text(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"


def _measure(ctx: BenchContext, runtime: Any, planner: Planner, tasks: dict[str, Any], sqs: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"job": planner.job, "planner": planner.function, "available": False}
    try:
        module = importlib.import_module(planner.module)
        fn = getattr(module, planner.function)
        arguments = planner_arguments(fn, runtime, ctx.dataset.now)
    except (ImportError, AttributeError, LookupError) as exc:
        row["reason"] = str(exc)
        return row
    row["available"] = True
    row["arguments"] = {name: str(value) for name, value in arguments.items()}

    started = time.perf_counter()
    result = fn(runtime, **arguments)
    row["first_seconds"] = round(time.perf_counter() - started, 4)
    timings = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        fn(runtime, **arguments)
        timings.append(time.perf_counter() - started)
    row["median_seconds"] = round(statistics.median(timings), 4)
    row["units"] = len(result) if isinstance(result, list) else None
    if ctx.options.explain:
        with captured_statements(runtime.db) as statements:
            fn(runtime, **arguments)
        print_plans(ctx.console, runtime.db, planner.function, statements)

    if isinstance(result, list) and result:
        job_tasks = [t for t in tasks.values()
                     if t.job == getattr(module, "JOB", planner.job) and isinstance(result[0], t.args_model)]
        if len(job_tasks) == 1:
            units = result[: ctx.options.enqueue_sample]
            enqueue_task = job_tasks[0]
            url = runtime.queues.url(enqueue_task.queue)
            sent, seconds = 0, 0.0
            with ctx.progress() as progress:
                bar = progress.add_task(f"{enqueue_task.name}.delay_many", total=len(units))
                for start in range(0, len(units), ENQUEUE_CHUNK):
                    chunk = units[start : start + ENQUEUE_CHUNK]
                    started = time.perf_counter()
                    sent_now = enqueue_task.delay_many(chunk, runtime=runtime)
                    seconds += time.perf_counter() - started
                    waiting = int(sqs.get_queue_attributes(
                        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                        "ApproximateNumberOfMessages"])
                    if sent_now != len(chunk) or waiting != len(chunk):
                        raise AssertionError(f"{planner.job}: {len(chunk)} units, {sent_now} sent, {waiting} queued")
                    _drain(sqs, url, len(chunk))
                    sent += sent_now
                    progress.advance(bar, len(chunk))
            row.update(task=enqueue_task.name, enqueued=sent, enqueue_seconds=round(seconds, 3),
                       messages_per_second=round(sent / seconds, 1) if seconds > 0 else None)
    return row
