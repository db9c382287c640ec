"""The fault-injection suite: PostgreSQL really stopped or its connections killed at chosen steps, Telegram
failing in each way it fails, SQS refusing entries of a batch; then the test redelivers as AWS would and
counts what users saw. Each scenario records its figures, and the session ends with one table of them
(`make faults` runs only this suite)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from expensebot_tools.local.stack import EmbeddedPostgres, migrate_database
from tests.conftest import APPLICATION_TABLES, MOSCOW
from tests.faults.figures import RESULTS, Figures

START = datetime(2026, 3, 31, 19, 0, tzinfo=MOSCOW)




@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    found = Figures(scenario=request.node.name.removeprefix("test_"))
    yield found
    RESULTS.append(found)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    header = ("scenario", "faults", "expected", "lost", "duplicated", "documented dup.", "5xx")
    rows = [(f.scenario, f.faults, f.expected, f.lost, f.duplicated, f.documented_duplicates, f.answers_5xx)
            for f in RESULTS]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    terminalreporter.write_sep("=", "faults injected and what users saw")
    for row in [header, *rows]:
        terminalreporter.write_line("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    totals = [sum(getattr(f, name) for f in RESULTS)
              for name in ("faults", "expected", "lost", "duplicated", "documented_duplicates", "answers_5xx")]
    terminalreporter.write_line(
        f"total: {totals[0]} faults, {totals[1]} expected, {totals[2]} lost, {totals[3]} undocumented duplicates, "
        f"{totals[4]} documented duplicates, {totals[5]} 5xx answers")


class StoppablePostgres:
    """An embedded server of the suite's own (the other tests' server is never stopped): stopped for real
    with pg_ctl and started again on the same data directory and socket, or its clients' connections
    killed server-side."""

    def __init__(self, data_dir: Path) -> None:
        self._embedded = EmbeddedPostgres(data_dir)
        self.url = ""

    def start(self) -> str:
        self._embedded.start()
        self.url = self._embedded.create_database("expensebot_faults_test")
        migrate_database(self.url, timezone="Europe/Moscow")
        return self.url

    @property
    def _server(self) -> Any:
        return self._embedded._server

    def stop_server(self) -> None:
        self._server.stop()

    def restart_server(self) -> None:
        with self._server._lock:
            self._server.ensure_postgres_running()

    def kill_connections(self) -> int:
        """Terminates every other session on the database, as a failover or a proxy restart would."""
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            killed = len(cur.fetchall())
        conn.close()
        return killed

    def close(self) -> None:
        self._embedded.stop()


@pytest.fixture(scope="session")
def stoppable_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppablePostgres]:
    server = StoppablePostgres(tmp_path_factory.mktemp("faults-pg") / "data")
    server.start()
    yield server
    server.close()


@pytest.fixture
def faults_database(stoppable_postgres: StoppablePostgres, monkeypatch: pytest.MonkeyPatch) -> StoppablePostgres:
    stoppable_postgres.restart_server()  # a scenario that failed half way may have left it stopped
    conn = psycopg2.connect(stoppable_postgres.url)
    with conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(APPLICATION_TABLES)} RESTART IDENTITY CASCADE")
    conn.close()
    monkeypatch.setenv("DATABASE_URL", stoppable_postgres.url)
    return stoppable_postgres


@contextmanager
def system_on(template: Any, database: StoppablePostgres, **standin: Any) -> Iterator[Any]:
    """The application on the suite's own server, a stand-in without rate limits unless asked (pacing is
    tested elsewhere), on a virtual clock the stand-in shares."""
    from expensebot.clock import VirtualClock
    from expensebot_tools.local.stack import LOCAL_BOT_TOKEN, running_system
    from expensebot_tools.local.telegram import TelegramStandIn

    clock = VirtualClock(START)
    options: dict[str, Any] = {"enforce_limits": False, "accept_any_chat": True, "clock": clock.now}
    options.update(standin)
    telegram = TelegramStandIn(tokens=[LOCAL_BOT_TOKEN], **options)
    telegram.start()
    try:
        with running_system(template=template, database_url=database.url, telegram=telegram, clock=clock) as system:
            system.postgres = database  # type: ignore[attr-defined]  # the scenario's fault switch
            yield system
    finally:
        telegram.stop()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed records come back at once: the backoff's length is tested elsewhere, here only that they come
    back (moto's visibility timeouts run on the real clock)."""
    import expensebot.worker

    monkeypatch.setattr(expensebot.worker, "retry_delay", lambda *args, **kwargs: 0)


@pytest.fixture
def fault_system(aws: None, template: Any, faults_database: StoppablePostgres, fast_retries: None) -> Iterator[Any]:
    with system_on(template, faults_database) as system:
        yield system
