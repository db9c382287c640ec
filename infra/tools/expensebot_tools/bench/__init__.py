"""`make bench`: the speed and size goals, measured on a generated data set (never in timed tests).

A benchmark is a function registered with `@benchmark("name")`. It gets a `BenchContext` (the data set,
a Runtime on it, a console, progress bars) and reports its figures with `ctx.record(figures)`, which
prints them as a table and appends them as one JSON line to `.bench/results.jsonl`, with the time and
the machine they were measured on. Each benchmark measures the naive way in the same run, so a figure
always comes with its ratio against what it replaces."""

from __future__ import annotations

import importlib
import json
import os
import platform
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from expensebot_tools.project.template import PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / ".bench"
RESULTS_PATH = BENCH_DIR / "results.jsonl"
# The modules that register benchmarks, in the order `make bench` runs them. The cleanup comes after the
# data-set benchmarks: it deletes and restores a million rows, and they should not measure after that churn.
BENCHMARK_MODULES = (
    "budget_check", "planners", "bot", "report_render", "cleanup", "broadcast", "broadcast_paid",
    "report_batch", "pacing", "parsing",
)


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[BenchContext], None]
    description: str
    needs_dataset: bool = True  # False: it builds what it measures itself (the broadcast)


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, *, needs_dataset: bool = True
) -> Callable[[Callable[[BenchContext], None]], Callable[[BenchContext], None]]:
    """Registers a benchmark under `name`; its docstring's first line is what `--list` shows. One that does
    not need the 100k-user data set says so, and `make bench BENCH=<it>` then never builds one."""

    def register(fn: Callable[[BenchContext], None]) -> Callable[[BenchContext], None]:
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"benchmark {name!r} is registered twice")
        description = next(iter((fn.__doc__ or "").strip().splitlines()), "")
        _REGISTRY[name] = Benchmark(name=name, run=fn, description=description, needs_dataset=needs_dataset)
        return fn

    return register


def registry() -> dict[str, Benchmark]:
    """Every benchmark, by name, in run order."""
    for module in BENCHMARK_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    ordered = {name: _REGISTRY[name] for name in BENCHMARK_MODULES if name in _REGISTRY}
    ordered.update({name: bench for name, bench in _REGISTRY.items() if name not in ordered})
    return ordered


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: they are absolute figures for this machine only."""
    cpu_model = platform.processor() or platform.machine()
    memory_gb: float | None = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            cpu_model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu_model
            )
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
            memory_gb = round(total_kb / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gb": memory_gb,
    }


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if value is None:
        return "–"
    return str(value)


_RESERVED = ("name", "timestamp", "machine")


def record(
    name: str,
    figures: dict[str, Any],
    *,
    console: Console | None = None,
    results_path: Path = RESULTS_PATH,
    note: str | None = None,
) -> dict[str, Any]:
    """Prints the figures as a table (and a note on how to read them) and appends them to the results
    file as one JSON line: {"name", "timestamp", "machine", **figures}. Returns the line's object."""
    clashing = [key for key in figures if key in _RESERVED]
    if clashing:
        raise ValueError(f"figure names {clashing} are reserved for the record itself")
    line = {"name": name, "timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info()}
    line.update(figures)
    console = console or Console()
    table = Table(title=f"benchmark: {name}", title_justify="left")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for key, value in figures.items():
        if isinstance(value, dict | list):
            continue  # nested detail (per-planner rows, the dataset) goes to the JSON line only
        table.add_row(key, _format(value))
    console.print(table)
    if note:
        console.print(note)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    with results_path.open("a", encoding="utf-8") as results:
        results.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    return line


def progress_bar(console: Console) -> Progress:
    """Progress for long work, on a terminal only: silent when the output is a file or a pipe."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@dataclass(frozen=True)
class BenchOptions:
    """What `expensebot bench` is asked for. The defaults are the issue's sizes."""

    users: int = 100_000
    expenses: int = 5_000_000
    seed: int = 1
    database_url: str | None = None  # default: an embedded server kept in .bench/pgdata
    old_rows: int = 1_000_000  # rows older than the retention the cleanup benchmark deletes
    naive_sample: int | None = None  # time the naive budget loop over this many users and extrapolate
    enqueue_sample: int = 5_000  # units per job sent through delay_many for the throughput figure
    explain: bool = False  # print EXPLAIN (ANALYZE, BUFFERS) of each planner statement
    broadcast_chats: int = 3_000  # chats the broadcast benchmark sends to (its bound: chats / 30 s)
    # The pacing benchmark's cells (workers × RTT) and each cell's length: 12 cells × (the slot alone, the
    # claim with its slot) × old and new × 4 s.
    pacing_workers: tuple[int, ...] = (1, 4, 16, 64)
    pacing_rtt_ms: tuple[float, ...] = (0.0, 0.5, 1.0)
    pacing_seconds: float = 4.0  # per cell: past 3.05 s, so groups come back once
    paid_chats: int = 8_000  # chats of each paid broadcast fed to the workers directly (8 s at 1,000/s)
    paid_workers: tuple[int, ...] = (4, 8, 16)  # one paid broadcast per count of worker processes
    paid_sqs_chats: int = 1_500  # the paid broadcast through moto's SQS (slow: under 100/s on 2 cores)
    paid_ordinary_chats: int = 600  # the ordinary 30/s broadcast timed beside it, for the ratio (about 21 s)
    # The month-end reports through one reports worker (report_batch): with the batch's outbox (5 batches), and
    # the naive worker sleeping through each chat's two seconds on fewer (2 batches, about 45 s).
    report_users: int = 50
    report_naive_users: int = 20
    results_path: Path = RESULTS_PATH


@dataclass
class BenchContext:
    """What a benchmark works with: the data set and a way to build the application's Runtime on it."""

    options: BenchOptions
    console: Console
    dataset: Any  # dataset.Dataset (kept untyped here: dataset imports this module)
    name: str = ""

    def progress(self) -> Progress:
        """A progress bar on a terminal; silent when the output is a file or a pipe."""
        return progress_bar(self.console)

    def runtime(self, **settings: str) -> Any:
        """The application's Runtime on the data set, at the data set's "now" (a virtual clock)."""
        from expensebot.bootstrap import build_runtime
        from expensebot.clock import VirtualClock
        from expensebot.config import Settings

        values = {"DATABASE_URL": self.dataset.url, "APP_TIMEZONE": self.dataset.timezone, **settings}
        return build_runtime(Settings(_env_file=None, **values), VirtualClock(self.dataset.now))

    def record(self, figures: dict[str, Any], *, note: str | None = None) -> dict[str, Any]:
        """`record` for the running benchmark, with the data set's size and the server beside the figures."""
        if self.dataset is None:
            return record(self.name, figures, console=self.console, results_path=self.options.results_path,
                          note=note)
        with_dataset = {
            **figures,
            "dataset": {
                "users": self.dataset.spec.users,
                "expenses": self.dataset.spec.expenses,
                "seed": self.dataset.spec.seed,
                "now": self.dataset.now.isoformat(),
                "postgres": self.dataset.server_version,
            },
        }
        return record(self.name, with_dataset, console=self.console, results_path=self.options.results_path,
                      note=note)


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """with timed() as elapsed: ...; elapsed() is the block's wall time in seconds (so far, then final)."""
    started = time.perf_counter()
    ended: list[float] = []
    try:
        yield lambda: (ended[0] if ended else time.perf_counter()) - started
    finally:
        ended.append(time.perf_counter())


def run_benchmarks(names: Sequence[str], options: BenchOptions, console: Console | None = None) -> list[str]:
    """Runs the named benchmarks (all when none are named) on one data set; returns the names run."""
    from expensebot_tools.bench.dataset import DatasetSpec, open_dataset

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=130)  # a file or a pipe: wide enough for the tables' titles
    known = registry()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"expensebot bench: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    selected = [known[name] for name in names] if names else list(known.values())
    standalone = [bench for bench in selected if not bench.needs_dataset]
    on_dataset = [bench for bench in selected if bench.needs_dataset]
    if on_dataset:
        spec = DatasetSpec(users=options.users, expenses=options.expenses, seed=options.seed)
        with open_dataset(spec, database_url=options.database_url, console=console) as dataset:
            for bench in on_dataset:
                console.rule(f"[bold]{bench.name}[/bold]: {bench.description}")
                bench.run(BenchContext(options=options, console=console, dataset=dataset, name=bench.name))
    for bench in standalone:
        console.rule(f"[bold]{bench.name}[/bold]: {bench.description}")
        bench.run(BenchContext(options=options, console=console, dataset=None, name=bench.name))
    return [bench.name for bench in selected]
