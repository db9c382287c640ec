"""The `expensebot` command: the local stack, migrations, and developer checks. Operations commands
(the seed's `celery inspect`, `purge`, the troubleshooting checklist) join it as `expensebot ops`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from expensebot_tools.template import PROJECT_ROOT, Template


def cmd_migrate(args: argparse.Namespace) -> int:
    from expensebot.adapters.database import Database
    from expensebot.adapters.migrations import pending
    from expensebot_tools.local_stack import MIGRATIONS_DIR, migrate_database

    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        print("expensebot migrate: no database: pass --database-url or set DATABASE_URL", file=sys.stderr)
        return 2
    timezone = load_settings().app_timezone
    if args.check:
        database = Database(lambda: url, timezone=timezone)
        waiting = pending(database, MIGRATIONS_DIR)
        database.close()
        print("schema is current" if not waiting else f"pending: {', '.join(waiting)}")
        return 1 if waiting else 0
    applied = migrate_database(url, timezone=timezone)
    print(f"applied: {', '.join(applied)}" if applied else "schema is current; nothing to apply")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from expensebot_tools.demo import run_demo

    run_demo(database_url=args.database_url, verbose=args.verbose)
    return 0


_IMPORT_PROBE = """
import json, sys, time
sys.path[:0] = {extra!r}
from expensebot_tools.template import load_module
from pathlib import Path
from typing import Any
started = time.perf_counter()
load_module(Path({path!r}))
elapsed = time.perf_counter() - started
aiogram = any(m.split(".")[0] == "aiogram" for m in sys.modules)
# What the first invocation adds: the task registry and boto3 (the SQS client is built on first use).
import expensebot.jobs, boto3
first_call = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "first_call_seconds": first_call, "aiogram": aiogram}}))
"""


def measure_import(module_path: Path, runs: int = 3, python: str = sys.executable) -> dict[str, float | bool]:
    """Cold import of one handler module in fresh interpreters; the fastest of `runs`. The layer's and
    the tools' folders go first on sys.path, as /opt/python does in Lambda, so any interpreter with the
    layer's requirements installed can be measured (e.g. the runtime's Python 3.13)."""
    best: dict[str, float | bool] | None = None
    paths = [str(PROJECT_ROOT / "layers" / "expensebot"), str(PROJECT_ROOT / "infra" / "tools")]
    for _ in range(runs):
        code = _IMPORT_PROBE.format(path=str(module_path), extra=paths)
        try:
            output = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        except subprocess.CalledProcessError as exc:
            message = f"expensebot dev import-times: {python} could not import {module_path}:\n{exc.stderr}"
            raise SystemExit(message) from None
        result = json.loads(output.stdout.strip().splitlines()[-1])
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    assert best is not None
    return best


def cmd_import_times(args: argparse.Namespace) -> int:
    template = Template()
    rows = []
    seen: dict[Path, dict[str, float | bool]] = {}
    for function_id, spec in sorted(template.functions.items()):
        if spec.module_path not in seen:
            seen[spec.module_path] = measure_import(spec.module_path, runs=args.runs, python=args.python)
        measured = seen[spec.module_path]
        rows.append(
            {
                "function": function_id,
                "module": str(spec.module_path.relative_to(PROJECT_ROOT)),
                "import_seconds": round(float(measured["seconds"]), 3),
                "with_first_call_seconds": round(float(measured["first_call_seconds"]), 3),
                "imports_aiogram": bool(measured["aiogram"]),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    table = Table(title=f"Cold import of each handler module (best of {args.runs}, Python {version})")
    for column in ("function", "module", "import s", "+ first call s", "aiogram"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(row["function"], row["module"], f"{row['import_seconds']:.3f}",
                      f"{row['with_first_call_seconds']:.3f}", "yes" if row["imports_aiogram"] else "no")
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    console.print(table)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from expensebot_tools.bench import BenchOptions, registry, run_benchmarks

    if args.list:
        for name, bench in registry().items():
            print(f"{name:14} {bench.description}")
        return 0
    options = BenchOptions(users=args.users, expenses=args.expenses, seed=args.seed, database_url=args.database_url,
                           naive_sample=args.naive_sample, explain=args.explain)
    run_benchmarks([args.name] if args.name else [], options)
    return 0


def load_settings() -> Any:
    """The functions' settings from the environment, or a one-line-per-problem exit."""
    from pydantic import ValidationError

    from expensebot.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  {error['loc'][0] if error['loc'] else '?'}: {str(error['msg']).removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise SystemExit(f"expensebot: invalid configuration:\n{problems}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="expensebot", description="ExpenseBot serverless: local stack and tools")
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="apply the SQL migrations in infra/migrations")
    migrate.add_argument("--database-url", help="default: $DATABASE_URL")
    migrate.add_argument("--check", action="store_true", help="only report pending migrations (exit 1 if any)")
    migrate.set_defaults(func=cmd_migrate)

    demo = commands.add_parser("demo", help="a month of the whole system on the embedded stack, as a timeline")
    demo.add_argument("--database-url", help="an empty PostgreSQL database to use (default: embedded)")
    demo.add_argument("--verbose", action="store_true", help="show the functions' JSON logs too")
    demo.set_defaults(func=cmd_demo)

    bench = commands.add_parser("bench", help="the speed goals on a generated data set (results: .bench/results.jsonl)")
    bench.add_argument("name", nargs="?", help="one benchmark (default: all); see --list")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.add_argument("--users", type=int, default=100_000)
    bench.add_argument("--expenses", type=int, default=5_000_000)
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--database-url", help="a database for the data set (default: embedded, in .bench/pgdata)")
    bench.add_argument("--naive-sample", type=int, metavar="N",
                       help="time the naive per-user loop over N random users and extrapolate")
    bench.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each planner's SQL")
    bench.set_defaults(func=cmd_bench)

    dev = commands.add_parser("dev", help="developer checks")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True)
    imports = dev_commands.add_parser("import-times", help="cold import time of every handler module")
    imports.add_argument("--runs", type=int, default=3)
    imports.add_argument("--json", action="store_true")
    imports.add_argument("--python", default=sys.executable,
                         help="interpreter to measure with (needs the layer's requirements and aiogram)")
    imports.set_defaults(func=cmd_import_times)

    from expensebot_tools.ops import add_parser as add_ops_parser
    from expensebot_tools.webhook_admin import add_parser as add_webhook_parser

    add_webhook_parser(commands)
    add_ops_parser(commands)
    from expensebot_tools.simulate import add_parser as add_simulate_parser

    add_simulate_parser(commands)
    from expensebot_tools.local_up import add_parser as add_local_parser

    add_local_parser(commands)
    from expensebot_tools.lambda_test import add_parser as add_lambda_test_parser

    add_lambda_test_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    import psycopg2

    from expensebot.errors import ExpenseBotError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ExpenseBotError, psycopg2.Error) as exc:
        # What went wrong, in one line; a traceback helps nobody who mistyped a URL.
        print(f"expensebot {args.command}: {type(exc).__name__}: {str(exc).strip()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
