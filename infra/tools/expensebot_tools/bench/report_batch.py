"""report_batch: month-end reports per second through one reports worker, with the batch's outbox against
a worker that sleeps through each chat's seconds.

A month's report is three messages to one private chat: its text, then the chart (sendPhoto), then the PDF
(sendDocument), and Telegram takes one message a second per private chat, so each report keeps its chat busy
for two seconds. The benchmark builds the real path on this machine: PostgreSQL embedded (migrated), moto's
SQS server, the Telegram stand-in enforcing Telegram's limits in real time (SystemClock), and the reports
worker function's handler from template.yaml called in this process on batches of ten received from the
reports queue, then deleting what succeeded, as Lambda's event source mapping does. The reports are real:
`send_monthly_report` builds each from the user's expenses and draws its chart and PDF with matplotlib.

The naive way, in the same run, on other users: the same messages received in batches of ten, and the
batch's records handed to the handler one after another, so that each waits for its chat before the next
starts, as every record did before the outbox (its photo and PDF waited in place, the worker sleeping).

CPU: the handler's own thread (time.thread_time around each invocation; the stand-in and moto answer from
threads of their own), the whole process's (time.process_time: the handler, moto, the stand-in) and
PostgreSQL's (from /proc). From the handler's CPU per report comes the model for a Lambda at the worker's
MemorySize (`_aws_model`)."""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from expensebot_tools.bench import BenchContext, benchmark
from expensebot_tools.bench.broadcast import _AWS_ENV, _moto_server, _postgres_cpu

BATCH_SIZE = 10  # the reports worker's BatchSize in template.yaml
PARTS = ("sendMessage", "sendPhoto", "sendDocument")  # a report's messages, in the order they must arrive
CHAT_SECONDS = 1.0  # Telegram: one message a second in a private chat
REPORT_CHAT_SECONDS = CHAT_SECONDS * (len(PARTS) - 1)  # what one report keeps its chat busy: two seconds
EXPENSES_PER_USER = 8
GIVE_UP_SECONDS = 300.0
# Users (and their chats) of each run: a run never meets another's dedupe keys or monthly_reports rows.
WARMUP_USER = 900_000_001
FIRST_USER = 910_000_001
NAIVE_FIRST_USER = 920_000_001
TIMEZONE = "Europe/Moscow"
LAMBDA_MB_PER_VCPU = 1769  # AWS: "at 1,769 MB, a function has the equivalent of one vCPU"
CATEGORIES = ("groceries", "cafe", "transport", "housing", "health", "entertainment")


def _report_month(now: datetime) -> date:
    """The month before this one (in the application's zone): a month that has ended, as on its last day."""
    from zoneinfo import ZoneInfo

    first = now.astimezone(ZoneInfo(TIMEZONE)).date().replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


def _add_users(database_url: str, users: list[int], month: date, seed: int) -> None:
    """Users with a handful of expenses each in the month, over several categories and days (a real chart)."""
    import psycopg2

    rng = random.Random(seed)
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        for user in users:
            cur.execute("INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (%s, %s, now(), now())"
                        " ON CONFLICT (user_id) DO NOTHING", (user, user))
            for _ in range(EXPENSES_PER_USER):
                day = rng.randint(1, 28)
                cur.execute(
                    "INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
                    " VALUES (%s, %s, %s, %s, %s, now())",
                    (user, round(rng.uniform(50, 5_000), 2), rng.choice(CATEGORIES), "bench",
                     f"{month:%Y-%m}-{day:02d} 12:00+03"),
                )
    conn.close()


def _enqueue(users: list[int], month: date) -> None:
    from expensebot.jobs.monthly_reports import ReportUnit, send_monthly_report

    send_monthly_report.delay_many([ReportUnit(user_id=user, chat_id=user, month=month) for user in users])


@dataclass
class BatchRun:
    """What one way of running the batches measured."""

    label: str
    users: list[int]
    batches: int = 0
    records: int = 0
    failed_records: int = 0
    handler_wall: float = 0.0  # seconds inside the handler's invocations, the worker's own time
    handler_cpu: float = 0.0  # CPU seconds of the handler's thread
    batch_walls: tuple[tuple[int, float], ...] = ()  # (records, seconds) per batch
    seconds: float = 0.0  # the whole run: receives, handler, deletes


def _run_batches(system: Any, run: BatchRun, step: Callable[[list[dict[str, Any]]], set[str]], progress: Any) -> None:
    """Receives batches of ten from the reports queue until it is empty, hands each to `step` (which returns
    the ids of its records that failed) and deletes the rest, as the event source mapping does."""
    queue_url = system.queues.urls["ReportsQueue"]
    task = progress.add_task(run.label, total=len(run.users))
    walls: list[tuple[int, float]] = []
    started = time.perf_counter()
    while time.perf_counter() - started < GIVE_UP_SECONDS:
        received = system.receive_raw("ReportsQueue", BATCH_SIZE)
        if not received:
            attributes = system.sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
            )["Attributes"]
            if not any(int(value) for value in attributes.values()):
                break
            time.sleep(0.2)  # a held-back copy, delayed: it comes back
            continue
        wall, cpu = time.perf_counter(), time.thread_time()
        failed_ids = step(received)
        walls.append((len(received), time.perf_counter() - wall))
        run.handler_cpu += time.thread_time() - cpu
        run.batches += 1
        run.records += len(received)
        run.failed_records += len(failed_ids)
        system.delete("ReportsQueue", [m for m in received if m["MessageId"] not in failed_ids])
        progress.update(task, advance=len(received))
    run.seconds = time.perf_counter() - started
    run.batch_walls = tuple(walls)
    run.handler_wall = sum(seconds for _, seconds in walls)


def _through_the_handler(system: Any) -> Callable[[list[dict[str, Any]]], set[str]]:
    def step(received: list[dict[str, Any]]) -> set[str]:
        response = system.invoke_worker("ReportsQueue", received)
        return {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}

    return step


def _one_record_at_a_time(system: Any) -> Callable[[list[dict[str, Any]]], set[str]]:
    """The worker before the outbox: the batch's records one after another, each waiting for its chat before
    the next starts. The handler gets them one at a time, so a record's outbox holds its own parts only and
    its flush sleeps through its chat's two seconds, as deliver() slept in place; a 429 or a failure is still
    settled by the worker as in the real batch."""
    handler = _through_the_handler(system)

    def step(received: list[dict[str, Any]]) -> set[str]:
        return set().union(*(handler([record]) for record in received))

    return step


def _deliveries(calls: list[Any], users: list[int]) -> dict[str, Any]:
    """What the stand-in saw of a run's chats: every report's three parts once each, in order, a second apart."""
    chats = set(users)
    mine = [c for c in calls if c.method in PARTS and int(c.params.get("chat_id", 0)) in chats]
    accepted = [c for c in mine if c.status == 200]
    per_chat: dict[int, list[Any]] = {}
    for call in sorted(accepted, key=lambda c: c.at):
        per_chat.setdefault(int(call.params["chat_id"]), []).append(call)
    sent = Counter((int(c.params["chat_id"]), c.method) for c in accepted)
    gaps = [(b.at - a.at).total_seconds() for chat_calls in per_chat.values()
            for a, b in itertools.pairwise(chat_calls)]
    in_order = sum(1 for chat in chats if [c.method for c in per_chat.get(chat, [])] == list(PARTS))
    refused = []  # each 429: which part, and how long after its chat's previous accepted part it arrived
    for call in (c for c in mine if c.status == 429):
        before = [c.at for c in per_chat.get(int(call.params["chat_id"]), []) if c.at <= call.at]
        refused.append({"method": call.method, "after_previous_seconds":
                        round((call.at - before[-1]).total_seconds(), 4) if before else None})
    return {
        "reports_complete": sum(1 for chat in chats if all(sent[chat, part] for part in PARTS)),
        "in_order": in_order,
        "lost": sum(1 for chat in chats for part in PARTS if not sent[chat, part]),
        "duplicates": sum(n - 1 for n in sent.values()),
        "answered_429": len(refused),
        "refused": refused,
        "min_gap_seconds": round(min(gaps), 3) if gaps else None,
        "spacing_ok": all(gap >= CHAT_SECONDS for gap in gaps),
    }


def _summary(run: BatchRun, calls: list[Any]) -> dict[str, Any]:
    reports = len(run.users)
    walls = sorted(seconds for _, seconds in run.batch_walls)
    # Batches of ten: not the short last one, nor a held-back copy coming back alone.
    full = [seconds for records, seconds in run.batch_walls if records == BATCH_SIZE]
    return {
        "reports": reports,
        "batches": run.batches,
        "records": run.records,
        "failed_records": run.failed_records,
        "seconds": round(run.seconds, 2),
        "handler_seconds": round(run.handler_wall, 2),
        "seconds_per_batch": round(run.handler_wall / run.batches, 2) if run.batches else None,
        "seconds_per_full_batch": round(sum(full) / len(full), 2) if full else None,
        "slowest_batch_seconds": round(walls[-1], 2) if walls else None,
        "reports_per_second": round(reports / run.handler_wall, 3) if run.handler_wall else None,
        "cpu_ms_per_report": round(1000 * run.handler_cpu / reports, 1) if reports else None,
        **_deliveries(calls, run.users),
    }


def _aws_model(cpu_ms: float, memory_mb: int) -> dict[str, Any]:
    """One reports worker at `memory_mb` in Lambda, from the handler's CPU per report measured here. With the
    outbox a batch's records run first (each rendering its report and sending its text), then the waiting
    parts: the last record's photo and PDF still wait their chat's two seconds after the records, so a batch
    takes about 10 × the CPU per report + 2 s. Rendering becomes the limit once 10 × the CPU per report
    passes those 2 s; the naive worker takes the CPU plus 2 s for every report."""
    share = min(1.0, memory_mb / LAMBDA_MB_PER_VCPU)
    lambda_ms = cpu_ms / share
    rendering = BATCH_SIZE * lambda_ms / 1000
    batch = rendering + REPORT_CHAT_SECONDS
    naive = lambda_ms / 1000 + REPORT_CHAT_SECONDS
    return {
        "memory_mb": memory_mb,
        "vcpu_share": round(share, 3),
        "cpu_ms_per_report": round(lambda_ms, 1),
        "batch_rendering_seconds": round(rendering, 2),
        "rendering_exceeds_chat_spacing": rendering > REPORT_CHAT_SECONDS,
        "batch_seconds": round(batch, 2),
        "reports_per_second": round(BATCH_SIZE / batch, 2),
        "rendering_bound_reports_per_second": round(1000 / lambda_ms, 2),
        "naive_reports_per_second": round(1 / naive, 3),
        "ratio": round(naive * BATCH_SIZE / batch, 1),
    }


def _reports_memory_mb() -> int:
    from expensebot_tools.project.template import Template

    template = Template()
    worker = next(s.function_id for s in template.subscriptions() if s.queue_id == "ReportsQueue")
    properties = template.functions[worker].properties
    return int(properties.get("MemorySize", template.globals.get("MemorySize", 128)))


@contextmanager
def _saved_environment() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:  # the moto endpoint and the functions' variables do not outlive the run
        os.environ.clear()
        os.environ.update(saved)


@benchmark("report_batch", needs_dataset=False)
def report_batch(ctx: BenchContext) -> None:
    """Month-end reports (text, chart, PDF) per second through one reports worker: batch outbox vs sleeping."""
    from expensebot.clock import SystemClock
    from expensebot_tools.local.stack import LOCAL_BOT_TOKEN, EmbeddedPostgres, migrate_database, running_system
    from expensebot_tools.local.telegram import TelegramStandIn
    from expensebot_tools.project.template import Template

    options = ctx.options
    users = list(range(FIRST_USER, FIRST_USER + options.report_users))
    naive_users = list(range(NAIVE_FIRST_USER, NAIVE_FIRST_USER + options.report_naive_users))
    month = _report_month(datetime.now(UTC))
    server = EmbeddedPostgres()
    server.start()
    standin = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], accept_any_chat=True)
    standin.start()
    try:
        database_url = server.create_database("expensebot_report_batch")
        migrate_database(database_url, timezone=TIMEZONE)
        _add_users(database_url, [WARMUP_USER, *users, *naive_users], month, options.seed)
        with _saved_environment(), _moto_server() as endpoint:
            os.environ.update({**_AWS_ENV, "AWS_ENDPOINT_URL": endpoint, "POWERTOOLS_LOG_LEVEL": "WARNING"})
            with running_system(template=Template(), database_url=database_url, telegram=standin,
                                clock=SystemClock()) as system, ctx.progress() as progress:
                # A first report imports matplotlib and loads the fonts (about a second): a Lambda pays that once
                # per environment, so it is kept out of both runs.
                _enqueue([WARMUP_USER], month)
                _run_batches(system, BatchRun("warm-up", [WARMUP_USER]), _through_the_handler(system), progress)
                _enqueue(users, month)
                outbox = BatchRun(f"{len(users)} reports, batch outbox", users)
                process_cpu, postgres_cpu = time.process_time(), _postgres_cpu(server.data_dir)
                _run_batches(system, outbox, _through_the_handler(system), progress)
                process_cpu = time.process_time() - process_cpu
                postgres_end = _postgres_cpu(server.data_dir)
                naive = BatchRun(f"{len(naive_users)} reports, one after another", naive_users)
                if naive_users:
                    _enqueue(naive_users, month)
                    _run_batches(system, naive, _one_record_at_a_time(system), progress)
    finally:
        standin.stop()
        server.stop()
    _record(ctx, _summary(outbox, standin.calls), _summary(naive, standin.calls) if naive_users else None,
            process_cpu, None if postgres_cpu is None or postgres_end is None else postgres_end - postgres_cpu)


def _record(ctx: BenchContext, fast: dict[str, Any], naive: dict[str, Any] | None, process_cpu: float,
            postgres_cpu: float | None) -> None:
    reports = fast["reports"]
    naive_rate = naive["reports_per_second"] if naive else None
    rate = fast["reports_per_second"]
    model = _aws_model(fast["cpu_ms_per_report"] or 0.0, _reports_memory_mb())
    ctx.record(
        {
            "reports": reports,
            "batches": fast["batches"],
            "seconds": fast["handler_seconds"],
            "seconds_per_batch": fast["seconds_per_batch"],
            "seconds_per_full_batch": fast["seconds_per_full_batch"],
            "slowest_batch_seconds": fast["slowest_batch_seconds"],
            "reports_per_second": rate,
            "naive_reports": naive["reports"] if naive else 0,
            "naive_seconds_per_full_batch": naive["seconds_per_full_batch"] if naive else None,
            "naive_reports_per_second": naive_rate,
            "ratio": round(rate / naive_rate, 1) if rate and naive_rate else None,
            "cpu_ms_per_report": fast["cpu_ms_per_report"],
            "naive_cpu_ms_per_report": naive["cpu_ms_per_report"] if naive else None,
            "process_cpu_ms_per_report": round(1000 * process_cpu / reports, 1) if reports else None,
            "postgres_cpu_ms_per_report": round(1000 * postgres_cpu / reports, 1)
            if reports and postgres_cpu is not None else None,
            "answered_429": fast["answered_429"] + (naive["answered_429"] if naive else 0),
            "duplicates": fast["duplicates"] + (naive["duplicates"] if naive else 0),
            "lost": fast["lost"] + (naive["lost"] if naive else 0),
            "failed_records": fast["failed_records"] + (naive["failed_records"] if naive else 0),
            "in_order": fast["in_order"] == reports and (naive is None or naive["in_order"] == naive["reports"]),
            "spacing_ok": fast["spacing_ok"] and (naive is None or naive["spacing_ok"]),
            "min_gap_seconds": fast["min_gap_seconds"],
            "aws_memory_mb": model["memory_mb"],
            "aws_cpu_ms_per_report": model["cpu_ms_per_report"],
            "aws_batch_seconds": model["batch_seconds"],
            "aws_reports_per_second": model["reports_per_second"],
            "aws_rendering_exceeds_chat_spacing": model["rendering_exceeds_chat_spacing"],
            "aws_naive_reports_per_second": model["naive_reports_per_second"],
            "aws_ratio": model["ratio"],
            "outbox": fast,
            "naive": naive,
            "aws_model": model,
        },
        note=_note(fast, model),
    )


def _note(fast: dict[str, Any], model: dict[str, Any]) -> str:
    full = fast["seconds_per_full_batch"]
    batch = f"a batch of ten took {full} s" if full else f"a batch took {fast['seconds_per_batch']} s"
    per_batch = BATCH_SIZE if full else fast["records"] / max(1, fast["batches"])
    return (
        "Seconds are the worker's (inside the handler's invocations), summed over its batches; the SQS receive "
        "and delete are the event source mapping's. CPU per report is the handler's thread alone (warm: a first "
        "report, matplotlib's import, ran before). Everything shares this machine's cores, so the figures here are "
        "a floor.\n"
        f"Here {batch} against {per_batch:.1f} × "
        f"{fast['cpu_ms_per_report']} ms of CPU + {REPORT_CHAT_SECONDS:.0f} s of chat spacing = "
        f"{per_batch * (fast['cpu_ms_per_report'] or 0) / 1000 + REPORT_CHAT_SECONDS:.2f} s.\n"
        f"AWS model (not measured): at {model['memory_mb']} MB a Lambda has {model['memory_mb']} / "
        f"{LAMBDA_MB_PER_VCPU} = {model['vcpu_share']} vCPU, so a report's CPU is {model['cpu_ms_per_report']} ms; "
        f"a batch renders for 10 × that = {model['batch_rendering_seconds']} s "
        f"({'more' if model['rendering_exceeds_chat_spacing'] else 'less'} than the {REPORT_CHAT_SECONDS:.0f} s of "
        f"chat spacing), then its last report's photo and PDF wait those {REPORT_CHAT_SECONDS:.0f} s: "
        f"{model['batch_seconds']} s a batch, {model['reports_per_second']} reports/s per worker (rendering alone "
        f"would allow {model['rendering_bound_reports_per_second']}/s); sleeping per report: "
        f"{model['naive_reports_per_second']}/s ({model['ratio']}×). Telegram's answer times are left out."
    )

