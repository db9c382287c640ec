"""The SQL a planner runs, captured as the server received it, and its EXPLAIN (ANALYZE, BUFFERS)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console


class _RecordingCursor:
    def __init__(self, cursor: Any, statements: list[str]) -> None:
        self._cursor = cursor
        self._statements = statements

    def execute(self, query: Any, params: Any = None) -> Any:
        self._statements.append(self._cursor.mogrify(query, params).decode())
        return self._cursor.execute(query, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


@contextmanager
def captured_statements(db: Any) -> Iterator[list[str]]:
    """Every statement run through `db.transaction()` (and so `db.fetch_all`) in the block, parameters
    bound. Only this Database object is affected, and only for the block."""
    statements: list[str] = []
    original = db.transaction

    @contextmanager
    def recording() -> Iterator[Any]:
        with original() as cursor:
            yield _RecordingCursor(cursor, statements)

    db.transaction = recording
    try:
        yield statements
    finally:
        del db.transaction


def explain_analyze(db: Any, statement: str) -> str:
    """The plan the server chose and what it cost, run in a transaction that is rolled back."""
    conn = db.connection()
    try:
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement)
            return "\n".join(row[0] for row in cur.fetchall())
    finally:
        conn.rollback()


def print_plans(console: Console, db: Any, title: str, statements: list[str]) -> None:
    """EXPLAIN ANALYZE of each read statement (SELECT / WITH) a planner ran."""
    for number, statement in enumerate(statements, 1):
        if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        console.rule(f"EXPLAIN ANALYZE: {title} (statement {number})")
        console.print(explain_analyze(db, statement), markup=False, highlight=False, soft_wrap=True)
