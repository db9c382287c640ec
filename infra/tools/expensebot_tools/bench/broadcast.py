"""broadcast: 3,000 messages to 3,000 distinct chats through the real path, against the bound Telegram's
limit sets (3,000 / 30 per second = 100 s).

The messages are `debug_task` units with a chat each, on the default queue of an SQS emulated by moto's
server (over HTTP, so several processes share it), fed so that about 300 wait ahead of the workers (moto's
queue slows down with its length; SQS's does not). Several worker processes run at once, as concurrent
Lambda invocations of the default queue's worker would: each receives batches of ten, calls the worker
function's handler from template.yaml with the SQS event, and deletes what succeeded. They pace
themselves only through PostgreSQL (pacing.py). The Telegram stand-in enforces Telegram's limits in real
time and answers 429 with retry_after. The same broadcast then runs with the shared pacing switched off
(TELEGRAM_PACING=false), for comparison."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


def _worker_process(database_url: str, telegram_base: str, env: dict[str, str], stop: Any, counts: Any) -> None:
    """One concurrent worker: the default queue's worker function, fed by its own receive loop."""
    os.environ.update(env)  # before the library is imported: its logger reads the level then
    from types import SimpleNamespace

    from expensebot.clock import SystemClock
    from expensebot_tools.local.stack import running_system
    from expensebot_tools.project.template import Template

    template = Template()
    telegram = SimpleNamespace(base_url=telegram_base)
    with running_system(template=template, database_url=database_url, telegram=telegram,
                        clock=SystemClock()) as system:
        while not stop.is_set():
            received = system.sqs.receive_message(
                QueueUrl=system.queues.urls["DefaultQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=1,
                AttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not received:
                continue
            response = system.invoke_worker("DefaultQueue", received)
            failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            system.delete("DefaultQueue", [m for m in received if m["MessageId"] not in failed])
            with counts.get_lock():
                counts.value += len(received)


def _run_broadcast(ctx: BenchContext, database_url: str, run: str, *, pacing: bool) -> dict[str, Any]:
    saved = dict(os.environ)
    try:
        return _broadcast(ctx, database_url, run, pacing=pacing, chats=ctx.options.broadcast_chats)
    finally:  # whatever the run set in os.environ (the moto endpoint, the functions' variables) is undone
        os.environ.clear()
        os.environ.update(saved)


def _broadcast(ctx: BenchContext, database_url: str, run: str, *, pacing: bool, chats: int) -> dict[str, Any]:
    from expensebot.bootstrap import build_runtime, set_runtime
    from expensebot.clock import SystemClock
    from expensebot.config import Settings
    from expensebot.jobs.debug import DebugRequest, debug_task
    from expensebot_tools.local.stack import LOCAL_BOT_TOKEN, LocalQueues, local_environment, sqs_client
    from expensebot_tools.local.telegram import TelegramStandIn
    from expensebot_tools.project.template import Template

    template = Template()
    standin = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], accept_any_chat=True, global_rate=RATE)
    standin.start()
    try:
        with _moto_server() as endpoint:
            os.environ.update({**_AWS_ENV, "AWS_ENDPOINT_URL": endpoint})
            queues = LocalQueues.create(template, sqs_client())
            env = local_environment(template, queues, database_url=database_url,
                                    telegram_api_base=standin.base_url)
            env.update({**_AWS_ENV, "AWS_ENDPOINT_URL": endpoint, "TELEGRAM_PACING": "true" if pacing else "false",
                        "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"})
            os.environ.update(env)
            spawn = multiprocessing.get_context("spawn")
            stop, counts = spawn.Event(), spawn.Value("i", 0)
            workers = [
                spawn.Process(target=_worker_process, args=(database_url, standin.base_url, env, stop, counts))
                for _ in range(WORKERS)
            ]
            for worker in workers:
                worker.start()
            # moto's queue operations slow down with the queue's length (SQS's do not), so the feeder keeps
            # about QUEUE_DEPTH messages waiting ahead of the workers instead of enqueuing all at once.
            runtime = build_runtime(Settings(), clock=SystemClock())
            set_runtime(runtime)
            chat_ids = list(range(10_000_001, 10_000_001 + chats))
            started = time.monotonic()
            enqueued = 0
            delivered: set[int] = set()
            with ctx.progress() as progress:
                task = progress.add_task(f"broadcast, pacing {'on' if pacing else 'off'}", total=chats)
                while len(delivered) < chats and time.monotonic() - started < GIVE_UP_SECONDS:
                    while enqueued < chats and enqueued - len(delivered) < QUEUE_DEPTH:
                        debug_task.delay_many([DebugRequest(chat_id=chat, request_id=f"{run}-{chat}")
                                               for chat in chat_ids[enqueued : enqueued + 100]])
                        enqueued = min(chats, enqueued + 100)
                    time.sleep(0.5)
                    delivered = {c.params["chat_id"] for c in list(standin.calls)
                                 if c.method == "sendMessage" and c.status == 200}
                    progress.update(task, completed=len(delivered))
            set_runtime(None)
            seconds = max(
                (c.at for c in standin.calls if c.method == "sendMessage" and c.status == 200), default=None
            )
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
            calls = [c for c in standin.calls if c.method == "sendMessage"]
            first_call = min((c.at for c in calls), default=None)
            sent = Counter(c.params["chat_id"] for c in calls if c.status == 200)
            elapsed = (seconds - first_call).total_seconds() if seconds and first_call else float("nan")
            return {
                "seconds": round(elapsed, 1),
                "delivered": len(sent),
                "duplicates": sum(n - 1 for n in sent.values()),
                "lost": chats - len(sent),
                "answered_429": sum(1 for c in calls if c.status == 429),
                "records_received": counts.value,
            }
    finally:
        standin.stop()


@benchmark("broadcast", needs_dataset=False)
def broadcast(ctx: BenchContext) -> None:
    """3,000 chats through queue → concurrent workers → Telegram stand-in at 30/s, paced and unpaced."""
    from expensebot_tools.local.stack import EmbeddedPostgres, migrate_database

    server = EmbeddedPostgres()
    server.start()
    try:
        database_url = server.create_database("expensebot_broadcast")
        migrate_database(database_url, timezone="Europe/Moscow")
        paced = _run_broadcast(ctx, database_url, "paced", pacing=True)
        unpaced = _run_broadcast(ctx, database_url, "unpaced", pacing=False)
    finally:
        server.stop()
    chats = ctx.options.broadcast_chats
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
