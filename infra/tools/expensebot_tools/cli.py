"""The `expensebot` command: the local stack, migrations, and developer checks. Operations commands
(the seed's `celery inspect`, `purge`, the troubleshooting checklist) join it as `expensebot ops`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from expensebot_tools.console import EXIT_PROBLEM, EXIT_USAGE, CliError, load_settings, quiet_closed_pipe

Number = TypeVar("Number", int, float)


def cmd_migrate(args: argparse.Namespace) -> int:
    from expensebot.adapters.database import Database
    from expensebot.adapters.migrations import pending
    from expensebot_tools.local.stack import MIGRATIONS_DIR, migrate_database

    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        print("expensebot migrate: no database: pass --database-url or set DATABASE_URL", file=sys.stderr)
        return 2
    settings = load_settings()
    timezone = settings.app_timezone
    if args.check:
        database = Database(lambda: url, timezone=timezone)
        waiting = pending(database, MIGRATIONS_DIR)
        database.close()
        print("schema is current" if not waiting else f"pending: {', '.join(waiting)}")
        return EXIT_PROBLEM if waiting else 0
    applied = migrate_database(url, timezone=timezone, default_currency=settings.default_currency)
    print(f"applied: {', '.join(applied)}" if applied else "schema is current; nothing to apply")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from expensebot_tools.local.demo import run_demo

    result = run_demo(database_url=args.database_url, verbose=args.verbose)
    return EXIT_PROBLEM if result.report.failures else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from expensebot_tools.bench import BenchOptions, registry, run_benchmarks

    if args.list:
        for name, bench in registry().items():
            print(f"{name:14} {bench.description}")
        return 0
    options = BenchOptions(users=args.users, expenses=args.expenses, seed=args.seed, database_url=args.database_url,
                           naive_sample=args.naive_sample, explain=args.explain,
                           pacing_workers=args.pacing_workers, pacing_rtt_ms=args.pacing_rtt_ms,
                           pacing_seconds=args.pacing_seconds, report_users=args.report_users,
                           report_naive_users=args.report_naive_users)
    run_benchmarks([args.name] if args.name else [], options)
    return 0


def _numbers(kind: Callable[[str], Number], minimum: Number) -> Callable[[str], tuple[Number, ...]]:
    """An option's comma-separated list: "1,4,16" → (1, 4, 16), each at least `minimum`."""

    def parse(text: str) -> tuple[Number, ...]:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from error
        if not values or any(value < minimum for value in values):
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more numbers, each at least {minimum}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    from expensebot_tools.project.import_times import cmd_import_times

    parser = argparse.ArgumentParser(
        prog="expensebot", description="ExpenseBot serverless: local stack and tools",
        epilog="exit codes: 0 all well, 1 a problem found (doctor, a check, a run with failures), "
               "2 a usage or configuration error or an unreachable service")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    bench.add_argument("--users", type=int, default=100_000, help="users in the data set (default 100000)")
    bench.add_argument("--expenses", type=int, default=5_000_000,
                       help="expenses in the data set (default 5000000)")
    bench.add_argument("--seed", type=int, default=1, help="the generator's seed: the same seed, the same rows")
    bench.add_argument("--database-url", help="a database for the data set (default: embedded, in .bench/pgdata)")
    bench.add_argument("--naive-sample", type=int, metavar="N",
                       help="time the naive per-user loop over N random users and extrapolate")
    bench.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each planner's SQL")
    bench.add_argument("--pacing-workers", type=_numbers(int, 1), default=(1, 4, 16, 64), metavar="N,N,...",
                       help="pacing: the worker counts to run, at most 90 (default 1,4,16,64)")
    bench.add_argument("--pacing-rtt-ms", type=_numbers(float, 0.0), default=(0.0, 0.5, 1.0), metavar="MS,MS,...",
                       help="pacing: the round-trip times to add, in ms; 0 is direct TCP (default 0,0.5,1)")
    bench.add_argument("--pacing-seconds", type=float, default=4.0,
                       help="pacing: how long each cell (and implementation) runs (default 4)")
    bench.add_argument("--report-users", type=int, default=50,
                       help="report_batch: month-end reports through the batch outbox (default 50)")
    bench.add_argument("--report-naive-users", type=int, default=20,
                       help="report_batch: reports sent one record at a time, for the ratio (default 20; 0: none)")
    bench.set_defaults(func=cmd_bench)

    dev = commands.add_parser("dev", help="developer checks")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True)
    imports = dev_commands.add_parser(
        "import-times", help="cold import time of every handler module, against the job and worker goal",
        epilog="exit codes: 0 every job and worker handler meets the goal, 1 one does not")
    imports.add_argument("--runs", type=int, default=5, help="fresh interpreters per module; the fastest counts")
    imports.add_argument("--json", action="store_true", help="the rows as JSON, one per function and interpreter")
    imports.add_argument("--python", action="append", metavar="PYTHON",
                         help="an interpreter to measure with, repeatable (needs the layer's requirements and "
                              "aiogram; default: this one, and .venv-lambda's Python 3.13 if `make import-times` "
                              "made it)")
    imports.set_defaults(func=cmd_import_times)

    from expensebot_tools.operations.commands import add_parser as add_ops_parser
    from expensebot_tools.operations.webhook import add_parser as add_webhook_parser

    add_webhook_parser(commands)
    add_ops_parser(commands)
    from expensebot_tools.local.simulate import add_parser as add_simulate_parser

    add_simulate_parser(commands)
    from expensebot_tools.local.up import add_parser as add_local_parser

    add_local_parser(commands)
    from expensebot_tools.local.lambda_test import add_parser as add_lambda_test_parser

    add_lambda_test_parser(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("expensebot-serverless")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run one command under the exit-code contract of expensebot_tools.console: 0 all well, 1 a problem
    found, 2 a usage or configuration error or an unreachable service; errors in one line on stderr."""
    import psycopg2
    from botocore.exceptions import BotoCoreError, ClientError

    from expensebot.errors import ExpenseBotError

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = " ".join(_command_words(args, argv))
    try:
        code = int(args.func(args))
        # Flushed here, not at exit: a reader that went away (`| head`) is then caught below, quietly.
        sys.stdout.flush()
        return code
    except CliError as exc:
        print(f"expensebot {command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except (ExpenseBotError, psycopg2.Error, BotoCoreError, ClientError) as exc:
        # What went wrong, in one line; a traceback helps nobody who mistyped a URL.
        print(f"expensebot {command}: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        quiet_closed_pipe()
        return 0
    except KeyboardInterrupt:
        print(f"expensebot {command}: interrupted", file=sys.stderr)
        return 130


def _command_words(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """The command and its subcommands as typed (`ops dlq show`), for the one-line error's prefix."""
    chosen = {value for key, value in vars(args).items() if key.endswith("command") and isinstance(value, str)}
    words: list[str] = []
    for word in argv:
        if word in chosen and word not in words:
            words.append(word)
    return words


if __name__ == "__main__":
    sys.exit(main())
