"""pacing: how many send slots the bot's workers can reserve per second when PostgreSQL is a network away.

N worker processes (1, 4, 16, 64) each loop for a few seconds doing what a delivery does before a send:
`delivery.claim_and_reserve` for a new notification (its claim and its slot in one all-or-nothing step),
to chats taken round-robin from 20,000 private chats and, every GROUP_EVERY-th reservation, from 200 groups.
The round starts over every 1.05 s for private chats and every 3.05 s for groups, just after their limits, so
chats come back as soon as they are free again, and the per-chat and the group spacing take part.

PostgreSQL is reached over TCP, directly (RTT 0) or through a proxy that adds the round-trip time
(delay_proxy.py: this kernel has no netem). Each cell runs the reservation of today's main ("old": the bot's
row locked by an upsert and held across the chat's upsert, two updates and the commit, four more client round
trips) and the library's `delivery.claim_and_reserve` ("new") one after the other, on emptied pacing tables.

Per cell: reservations per second (granted slots / wall time), the lock wait (pg_stat_activity sampled
every 10 ms for the workers' sessions waiting on a lock; by Little's law the mean wait per reservation is
the mean number of waiting sessions / the throughput), the client's p50/p99 latency of one call, the RTT
measured through the proxy (median of SELECT 1), the proxy's CPU use, and a check of the granted slots:
per bot no two closer than the interval, per private chat and per group no two closer than theirs."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import socket
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table

from expensebot_tools.bench import BenchContext, benchmark
from expensebot_tools.bench.delay_proxy import DelayProxy

DATABASE = "expensebot_pacing"
BOT_TOKEN = "123456:PACING-BENCH-TOKEN"
PRIVATE_CHATS = 20_000
GROUP_CHATS = 200
# One reservation in this many goes to a group.
GROUP_EVERY = 100
# Each window starts the round over its chats again, a little after the chat's limit (1 s for a private chat,
# 3 s for a group) has passed, so chats come back and their spacing is checked, without a worker meeting a
# chat that is not free yet (which the reservation answers by sleeping until it is: a measure of the chats'
# spacing, not of the reservation). The pool is larger than a window's reservations at any rate reached here.
PRIVATE_WINDOW = 1.05
GROUP_WINDOW = 3.05
MAX_WAIT_SECONDS = 30
MONITOR_INTERVAL = 0.01
MAX_WORKERS = 90
RTT_SAMPLES = 200
GOAL_WORKERS = 16
GOAL_RTT_MS = 0.5
GOAL_PER_SECOND = 3_000
ROUNDING = timedelta(microseconds=1)  # timestamps are whole microseconds
IMPLEMENTATIONS = ("old", "new")
# What a worker does per step: the slot alone (the reservation, its goal), or the claim of a new
# notification and its slot together (what a delivery does before each send).
OPERATIONS = ("reserve", "claim_and_reserve")


def bench_settings(database_url: str) -> Any:
    """The workers' settings: paid broadcasts (1,000/s, the rate the reservation must keep up with) and the
    longest wait the configuration allows, so a cell of a few seconds never runs its slots past it."""
    from expensebot.config import Settings

    return Settings(_env_file=None, DATABASE_URL=database_url, TELEGRAM_BOT_TOKEN=BOT_TOKEN,
                    TELEGRAM_PAID_BROADCAST="true", PACING_MAX_WAIT_SECONDS=str(MAX_WAIT_SECONDS))


# --- the reservation as it is on main before issue 16 ("old"), copied so the comparison survives its rewrite ---

_OLD_LOCK_BOT = """
INSERT INTO telegram_pacing (bot_id, next_send_at, rate_factor) VALUES (%(bot)s, %(now)s, 1.0)
ON CONFLICT (bot_id) DO UPDATE SET bot_id = EXCLUDED.bot_id
RETURNING next_send_at, paused_until, rate_factor
"""
_OLD_LOCK_CHAT = """
INSERT INTO chat_pacing (bot_id, chat_id, next_send_at) VALUES (%(bot)s, %(chat)s, %(now)s)
ON CONFLICT (bot_id, chat_id) DO UPDATE SET chat_id = EXCLUDED.chat_id
RETURNING next_send_at
"""


def _old_plan_send(now: datetime, bot: Any, chat_next: datetime | None, chat_id: int, limits: Any) -> Any:
    """pacing.plan_send of main before issue 16: the bot's slot is booked at the chat's time when the chat is
    the later one (which pushed the bot's whole schedule ahead; the rule now answers ChatBusy instead)."""
    from expensebot.pacing import RECOVERY_PER_SEND, SLOWEST_RATE_FACTOR, BotPacing, HeldBack, Slot, current_times

    bot_next, paused, chat_next = current_times(now, bot, chat_next, limits)  # unchanged by issue 16
    bot = BotPacing(bot_next, paused, bot.rate_factor)
    candidates = [now, bot.next_send_at, chat_next or now]
    if bot.paused_until is not None:
        candidates.append(bot.paused_until)
    send_at = max(candidates)
    wait = (send_at - now).total_seconds()
    if wait > limits.max_wait:
        if bot.paused_until is not None and send_at == bot.paused_until:
            reason = "Telegram asked every sender to wait (429)"
        elif chat_next is not None and send_at == chat_next:
            reason = "this chat's limit"
        else:
            reason = "the bot's global rate"
        return HeldBack(wait - limits.max_wait / 2, reason)
    interval = limits.global_interval / max(SLOWEST_RATE_FACTOR, bot.rate_factor)
    per_chat = limits.group_interval if chat_id < 0 else limits.chat_interval
    return Slot(send_at=send_at, bot_next=send_at + timedelta(seconds=interval),
                chat_next=send_at + timedelta(seconds=per_chat),
                rate_factor=min(1.0, bot.rate_factor + RECOVERY_PER_SEND))


def _old_reserve(runtime: Any, chat_id: int, cur: Any) -> Any:
    """Pacer.reserve of main before issue 16: the bot's row stays locked from its upsert to the commit."""
    from expensebot.pacing import BotPacing, HeldBack, PacingLimits

    now = runtime.clock.now()
    bot_id = runtime.bot_token().split(":", 1)[0]
    params = {"bot": bot_id, "chat": chat_id, "now": now}
    cur.execute(_OLD_LOCK_BOT, params)
    row = cur.fetchone()
    bot = BotPacing(row["next_send_at"], row["paused_until"], float(row["rate_factor"]))
    cur.execute(_OLD_LOCK_CHAT, params)
    chat_next = cur.fetchone()["next_send_at"]
    planned = _old_plan_send(now, bot, chat_next, chat_id, PacingLimits.from_settings(runtime.settings))
    if isinstance(planned, HeldBack):
        raise planned
    cur.execute("UPDATE telegram_pacing SET next_send_at = %s, rate_factor = %s WHERE bot_id = %s",
                (planned.bot_next, planned.rate_factor, bot_id))
    cur.execute("UPDATE chat_pacing SET next_send_at = %s WHERE bot_id = %s AND chat_id = %s",
                (planned.chat_next, bot_id, chat_id))
    return planned


def old_claim_and_reserve(runtime: Any, pacer: Any, message: Any, key: str, now: datetime) -> Any:
    """delivery.claim_and_reserve of main before issue 16: the claim and the old reservation in one
    transaction (the pacer is unused: the old reservation is the copy above)."""
    # The claim itself is the same statement as today's (it returns the chat too, which this copy ignores).
    from expensebot.delivery import _CLAIM, DeliveryInProgress, claim_lease_seconds

    with runtime.db.transaction() as cur:
        cur.execute(_CLAIM, {
            "key": key, "kind": message.kind, "user_id": message.user_id, "chat_id": message.chat_id,
            "lease_until": now + timedelta(seconds=claim_lease_seconds(runtime.settings)), "now": now,
        })
        claimed = cur.fetchone()
        if claimed is not None:
            return claimed["id"], _old_reserve(runtime, message.chat_id, cur)
        cur.execute("SELECT status FROM notifications WHERE dedupe_key = %s", (key,))
        status = cur.fetchone()["status"]
    if status == "sending":
        raise DeliveryInProgress(f"{key} is being sent by another worker")
    return str(status)


def _old_reserve_alone(runtime: Any, pacer: Any, message: Any, key: str, now: datetime) -> Any:
    """Pacer.reserve of main before issue 16, in its own transaction: (no claim, the slot)."""
    with runtime.db.transaction() as cur:
        return 0, _old_reserve(runtime, message.chat_id, cur)


def _new_reserve_alone(runtime: Any, pacer: Any, message: Any, key: str, now: datetime) -> Any:
    return 0, pacer.reserve(message.chat_id)


def _implementation(name: str, operation: str = "claim_and_reserve") -> Callable[..., Any]:
    if operation == "reserve":
        return _old_reserve_alone if name == "old" else _new_reserve_alone
    if name == "old":
        return old_claim_and_reserve
    from expensebot import delivery

    return delivery.claim_and_reserve  # looked up when the worker starts: whatever the library has now


# --- the chats, the workers, the monitor ---

@dataclass
class Chats:
    """The chats one worker reserves for, in turn: round-robin over the private chats and the groups with the
    other workers (worker `index` of `workers` takes every workers-th), the round starting over each window."""

    index: int
    workers: int
    turn: int = 0
    private_window: int = -1
    private_turn: int = 0
    group_window: int = -1
    group_turn: int = 0

    def next(self, elapsed: float) -> int:
        """The chat for the worker's next reservation, `elapsed` seconds into the cell."""
        self.turn += 1
        if (self.turn + self.index) % GROUP_EVERY == 0:
            window = int(elapsed / GROUP_WINDOW)
            if window != self.group_window:
                self.group_window, self.group_turn = window, 0
            self.group_turn += 1
            return -1_000_000_000_001 - ((self.group_turn - 1) * self.workers + self.index) % GROUP_CHATS
        window = int(elapsed / PRIVATE_WINDOW)
        if window != self.private_window:
            self.private_window, self.private_turn = window, 0
        self.private_turn += 1
        return 10_000_001 + ((self.private_turn - 1) * self.workers + self.index) % PRIVATE_CHATS


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // ROUNDING


def _worker(implementation: str, operation: str, database_url: str, index: int, workers: int, seconds: float,
            run: str, barrier: Any, results: Any) -> None:
    """One worker process: connects, waits for the others, then reserves for `seconds`."""
    from expensebot import delivery
    from expensebot.bootstrap import build_runtime
    from expensebot.clock import SystemClock
    from expensebot.pacing import HeldBack, Pacer

    runtime = build_runtime(bench_settings(database_url), SystemClock())
    reserve = _implementation(implementation, operation)
    pacer = Pacer(runtime)
    slots: list[tuple[int, int]] = []
    latencies: list[float] = []
    held: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    try:
        runtime.db.connection()  # connected before the clock starts
        barrier.wait()
        started = time.monotonic()
        deadline = started + seconds
        ended = started
        chats = Chats(index, workers)
        while ended < deadline:
            chat = chats.next(ended - started)
            message = delivery.OutboundMessage(dedupe_key=f"{run}-{index}-{chats.turn}", kind="pacing_bench",
                                               chat_id=chat, text="pacing benchmark")
            began = time.perf_counter()
            try:
                claim = reserve(runtime, pacer, message, message.dedupe_key, runtime.clock.now())
            except HeldBack as held_back:
                held[held_back.reason] += 1
            except Exception as error:  # counted and shown: the figures of a failing cell say so
                errors[f"{type(error).__name__}: {error}"[:200]] += 1
            else:
                if isinstance(claim, tuple):
                    slots.append((chat, _micros(claim[1].send_at)))
                else:
                    errors[f"already {claim}"] += 1
            latencies.append(time.perf_counter() - began)
            ended = time.monotonic()
        results.put({"index": index, "started": started, "ended": ended, "slots": slots, "latencies": latencies,
                     "held": dict(held), "errors": dict(errors)})
    except BaseException as error:
        results.put({"index": index, "failed": f"{type(error).__name__}: {error}"})
        raise
    finally:
        runtime.db.close()


@dataclass
class _Monitor:
    """pg_stat_activity of the bench database, sampled every MONITOR_INTERVAL: how many workers' sessions
    wait on a lock (a row of telegram_pacing or chat_pacing, a transaction holding one)."""

    admin_url: str
    samples: int = 0
    waiting: int = 0
    active: int = 0

    def sample_until(self, deadline: float) -> None:
        import psycopg2

        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True  # pg_stat_activity is a snapshot per transaction: a fresh one each sample
        try:
            with conn.cursor() as cur:
                while time.monotonic() < deadline:
                    cur.execute(
                        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),"
                        " count(*) FILTER (WHERE state = 'active')"
                        " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        (DATABASE,),
                    )
                    waiting, active = cur.fetchone()
                    self.samples += 1
                    self.waiting += waiting
                    self.active += active
                    time.sleep(MONITOR_INTERVAL)
        finally:
            conn.close()

    @property
    def mean_waiting(self) -> float:
        return self.waiting / self.samples if self.samples else 0.0

    @property
    def mean_active(self) -> float:
        return self.active / self.samples if self.samples else 0.0


def check_spacing(slots: Sequence[tuple[int, int]], limits: Any) -> dict[str, Any]:
    """The granted slots keep the configured rate: per bot no two closer than the interval (at the full rate,
    which a run without a 429 keeps), per private chat and per group no two closer than theirs. Times are
    microseconds since the epoch; each interval may round down by one microsecond."""
    def smallest_gap(times: list[int]) -> int | None:
        return min((later - earlier for earlier, later in itertools.pairwise(sorted(times))), default=None)

    def keeps(gap: int | None, interval: float) -> bool:
        return gap is None or gap >= interval * 1e6 - 1

    by_chat: dict[int, list[int]] = defaultdict(list)
    for chat, at in slots:
        by_chat[chat].append(at)
    bot_gap = smallest_gap([at for _, at in slots])
    private_gap = min((gap for chat, times in by_chat.items() if chat > 0
                       if (gap := smallest_gap(times)) is not None), default=None)
    group_gap = min((gap for chat, times in by_chat.items() if chat < 0
                     if (gap := smallest_gap(times)) is not None), default=None)
    return {
        "spacing_ok": keeps(bot_gap, limits.global_interval) and keeps(private_gap, limits.chat_interval)
        and keeps(group_gap, limits.group_interval),
        "smallest_bot_gap_ms": None if bot_gap is None else bot_gap / 1000,
        "smallest_private_chat_gap_s": None if private_gap is None else private_gap / 1e6,
        "smallest_group_gap_s": None if group_gap is None else group_gap / 1e6,
        # How many chats had two slots or more: the per-chat checks had that many to check.
        "private_chats_checked": sum(1 for chat, times in by_chat.items() if chat > 0 and len(times) > 1),
        "groups_checked": sum(1 for chat, times in by_chat.items() if chat < 0 and len(times) > 1),
    }


def measure_rtt(database_url: str, samples: int = RTT_SAMPLES) -> float:
    """The median round trip of `SELECT 1` on one connection, in milliseconds."""
    import psycopg2

    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            times = []
            for _ in range(samples):
                began = time.perf_counter()
                cur.execute("SELECT 1")
                cur.fetchone()
                times.append(time.perf_counter() - began)
    finally:
        conn.close()
    return statistics.median(times) * 1000


def _empty_tables(admin_url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("TRUNCATE telegram_pacing, chat_pacing, notifications")
    finally:
        conn.close()


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def run_cell(*, implementation: str, workers: int, rtt_ms: float, seconds: float, worker_url: str, admin_url: str,
             monitor_url: str, run: str, proxy: DelayProxy | None = None,
             operation: str = "claim_and_reserve") -> dict[str, Any]:
    """One cell: `workers` processes doing `operation` for `seconds` with `implementation`; its figures."""
    from expensebot.pacing import PacingLimits

    _empty_tables(admin_url)  # closed again: the workers are forked from a parent without a connection
    fork = multiprocessing.get_context("fork")
    barrier = fork.Barrier(workers + 1)
    results = fork.Queue()
    processes = [
        fork.Process(target=_worker, args=(implementation, operation, worker_url, index, workers, seconds, run,
                                           barrier, results), daemon=True)
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    outcomes: list[dict[str, Any]] = []
    try:
        barrier.wait(timeout=120)
        proxy_cpu_before = proxy.cpu_seconds() if proxy else 0.0
        monitor = _Monitor(monitor_url)
        monitor.sample_until(time.monotonic() + seconds)
        proxy_cpu = (proxy.cpu_seconds() - proxy_cpu_before) if proxy else 0.0
        outcomes = [results.get(timeout=seconds + 120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
    failed = [outcome["failed"] for outcome in outcomes if "failed" in outcome]
    if failed:
        raise RuntimeError(f"a {implementation} worker failed: {failed[0]}")
    wall = max(outcome["ended"] for outcome in outcomes) - min(outcome["started"] for outcome in outcomes)
    slots = [slot for outcome in outcomes for slot in outcome["slots"]]
    latencies = sorted(latency for outcome in outcomes for latency in outcome["latencies"])
    held: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        for reason, number in outcome["held"].items():
            held[reason] += number
        for error, number in outcome["errors"].items():
            errors[error] += number
    per_second = len(slots) / wall if wall > 0 else 0.0
    limits = PacingLimits.from_settings(bench_settings(worker_url))
    return {
        "operation": operation,
        "implementation": implementation,
        "workers": workers,
        "rtt_ms": rtt_ms,
        "reservations_per_second": round(per_second, 1),
        "reservations": len(slots),
        "seconds": round(wall, 3),
        "lock_waiting_sessions": round(monitor.mean_waiting, 3),
        "active_sessions": round(monitor.mean_active, 3),
        # Little's law: sessions waiting on average = throughput × the wait of one reservation.
        "lock_wait_ms": round(monitor.mean_waiting / per_second * 1000, 3) if per_second else None,
        "monitor_samples": monitor.samples,
        "latency_p50_ms": round(_percentile(latencies, 0.5) * 1000, 3),
        "latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 3),
        "held_back": sum(held.values()),
        "held_back_reasons": dict(held),
        "errors": sum(errors.values()),
        "error_examples": dict(list(errors.items())[:3]),
        "proxy_cpu_percent": round(proxy_cpu / seconds * 100, 1) if proxy else 0.0,
        **check_spacing(slots, limits),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _network(port: int, rtt_ms: float) -> Iterator[tuple[int, DelayProxy | None]]:
    """The port the workers connect to: the server's own for RTT 0, else a delaying proxy's."""
    if rtt_ms <= 0:
        yield port, None
        return
    with DelayProxy(("127.0.0.1", port), rtt_ms) as proxy:
        yield proxy.port, proxy


def run_pacing(ctx: BenchContext, *, workers: Sequence[int], rtts_ms: Sequence[float],
               seconds: float) -> list[dict[str, Any]]:
    """Every cell (workers × RTT), old and new one after the other; the rows of both."""
    if max(workers) > MAX_WORKERS:
        raise SystemExit(f"expensebot bench pacing: at most {MAX_WORKERS} workers (the embedded server takes 100 "
                         "connections)")
    # The workers are forked from this process: what they run is imported once here, not by each of them.
    import expensebot.bootstrap
    import expensebot.clock
    import expensebot.delivery
    import expensebot.pacing  # noqa: F401
    from expensebot_tools.local.stack import EmbeddedPostgres, migrate_database

    port = _free_port()
    server = EmbeddedPostgres(tcp_port=port)
    rows: list[dict[str, Any]] = []
    server.start()
    try:
        admin_url = server.create_database(DATABASE)
        migrate_database(admin_url, timezone="Europe/Moscow")
        monitor_url = server.create_database("postgres")
        with ctx.progress() as progress:
            task = progress.add_task("pacing cells",
                                     total=len(workers) * len(rtts_ms) * len(OPERATIONS) * len(IMPLEMENTATIONS))
            for rtt_ms in rtts_ms:
                with _network(port, rtt_ms) as (worker_port, proxy):
                    worker_url = f"postgresql://postgres@127.0.0.1:{worker_port}/{DATABASE}"
                    measured = measure_rtt(worker_url)
                    for count, operation, implementation in itertools.product(workers, OPERATIONS,
                                                                              IMPLEMENTATIONS):
                        row = run_cell(implementation=implementation, operation=operation, workers=count,
                                       rtt_ms=rtt_ms, seconds=seconds, worker_url=worker_url, admin_url=admin_url,
                                       monitor_url=monitor_url, run=f"{operation}-{implementation}-{count}-{rtt_ms}",
                                       proxy=proxy)
                        row["rtt_measured_ms"] = round(measured, 3)
                        rows.append(row)
                        progress.advance(task)
    finally:
        server.stop()
    return rows


_TITLES = {
    "reserve": "pacing: send slots reserved per second (the slot alone), old vs new",
    "claim_and_reserve": "pacing: parts claimed with their slot per second (what a delivery does), old vs new",
}


def _show(ctx: BenchContext, rows: list[dict[str, Any]]) -> None:
    for operation in OPERATIONS:
        table = Table(title=_TITLES[operation], title_justify="left")
        for column in ("workers", "RTT ms", "measured", "old/s", "new/s", "new/old", "lock wait ms old/new",
                       "p99 ms old/new", "spacing", "held", "proxy CPU"):
            table.add_column(column, justify="right", no_wrap=True)
        cells = {(row["workers"], row["rtt_ms"], row["implementation"]): row for row in rows
                 if row["operation"] == operation}
        for (count, rtt_ms, implementation), old in cells.items():
            if implementation != "old":
                continue
            new = cells[(count, rtt_ms, "new")]
            ratio = new["reservations_per_second"] / old["reservations_per_second"] \
                if old["reservations_per_second"] else float("nan")
            spacing = "ok" if old["spacing_ok"] and new["spacing_ok"] else "[bold red]VIOLATED[/bold red]"
            table.add_row(
                str(count), f"{rtt_ms:g}", f"{old['rtt_measured_ms']:.3f}", f"{old['reservations_per_second']:,.0f}",
                f"{new['reservations_per_second']:,.0f}", f"{ratio:.2f}",
                f"{_ms(old['lock_wait_ms'])}/{_ms(new['lock_wait_ms'])}",
                f"{old['latency_p99_ms']:.1f}/{new['latency_p99_ms']:.1f}", spacing,
                f"{old['held_back']}/{new['held_back']}",
                f"{old['proxy_cpu_percent']:.0f}/{new['proxy_cpu_percent']:.0f}%",
            )
        ctx.console.print(table)
    ctx.console.print("measured: the median SELECT 1 round trip through the proxy (RTT 0: direct TCP); held: held "
                      "back (should be 0); proxy CPU: the delaying proxy's share of one core, old/new.")


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def summarize(rows: list[dict[str, Any]], *, seconds: float) -> dict[str, Any]:
    """The figures of the run's JSON line: the goal, the checks, and every row (one per cell, operation and
    implementation, each with reservations_per_second, rtt_ms, workers, operation and implementation)."""
    def rate(operation: str, implementation: str) -> float | None:
        return next((row["reservations_per_second"] for row in rows if row["operation"] == operation
                     and row["implementation"] == implementation and row["workers"] == GOAL_WORKERS
                     and row["rtt_ms"] == GOAL_RTT_MS), None)

    goal_rate = rate("reserve", "new")
    return {
        "seconds_per_cell": seconds,
        "cells": len(rows) // len(IMPLEMENTATIONS) // len(OPERATIONS),
        f"new_per_second_{GOAL_WORKERS}_workers_{GOAL_RTT_MS}ms": goal_rate,
        f"old_per_second_{GOAL_WORKERS}_workers_{GOAL_RTT_MS}ms": rate("reserve", "old"),
        f"new_claims_per_second_{GOAL_WORKERS}_workers_{GOAL_RTT_MS}ms": rate("claim_and_reserve", "new"),
        f"old_claims_per_second_{GOAL_WORKERS}_workers_{GOAL_RTT_MS}ms": rate("claim_and_reserve", "old"),
        f"goal_{GOAL_PER_SECOND}_per_second": None if goal_rate is None else goal_rate >= GOAL_PER_SECOND,
        "spacing_ok": all(row["spacing_ok"] for row in rows),
        "held_back": sum(row["held_back"] for row in rows),
        "errors": sum(row["errors"] for row in rows),
        "rows": rows,
    }


@benchmark("pacing", needs_dataset=False)
def pacing(ctx: BenchContext) -> None:
    """Slot reservations/s by 1–64 worker processes over TCP with 0–1 ms RTT: today's row lock vs the library's."""
    seconds = ctx.options.pacing_seconds
    rows = run_pacing(ctx, workers=ctx.options.pacing_workers, rtts_ms=ctx.options.pacing_rtt_ms, seconds=seconds)
    _show(ctx, rows)
    figures = summarize(rows, seconds=seconds)
    if not figures["spacing_ok"]:
        bad = [f"{row['implementation']} {row['workers']}w {row['rtt_ms']}ms" for row in rows if not row["spacing_ok"]]
        ctx.console.print(f"[bold red]SPACING VIOLATED: granted slots closer than the configured interval in "
                          f"{', '.join(bad)}[/bold red]")
    if figures["held_back"] or figures["errors"]:
        ctx.console.print(f"[bold yellow]{figures['held_back']} reservation(s) held back and {figures['errors']} "
                          f"error(s): see held_back_reasons and error_examples in the JSON line[/bold yellow]")
    goal = figures[f"goal_{GOAL_PER_SECOND}_per_second"]
    verdict = "not measured (no such cell in this run)" if goal is None else ("met" if goal else "NOT met")
    ctx.record(figures, note=(
        f"Goal: at {GOAL_RTT_MS} ms RTT and {GOAL_WORKERS} workers the new reservation grants at least "
        f"{GOAL_PER_SECOND:,} slots/s — {verdict}. Lock wait = mean sessions waiting on a lock (pg_stat_activity every "
        f"{MONITOR_INTERVAL * 1000:.0f} ms) / reservations per second. Old: the reservation of main before "
        f"issue 16, copied into bench/pacing.py; new: the library's Pacer.reserve and "
        f"delivery.claim_and_reserve. The proxy and the "
        f"workers share this machine's {os.cpu_count()} cores."
    ))
