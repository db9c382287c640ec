"""broadcast_paid: the broadcast with TELEGRAM_PAID_BROADCAST=true, against the stand-in's paid rate of
1,000 messages/s (a send without allow_paid_broadcast is held to 30/s, and either beyond is answered 429).

The same path as the 30/s broadcast (broadcast.py): `debug_task` units on the default queue of moto's SQS
server, worker processes calling the worker function's handler, pacing through PostgreSQL, the stand-in
enforcing the limits in real time. What it reports beyond that benchmark is where the CPU goes, so that the
README can say how many concurrent workers 1,000/s needs in AWS: each worker process counts its CPU time
(user + sys) in the handler, in its SQS receive and in its deletes; the parent process (which runs moto's
server, the stand-in and the feeder in threads) and PostgreSQL (the postmaster and its backends) are counted
too. On this 2-core machine all of them share two cores, so the rate reached here is a floor, not what
Lambda reaches: the figure for AWS comes from the handler's CPU per message (see `_aws_model`).

The naive way is the ordinary broadcast at Telegram's free 30/s, timed in the same run on a smaller list."""

from __future__ import annotations

import math
import os
from typing import Any

from rich.table import Table

from expensebot_tools.bench import BenchContext, benchmark
from expensebot_tools.bench.broadcast import BroadcastRun, run_broadcast

PAID_RATE = 1000.0  # the stand-in's default paid rate, Telegram's for paid broadcasts
# moto's ReceiveMessage recomputes the queue's attributes for every message it considers (its retention
# check), so its cost grows with the queue's length: the SQS-fed run keeps only 60 waiting, topped up every
# 10 ms. The direct feed has no such cost and keeps more.
PAID_QUEUE_DEPTH = 60
DIRECT_QUEUE_DEPTH = 400
PAID_FEED_EVERY = 0.01

# The model for AWS (printed with the figures). https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html:
# "At 1,769 MB, a function has the equivalent of one vCPU (one vCPU-second of credits per second)", and CPU
# is allocated in proportion to memory below that.
LAMBDA_MB_PER_VCPU = 1769
# Assumed, not measured here: the Bot API's answer to sendMessage seen from an AWS region in Europe (its
# servers are in Europe); 50-150 ms is the range people report, and 100 ms the middle of it.
TELEGRAM_RTT_MS = (50.0, 100.0, 150.0)
# From the issue: a round trip to RDS through RDS Proxy costs about 0.3-1 ms.
DATABASE_RTT_MS = (0.3, 0.5, 1.0)
# Client round trips to PostgreSQL per message, counted in delivery.py and pacing.py at this commit: the claim
# with its slot, one statement in autocommit (1); the outcome, one statement in autocommit (1). Before issue 16
# it was ten (psycopg2 sends BEGIN as a round trip of its own): BEGIN, the claim, the bot row's upsert, the chat
# row's upsert, two UPDATEs, COMMIT; then BEGIN, UPDATE, COMMIT.
DATABASE_ROUND_TRIPS = 2


def _template_memory_mb() -> int:
    """The default queue's worker function's MemorySize in template.yaml (its own, or the Globals')."""
    from expensebot_tools.project.template import Template

    template = Template()
    worker = next(s.function_id for s in template.subscriptions() if s.queue_id == "DefaultQueue")
    properties = template.functions[worker].properties
    return int(properties.get("MemorySize", template.globals.get("MemorySize", 128)))


def _aws_model(handler_cpu_ms: float, memory_mb: int) -> dict[str, Any]:
    """Concurrent workers 1,000/s needs in AWS: workers = rate × the wall time one message takes a worker.
    One worker (one Lambda environment) handles its batch one message at a time, so its wall time per
    message is its CPU time at its share of a vCPU plus the time it waits on Telegram and PostgreSQL."""
    share = min(1.0, memory_mb / LAMBDA_MB_PER_VCPU)
    cpu_ms = handler_cpu_ms / share
    rows: dict[str, dict[str, float | None]] = {}
    for label, telegram_ms, database_ms in zip(("low", "mid", "high"), TELEGRAM_RTT_MS, DATABASE_RTT_MS, strict=True):
        wall_ms = cpu_ms + telegram_ms + DATABASE_ROUND_TRIPS * database_ms
        if math.isnan(wall_ms):  # no warm invocation measured (a list too short for every worker's second batch)
            rows[label] = {"wall_ms": None, "workers": None}
            continue
        rows[label] = {"wall_ms": round(wall_ms, 1), "workers": round(PAID_RATE * wall_ms / 1000)}
    return {"vcpu_share": round(share, 3), "lambda_cpu_ms": round(cpu_ms, 2), **rows}


@benchmark("broadcast_paid", needs_dataset=False)
def broadcast_paid(ctx: BenchContext) -> None:
    """A paid broadcast (allow_paid_broadcast, stand-in at 1,000/s): rate reached, CPU per message, workers for AWS."""
    from expensebot_tools.local.stack import EmbeddedPostgres, migrate_database

    options = ctx.options
    server = EmbeddedPostgres()
    server.start()
    try:
        database_url = server.create_database("expensebot_broadcast_paid")
        migrate_database(database_url, timezone="Europe/Moscow")
        # The worker path alone: the feeder hands the workers their batches (as Lambda's event source mapping
        # would), so moto's SQS server, which tops out near 60 messages/s on this machine, is out of the way.
        paid_runs = [
            run_broadcast(ctx, database_url, BroadcastRun(
                f"paid{workers}", options.paid_chats, paid=True, workers=workers, queue_depth=DIRECT_QUEUE_DEPTH,
                feed_every=PAID_FEED_EVERY, first_chat=20_000_001 + number * 1_000_000, quiet=True, feed="direct",
            ), postgres_dir=server.data_dir)
            for number, workers in enumerate(options.paid_workers)
        ]
        # The same through moto's SQS, on a shorter list: what limits the rate when the queue is emulated.
        through_sqs = run_broadcast(ctx, database_url, BroadcastRun(
            "paidsqs", options.paid_sqs_chats, paid=True, workers=options.paid_workers[0],
            queue_depth=PAID_QUEUE_DEPTH, feed_every=PAID_FEED_EVERY, first_chat=30_000_001, quiet=True,
        ), postgres_dir=server.data_dir)
        ordinary = run_broadcast(ctx, database_url,
                                 BroadcastRun("ordinary", options.paid_ordinary_chats, quiet=True, feed="direct"),
                                 postgres_dir=server.data_dir)
    finally:
        server.stop()
    _print_rows(ctx, [*paid_runs, through_sqs])
    best = max(paid_runs, key=lambda run: run["rate_per_second"] or 0.0)
    handler_cpu = sum(run["worker_cpu"]["handler_cpu"] for run in paid_runs)
    handler_records = sum(run["worker_cpu"]["handler_records"] for run in paid_runs)
    handler_wall = sum(run["worker_cpu"]["handler_wall"] for run in paid_runs)
    delivered = sum(run["delivered"] for run in paid_runs)
    worker_cpu = sum(run["worker_cpu"]["cpu_total"] for run in paid_runs)
    handler_cpu_ms = 1000 * handler_cpu / handler_records if handler_records else float("nan")
    memory_mb = _template_memory_mb()
    model = _aws_model(handler_cpu_ms, memory_mb)
    ordinary_rate = ordinary["rate_per_second"] or float("nan")
    all_parts = _all_parts_ms(best)
    ctx.record(
        {
            "chats_per_run": options.paid_chats,
            "rate_per_second": best["rate_per_second"],
            "steady_rate_per_second": best["steady_rate_per_second"],
            "workers_at_best": best["workers"],
            "busiest_second": max(run["busiest_second"] for run in paid_runs),
            "delivered": delivered,
            "duplicates": sum(run["duplicates"] for run in paid_runs),
            "lost": sum(run["lost"] for run in paid_runs),
            "answered_429": sum(run["answered_429"] for run in paid_runs),
            "sends_without_allow_paid_broadcast": delivered - sum(
                run["sends_with_allow_paid_broadcast"] for run in paid_runs),
            "worker_cpu_ms_per_message": round(1000 * worker_cpu / delivered, 2) if delivered else None,
            "handler_cpu_ms_per_message": round(handler_cpu_ms, 2),
            "handler_wall_ms_per_message": round(1000 * handler_wall / handler_records, 2) if handler_records else None,
            "parent_cpu_ms_per_message": _per_message(sum(r["parent_cpu_seconds"] for r in paid_runs), delivered),
            "postgres_cpu_ms_per_message": _postgres_ms(paid_runs, delivered),
            "sqs_fed_rate_per_second": through_sqs["rate_per_second"],
            "sqs_fed_parent_cpu_ms_per_message": _per_message(through_sqs["parent_cpu_seconds"],
                                                              through_sqs["delivered"]),
            "sqs_fed_lost": through_sqs["lost"],
            "sqs_fed_duplicates": through_sqs["duplicates"],
            "sqs_fed_answered_429": through_sqs["answered_429"],
            "all_parts_cpu_ms_per_message": all_parts,
            # What this machine could deliver were its cores all the broadcast's: the rate CPU allows.
            "cpu_ceiling_per_second_here": round((os.cpu_count() or 1) * 1000 / all_parts) if all_parts else None,
            "ordinary_rate_per_second": ordinary_rate,
            "ordinary_answered_429": ordinary["answered_429"],
            "ratio_paid_to_ordinary": round((best["rate_per_second"] or 0.0) / ordinary_rate, 1),
            "lambda_memory_mb": memory_mb,
            "aws_workers_for_1000_per_second": model["mid"]["workers"],
            "aws_workers_low": model["low"]["workers"],
            "aws_workers_high": model["high"]["workers"],
            "aws_model": model,
            "runs": paid_runs,
            "sqs_fed": through_sqs,
            "ordinary": ordinary,
        },
        note=_note(model, memory_mb, handler_cpu_ms),
    )


def _all_parts_ms(run: dict[str, Any]) -> float | None:
    """CPU per delivered message of every part on this machine: the workers (their receive loop, less the
    first, cold invocation), the parent (moto, the stand-in, the feeder) and PostgreSQL."""
    if not run["delivered"] or run["postgres_cpu_seconds"] is None:
        return None
    cpu = run["worker_cpu"]
    seconds = cpu["cpu_loop"] - cpu["first_invoke_cpu"] + run["parent_cpu_seconds"] + run["postgres_cpu_seconds"]
    return round(1000 * seconds / run["delivered"], 2)


def _per_message(seconds: float, delivered: int) -> float | None:
    return round(1000 * seconds / delivered, 2) if delivered else None


def _postgres_ms(runs: list[dict[str, Any]], delivered: int) -> float | None:
    seconds = [run["postgres_cpu_seconds"] for run in runs]
    if not delivered or any(value is None for value in seconds):
        return None
    return round(1000 * sum(seconds) / delivered, 2)


def _print_rows(ctx: BenchContext, runs: list[dict[str, Any]]) -> None:
    """Rate against worker processes, and where the CPU went (ms per delivered message)."""
    table = Table(title="paid broadcast: rate, and CPU per delivered message (ms) by worker processes",
                  title_justify="left")
    for column in ("feed", "workers", "msgs/s", "steady/s", "429", "lost", "dup", "handler ms", "receive ms",
                   "delete ms", "worker ms", "handler wall ms", "parent ms", "postgres ms", "all parts ms",
                   "CPU busy of 2"):
        table.add_column(column, justify="right")
    for run in runs:
        n = max(1, run["delivered"])
        cpu = run["worker_cpu"]
        postgres = run["postgres_cpu_seconds"]
        busy = (cpu["cpu_loop"] + run["parent_cpu_seconds"] + (postgres or 0.0)) / max(run["seconds"], 1e-9)
        table.add_row(
            run["feed"], str(run["workers"]), f"{run['rate_per_second']}", f"{run['steady_rate_per_second']}",
            str(run["answered_429"]), str(run["lost"]), str(run["duplicates"]),
            f"{1000 * cpu['handler_cpu'] / max(1.0, cpu['handler_records']):.2f}",
            f"{1000 * cpu['receive_cpu'] / n:.2f}", f"{1000 * cpu['delete_cpu'] / n:.2f}",
            f"{1000 * cpu['cpu_total'] / n:.2f}",
            f"{1000 * cpu['handler_wall'] / max(1.0, cpu['handler_records']):.2f}",
            f"{1000 * run['parent_cpu_seconds'] / n:.2f}",
            "–" if postgres is None else f"{1000 * postgres / n:.2f}", f"{_all_parts_ms(run)}", f"{busy:.2f}",
        )
    ctx.console.print(table)


def _note(model: dict[str, Any], memory_mb: int, handler_cpu_ms: float) -> str:
    return (
        "Measured on this machine; the rate is delivered messages over the seconds from the first to the last "
        "send the stand-in accepted (steady: the middle 80 % of them). Everything shares its 2 cores (workers, "
        "moto, the stand-in, PostgreSQL), so the rate here is bounded by CPU, not by Telegram's 1,000/s.\n"
        f"AWS model (assumptions, not measurements): workers = 1,000/s × wall time per message; wall = handler "
        f"CPU {handler_cpu_ms:.2f} ms (the first, cold invocation left out) / the CPU share of a {memory_mb} MB "
        f"Lambda ({memory_mb} / {LAMBDA_MB_PER_VCPU} MB per vCPU = {model['vcpu_share']}) = "
        f"{model['lambda_cpu_ms']} ms, + the Bot API's answer {TELEGRAM_RTT_MS[0]:.0f} / {TELEGRAM_RTT_MS[1]:.0f} "
        f"/ {TELEGRAM_RTT_MS[2]:.0f} ms (assumed), + {DATABASE_ROUND_TRIPS} PostgreSQL round trips at "
        f"{DATABASE_RTT_MS[0]} / {DATABASE_RTT_MS[1]} / {DATABASE_RTT_MS[2]} ms (RDS Proxy, from the issue) → "
        f"{model['low']['wall_ms']} / {model['mid']['wall_ms']} / {model['high']['wall_ms']} ms → "
        f"{model['low']['workers']} / {model['mid']['workers']} / {model['high']['workers']} concurrent workers. "
        "The SQS receive and delete are the event source mapping's in Lambda, not the function's."
    )
