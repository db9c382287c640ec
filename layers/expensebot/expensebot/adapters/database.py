"""PostgreSQL through psycopg2: one connection per execution environment, opened on first use (never at
import), kept across warm invocations, and reopened when the server or a proxy dropped it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from expensebot.errors import DatabaseUnavailable

# A connection idle longer than this is checked before use: RDS Proxy and NAT gateways close idle
# connections, and a frozen Lambda environment does not notice.
IDLE_CHECK_SECONDS = 60.0

_CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


class Database:
    def __init__(self, dsn: Callable[[], str], *, timezone: str, connect_timeout: int = 5) -> None:
        self._dsn = dsn
        self._timezone = timezone
        self._connect_timeout = connect_timeout
        self._conn: psycopg2.extensions.connection | None = None
        self._last_used = 0.0

    def _connect(self) -> psycopg2.extensions.connection:
        try:
            conn = psycopg2.connect(
                self._dsn(),
                connect_timeout=self._connect_timeout,
                application_name="expensebot",
                # The seed's rule "the time zone must match in every component": the session zone is
                # the application's zone, so date_trunc and ::date agree with the schedules.
                options=f"-c timezone={self._timezone}",
            )
        except _CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}".strip()) from exc
        conn.autocommit = False
        return conn

    def connection(self) -> psycopg2.extensions.connection:
        if (
            self._conn is not None
            and not self._conn.closed
            and time.monotonic() - self._last_used > IDLE_CHECK_SECONDS
            and not self._alive(self._conn)
        ):
            self.close()
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        self._last_used = time.monotonic()
        return self._conn

    @staticmethod
    def _alive(conn: psycopg2.extensions.connection) -> bool:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.rollback()
            return True
        except _CONNECTION_ERRORS:
            return False

    @contextmanager
    def transaction(self, *, dict_rows: bool = True) -> Iterator[Any]:
        """One transaction: committed when the block ends, rolled back when it raises. Rows are dicts, or
        plain tuples with dict_rows=False (the connection's own cursor factory)."""
        conn = self.connection()
        factory = psycopg2.extras.RealDictCursor if dict_rows else None
        try:
            with conn.cursor(cursor_factory=factory) as cur:
                yield cur
            conn.commit()
        except _CONNECTION_ERRORS as exc:
            self.close()
            raise DatabaseUnavailable(f"the database connection failed: {exc}".strip()) from exc
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise

    @contextmanager
    def single_statement(self, *, dict_rows: bool = True) -> Iterator[Any]:
        """One statement that is its own transaction (autocommit): the server commits it before it answers,
        so a row it locks is held for the statement's own time and never across a client round trip (the
        send-slot reservation, pacing.py). Give it one statement only: each would commit on its own."""
        conn = self.connection()
        factory = psycopg2.extras.RealDictCursor if dict_rows else None
        conn.autocommit = True
        try:
            with conn.cursor(cursor_factory=factory) as cur:
                yield cur
        except _CONNECTION_ERRORS as exc:
            self.close()
            raise DatabaseUnavailable(f"the database connection failed: {exc}".strip()) from exc
        finally:
            if not conn.closed:
                conn.autocommit = False

    def fetch_all(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def fetch_tuples(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Rows as plain tuples: for planners that read tens of thousands of rows, where building a dict
        per row costs more than the query (make bench BENCH=budget_check)."""
        with self.transaction(dict_rows=False) as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def close(self) -> None:
        if self._conn is not None:
            with suppress(*_CONNECTION_ERRORS):
                self._conn.close()
        self._conn = None
