"""What every `expensebot` command shares: one exit-code contract, one-line errors, tables for people and JSON
for scripts, and the functions' settings read once.

Exit codes, the same in every command:
- 0: all is well;
- 1: the command ran and found a problem (doctor, `migrate --check` with migrations pending, a simulation
  with failures, a lambda-test mismatch), or the operator declined a confirmation, so nothing was done;
- 2: it could not do what was asked: a usage or configuration error, or a service it needs is unreachable.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem the operator can fix, said in one line; the command exits with `exit_code`."""

    exit_code = EXIT_USAGE


class ProblemFound(CliError):
    """The command ran and what it checked is wrong (exit 1)."""

    exit_code = EXIT_PROBLEM


def load_settings() -> Any:
    """The functions' settings from the environment, or a one-line-per-problem configuration error."""
    from pydantic import ValidationError

    from expensebot.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{error['loc'][0] if error['loc'] else '?'}: {str(error['msg']).removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise CliError(f"invalid configuration: {problems}") from None


@contextmanager
def opened_runtime() -> Iterator[Any]:
    """The library's adapters (database, SQS, Telegram, clock) built from the environment, as the functions
    build them; while open, the library's log lines are readable lines on stderr."""
    from expensebot.bootstrap import build_runtime

    with readable_library_logs():
        runtime = build_runtime(load_settings())
        try:
            yield runtime
        finally:
            runtime.db.close()


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def quiet_closed_pipe() -> None:
    """`expensebot … | head` ends quietly: stdout's reader went away, so nothing more can be said to it, and
    Python's flush at exit must not print a BrokenPipeError traceback (the standard library's recipe)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# Keys every Powertools line carries that say nothing to a person reading one function's log.
_QUIET_KEYS = frozenset({
    "timestamp", "level", "message", "service", "location", "xray_trace_id", "cold_start", "function_name",
    "function_memory_size", "function_arn", "function_request_id", "sampling_rate", "exception_name",
    "exception", "stack_trace",
})


def render_log_record(record: dict[str, Any], *, when: str | None = None) -> str:
    """One Powertools JSON log line as a person reads it: time, level, message, then key=value for what the
    line adds (job, task, counts), and an exception's last line indented below."""
    stamp = when if when is not None else str(record.get("timestamp", ""))[:23].replace("T", " ")
    level = str(record.get("level", "INFO"))
    fields = " ".join(f"{key}={record[key]}" for key in sorted(record) if key not in _QUIET_KEYS)
    line = f"{stamp} {level:<7} {record.get('message', '')}" + (f"  {fields}" if fields else "")
    exception = record.get("exception")
    if exception:
        line += "\n    " + str(exception).strip().splitlines()[-1]
    return line


class ReadableLogFormatter(logging.Formatter):
    """Wraps the library's Powertools formatter: its JSON (with every appended key) becomes one readable line."""

    def __init__(self, json_formatter: logging.Formatter) -> None:
        super().__init__()
        self.json_formatter = json_formatter

    def __getattr__(self, name: str) -> Any:
        # Powertools reaches its formatter through the handler (append_keys, clear_state, …): let it.
        return getattr(self.json_formatter, name)

    def format(self, record: logging.LogRecord) -> str:
        rendered = self.json_formatter.format(record)
        try:
            return render_log_record(json.loads(rendered))
        except ValueError:
            return rendered


@contextmanager
def readable_library_logs() -> Iterator[None]:
    """The library's log lines, when a command runs its code in-process (`ops run`, `ops send`), go to stderr
    as readable lines rather than raw JSON on stdout, where they would mix with a table or --json output.
    Restored afterwards: the same process may run a function as Lambda would (tests, `simulate`)."""
    from expensebot.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler.formatter, ReadableLogFormatter):
        yield
        return
    stream, formatter = handler.stream, handler.formatter
    # Assigned, not setStream(): that flushes the old stream, which a test's captured stdout may have closed.
    handler.stream = sys.stderr
    handler.setFormatter(ReadableLogFormatter(logger.registered_formatter))
    try:
        yield
    finally:
        handler.stream = stream
        handler.setFormatter(formatter)
