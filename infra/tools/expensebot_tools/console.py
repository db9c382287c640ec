"""What every `expensebot` command shares: one exit-code contract, one-line errors, tables for people and JSON
for scripts, and the functions' settings read once.

Exit codes, the same in every command:
- 0: all is well;
- 1: the command ran and found a problem (doctor, `migrate --check` with migrations pending, a simulation
  with failures, a lambda-test mismatch);
- 2: it could not do what was asked: a usage or configuration error, or a service it needs is unreachable.
"""

from __future__ import annotations

import json
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
    build them."""
    from expensebot.bootstrap import build_runtime

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
