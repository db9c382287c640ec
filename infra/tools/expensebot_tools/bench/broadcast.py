"""broadcast: 3,000 messages to 3,000 distinct chats through the real path, against the bound Telegram's
limit sets (3,000 / 30 per second = 100 s).

The messages are `debug_task` units with a chat each, enqueued by the task's own `delay_many`. Several
worker processes run at once, as concurrent Lambda invocations of the default queue's worker would: each
takes batches of ten, calls the worker function's handler from template.yaml with the SQS event, and deletes
what succeeded. The batches reach the workers directly (a multiprocessing queue, as Lambda's event source
mapping hands them over), with a held-back message's delayed copy coming back through moto's SQS server:
moto's ReceiveMessage costs more CPU per message than the whole worker path (broadcast_paid measures it), so
fed through moto alone this 2-core machine reaches about 25 messages/s with or without pacing, and the run
would measure the emulator, not the pacing. `BroadcastRun(feed="sqs")` still runs it that way. They pace
themselves only through PostgreSQL (pacing.py). The Telegram stand-in enforces Telegram's limits in real
time and answers 429 with retry_after. The same broadcast then runs with the shared pacing switched off
(TELEGRAM_PACING=false), for comparison. broadcast_paid.py runs the same machinery at the paid rate."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from expensebot_tools.bench import BenchContext, benchmark

WORKERS = 4  # the worker functions' MaximumConcurrency order of magnitude on this 2-core machine
RATE = 30.0
GIVE_UP_SECONDS = 600.0
QUEUE_DEPTH = 300


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _moto_server() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# What each worker process reports at its end (a multiprocessing Array of doubles, one per process): CPU
# seconds (user + sys, time.process_time) and wall seconds by where they went. The first invocation is apart:
# it imports the function's handler (a cold start), which a long-running Lambda pays once.
STATS = ("cpu_total", "cpu_loop", "first_invoke_cpu", "first_invoke_records", "handler_cpu", "handler_wall",
         "handler_records", "receive_cpu", "receive_wall", "delete_cpu", "delete_wall")


def _worker_process(database_url: str, telegram_base: str, env: dict[str, str], stop: Any, counts: Any,
                    stats: Any = None, quiet: bool = False, direct: Any = None) -> None:
    """One concurrent worker: the default queue's worker function, fed by its own receive loop. With
    `direct` (a multiprocessing queue of batches shaped like ReceiveMessage's answer) it takes its batches
    from there first, and from SQS only what the function itself queued (a held-back message's copy)."""
    os.environ.update(env)  # before the library is imported: its logger reads the level then
    if quiet:
        # The functions log a JSON line per task at the template's level, as in Lambda: still written (its
        # CPU is part of a message's cost) but not to the terminal, 20,000 of them over the progress bar.
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (the process's stdout until it ends)
    import queue
    from types import SimpleNamespace

    from expensebot.clock import SystemClock
    from expensebot_tools.local.stack import running_system
    from expensebot_tools.project.template import Template

    template = Template()
    telegram = SimpleNamespace(base_url=telegram_base)
    spent = dict.fromkeys(STATS, 0.0)
    with running_system(template=template, database_url=database_url, telegram=telegram,
                        clock=SystemClock()) as system:
        loop_started = time.process_time()
        first = True
        while not stop.is_set():
            cpu, wall = time.process_time(), time.perf_counter()
            received: list[dict[str, Any]] = []
            from_sqs = direct is None
            if direct is not None:
                try:
                    received = direct.get(timeout=0.2)
                except queue.Empty:
                    from_sqs = True
            if from_sqs:
                received = system.sqs.receive_message(
                    QueueUrl=system.queues.urls["DefaultQueue"], MaxNumberOfMessages=10,
                    WaitTimeSeconds=1 if direct is None else 0,
                    AttributeNames=["All"], MessageAttributeNames=["All"],
                ).get("Messages", [])
            spent["receive_cpu"] += time.process_time() - cpu
            spent["receive_wall"] += time.perf_counter() - wall
            if not received:
                continue
            cpu, wall = time.process_time(), time.perf_counter()
            response = system.invoke_worker("DefaultQueue", received)
            if first:
                spent["first_invoke_cpu"] = time.process_time() - cpu
                spent["first_invoke_records"] = len(received)
                first = False
            else:
                spent["handler_cpu"] += time.process_time() - cpu
                spent["handler_wall"] += time.perf_counter() - wall
                spent["handler_records"] += len(received)
            failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            cpu, wall = time.process_time(), time.perf_counter()
            if from_sqs:
                system.delete("DefaultQueue", [m for m in received if m["MessageId"] not in failed])
            elif failed:  # SQS would deliver them again after their visibility timeout; this queue at once
                direct.put([m for m in received if m["MessageId"] in failed])
            spent["delete_cpu"] += time.process_time() - cpu
            spent["delete_wall"] += time.perf_counter() - wall
            with counts.get_lock():
                counts.value += len(received)
        spent["cpu_loop"] = time.process_time() - loop_started
    spent["cpu_total"] = time.process_time()
    if stats is not None:
        stats[:] = [spent[name] for name in STATS]


def _direct_batch(run_name: str, chats: list[int]) -> list[dict[str, Any]]:
    """The debug_task units for these chats as ReceiveMessage would return them, built without SQS."""
    from expensebot.jobs.debug import DebugRequest, debug_task

    now = datetime.now(UTC)
    batch = []
    for chat in chats:
        message = debug_task.message(DebugRequest(chat_id=chat, request_id=f"{run_name}-{chat}"), at=now)
        batch.append({
            "MessageId": message.id, "ReceiptHandle": f"direct-{message.id}", "Body": message.model_dump_json(),
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(now.timestamp() * 1000))},
        })
    return batch


@dataclass(frozen=True)
class BroadcastRun:
    """One broadcast: how many chats, how many worker processes, at which of Telegram's rates."""

    name: str  # the dedupe keys' prefix: runs on one database never collide
    chats: int
    pacing: bool = True
    paid: bool = False  # TELEGRAM_PAID_BROADCAST=true: every send carries allow_paid_broadcast
    workers: int = WORKERS
    queue_depth: int = QUEUE_DEPTH
    feed_every: float = 0.5  # seconds between two top-ups of the queue
    first_chat: int = 10_000_001
    # "sqs": through moto's SQS server, as everywhere else; "direct": the feeder hands the workers their
    # batches through a multiprocessing queue, leaving moto out of the path (see broadcast_paid).
    feed: Literal["sqs", "direct"] = "sqs"
    quiet: bool = True  # the workers' log lines go to /dev/null instead of the terminal (written, as in Lambda)


def run_broadcast(ctx: BenchContext, database_url: str, run: BroadcastRun, *,
                   postgres_dir: Path | None = None) -> dict[str, Any]:
    saved = dict(os.environ)
    try:
        return _broadcast(ctx, database_url, run, postgres_dir)
    finally:  # whatever the run set in os.environ (the moto endpoint, the functions' variables) is undone
        os.environ.clear()
        os.environ.update(saved)


def _postgres_cpu(data_dir: Path | None) -> float | None:
    """CPU seconds PostgreSQL has used so far: the postmaster's own, its live children's, and (cutime,
    cstime) those of the children it has reaped, such as the backends of connections closed since."""
    if data_dir is None:
        return None
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text(encoding="utf-8").split()[0])
        ticks = os.sysconf("SC_CLK_TCK")

        def fields(pid: int) -> list[str]:
            # The command name may hold spaces; the fields after its closing parenthesis are fixed.
            return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()

        own = fields(postmaster)  # own[11:15]: utime, stime, cutime, cstime (stat fields 14-17)
        total = sum(int(value) for value in own[11:15])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text(encoding="utf-8").split()
        for child in children:
            try:
                total += sum(int(value) for value in fields(int(child))[11:13])
            except OSError:
                continue  # it ended meanwhile; it is reaped into cutime/cstime
        return total / ticks
    except (OSError, ValueError, IndexError):
        return None


def _broadcast(ctx: BenchContext, database_url: str, run: BroadcastRun, postgres_dir: Path | None) -> dict[str, Any]:
    from expensebot.bootstrap import build_runtime, set_runtime
    from expensebot.clock import SystemClock
    from expensebot.config import Settings
    from expensebot.jobs.debug import DebugRequest, debug_task
    from expensebot_tools.local.stack import LOCAL_BOT_TOKEN, LocalQueues, local_environment, sqs_client
    from expensebot_tools.local.telegram import TelegramStandIn
    from expensebot_tools.project.template import Template

    template = Template()
    # The stand-in's own defaults: 30/s, and 1,000/s for a send with allow_paid_broadcast.
    standin = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], accept_any_chat=True, global_rate=RATE)
    standin.start()
    try:
        with _moto_server() as endpoint:
            os.environ.update({**_AWS_ENV, "AWS_ENDPOINT_URL": endpoint})
            queues = LocalQueues.create(template, sqs_client())
            env = local_environment(template, queues, database_url=database_url,
                                    telegram_api_base=standin.base_url)
            env.update({**_AWS_ENV, "AWS_ENDPOINT_URL": endpoint,
                        "TELEGRAM_PACING": "true" if run.pacing else "false",
                        "TELEGRAM_PAID_BROADCAST": "true" if run.paid else "false",
                        "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"})
            os.environ.update(env)
            spawn = multiprocessing.get_context("spawn")
            stop, counts = spawn.Event(), spawn.Value("i", 0)
            stats = [spawn.Array("d", len(STATS)) for _ in range(run.workers)]
            direct = spawn.Queue() if run.feed == "direct" else None
            parent_cpu, postgres_cpu = time.process_time(), _postgres_cpu(postgres_dir)
            workers = [
                spawn.Process(target=_worker_process, args=(database_url, standin.base_url, env, stop, counts,
                                                            stats[number], run.quiet, direct))
                for number in range(run.workers)
            ]
            for worker in workers:
                worker.start()
            # moto's queue operations slow down with the queue's length (SQS's do not), so the feeder keeps
            # about queue_depth messages waiting ahead of the workers instead of enqueuing all at once.
            runtime = build_runtime(Settings(), clock=SystemClock())
            set_runtime(runtime)
            chat_ids = list(range(run.first_chat, run.first_chat + run.chats))
            started = time.monotonic()
            enqueued, seen = 0, 0
            delivered: set[int] = set()
            with ctx.progress() as progress:
                label = "paid broadcast" if run.paid else f"broadcast, pacing {'on' if run.pacing else 'off'}"
                task = progress.add_task(f"{label}, {run.workers} workers", total=run.chats)
                while len(delivered) < run.chats and time.monotonic() - started < GIVE_UP_SECONDS:
                    while enqueued < run.chats and enqueued - len(delivered) < run.queue_depth:
                        chunk = min(100, run.queue_depth)
                        if direct is not None:
                            for start in range(enqueued, min(run.chats, enqueued + chunk), 10):
                                direct.put(_direct_batch(run.name, chat_ids[start : min(start + 10, run.chats)]))
                        else:
                            debug_task.delay_many([DebugRequest(chat_id=chat, request_id=f"{run.name}-{chat}")
                                                   for chat in chat_ids[enqueued : enqueued + chunk]])
                        enqueued = min(run.chats, enqueued + chunk)
                    time.sleep(run.feed_every)
                    calls = standin.calls[seen:]  # the stand-in only ever appends
                    seen += len(calls)
                    delivered.update(c.params["chat_id"] for c in calls
                                     if c.method == "sendMessage" and c.status == 200)
                    progress.update(task, completed=len(delivered))
            set_runtime(None)
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():  # never left running past the benchmark
                    worker.terminate()
                    worker.join(timeout=5)
            if direct is not None:  # batches left over (a run that gave up) must not hold the parent's exit
                direct.close()
                direct.cancel_join_thread()
            parent_cpu = time.process_time() - parent_cpu
            time.sleep(0.2)  # the workers' backends end and are reaped into the postmaster's cutime
            postgres_end = _postgres_cpu(postgres_dir)
            return _outcome(run, standin.calls, counts.value, [list(s) for s in stats], parent_cpu,
                            None if postgres_cpu is None or postgres_end is None else postgres_end - postgres_cpu)
    finally:
        standin.stop()


def _outcome(run: BroadcastRun, all_calls: list[Any], received: int, stats: list[list[float]],
             parent_cpu: float, postgres_cpu: float | None) -> dict[str, Any]:
    """The run's figures: time, losses and duplicates as the stand-in saw them, and the CPU each part used."""
    calls = [c for c in all_calls if c.method == "sendMessage"]
    accepted = sorted(c.at for c in calls if c.status == 200)
    first_call = min((c.at for c in calls), default=None)
    sent = Counter(c.params["chat_id"] for c in calls if c.status == 200)
    last = accepted[-1] if accepted else None
    elapsed = (last - first_call).total_seconds() if last and first_call else float("nan")
    accepting = (last - accepted[0]).total_seconds() if accepted else float("nan")
    busiest = 0  # the most sends the stand-in accepted within any one second
    tail = 0
    for head, at in enumerate(accepted):
        while (at - accepted[tail]).total_seconds() >= 1.0:
            tail += 1
        busiest = max(busiest, head - tail + 1)
    # The middle 80 % of the sends: the rate once every worker runs and before the queue runs dry.
    low, high = len(accepted) // 10, len(accepted) * 9 // 10
    middle = (accepted[high - 1] - accepted[low]).total_seconds() if high - 1 > low else 0.0
    totals = {name: sum(worker[index] for worker in stats) for index, name in enumerate(STATS)}
    return {
        "seconds": round(elapsed, 1),
        "delivered": len(sent),
        "duplicates": sum(n - 1 for n in sent.values()),
        "lost": run.chats - len(sent),
        "answered_429": sum(1 for c in calls if c.status == 429),
        "records_received": received,
        "workers": run.workers,
        "feed": run.feed,
        "accepting_seconds": round(accepting, 2),
        "rate_per_second": round(len(sent) / accepting, 1) if accepting > 0 else None,
        "steady_rate_per_second": round((high - 1 - low) / middle, 1) if middle > 0 else None,
        "busiest_second": busiest,
        "sends_with_allow_paid_broadcast": sum(1 for c in calls if c.params.get("allow_paid_broadcast") is True),
        "parent_cpu_seconds": round(parent_cpu, 2),
        "postgres_cpu_seconds": None if postgres_cpu is None else round(postgres_cpu, 2),
        "worker_cpu": {name: round(value, 3) for name, value in totals.items()},
    }


@benchmark("broadcast", needs_dataset=False)
def broadcast(ctx: BenchContext) -> None:
    """3,000 chats through queue → concurrent workers → Telegram stand-in at 30/s, paced and unpaced."""
    from expensebot_tools.local.stack import EmbeddedPostgres, migrate_database

    server = EmbeddedPostgres()
    server.start()
    try:
        database_url = server.create_database("expensebot_broadcast")
        migrate_database(database_url, timezone="Europe/Moscow")
        chats = ctx.options.broadcast_chats
        paced = run_broadcast(ctx, database_url, BroadcastRun("paced", chats, feed="direct"))
        unpaced = run_broadcast(ctx, database_url, BroadcastRun("unpaced", chats, pacing=False, feed="direct"))
    finally:
        server.stop()
    bound = chats / RATE
    ctx.record(
        {
            "chats": chats,
            "workers": WORKERS,
            "bound_seconds": bound,
            "seconds": paced["seconds"],
            "over_bound_percent": round((paced["seconds"] / bound - 1) * 100, 1),
            "delivered": paced["delivered"],
            "duplicates": paced["duplicates"],
            "lost": paced["lost"],
            "answered_429": paced["answered_429"],
            "unpaced_seconds": unpaced["seconds"],
            "unpaced_answered_429": unpaced["answered_429"],
            "unpaced_duplicates": unpaced["duplicates"],
            "unpaced_lost": unpaced["lost"],
            "paced": paced,
            "unpaced": unpaced,
        },
        note=(
            f"Seconds run from the first send the stand-in saw to the last one it accepted; the bound is "
            f"{chats} / {RATE:.0f} per second. Pacing runs a little under the limit (PACING_SAFETY_MARGIN)."
        ),
    )
