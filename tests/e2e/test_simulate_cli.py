"""`expensebot simulate` as a user runs it: arguments, exit codes, the summary, and --state across runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2

from expensebot_tools.local.stack import EmbeddedPostgres
from expensebot_tools.local.updates import FakeUser, UpdateFactory

EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))
MOSCOW = ZoneInfo("Europe/Moscow")
ANNA = FakeUser(5001, "Анна", "anna")


def simulate(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("APP_TIMEZONE", "DATABASE_URL")}
    return subprocess.run([EXPENSEBOT, "simulate", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_an_end_before_the_start_is_refused_in_one_line():
    run = simulate("--start", "2026-04-01T00:00", "--end", "2026-03-01T00:00")
    assert run.returncode == 2
    assert run.stderr.strip() == "expensebot simulate: --end 2026-03-01T00:00 is not after --start 2026-04-01T00:00"


def test_a_start_that_is_no_time_is_refused():
    run = simulate("--start", "March", "--end", "2026-03-01T00:00")
    assert run.returncode == 2 and "--start 'March': not an ISO 8601 time" in run.stderr


def test_an_unreadable_updates_file_and_a_line_that_is_not_json_are_named(tmp_path):
    missing = simulate("--start", "2026-03-01T00:00", "--end", "2026-04-01T00:00", "--updates",
                       str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl: cannot read" in missing.stderr
    broken = tmp_path / "broken.jsonl"
    good = json.dumps(UpdateFactory().message(ANNA, "/start", datetime(2026, 3, 2, 9, tzinfo=MOSCOW)))
    broken.write_text(f"{good}\n\n{good[:-1]}\n", encoding="utf-8")
    run = simulate("--start", "2026-03-01T00:00", "--end", "2026-04-01T00:00", "--updates", str(broken))
    assert run.returncode == 2
    assert "line 3: not JSON" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def count_expenses(state: Path) -> int:
    server = EmbeddedPostgres(state / "postgres")
    conn = psycopg2.connect(server.start())
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM expenses")
            return int(cur.fetchone()[0])
    finally:
        conn.close()
        server.stop()


def test_state_carries_the_database_from_a_2024_run_to_the_2026_cleanup_that_removes_its_expense(tmp_path):
    state = tmp_path / "state"
    factory = UpdateFactory()
    updates = tmp_path / "2024.jsonl"
    lines = [factory.message(ANNA, text, datetime(2024, 3, 2, 9, minute, tzinfo=MOSCOW))
             for minute, text in ((0, "/start"), (1, "500 кофе"))]
    updates.write_text("".join(json.dumps(u, ensure_ascii=False) + "\n" for u in lines), encoding="utf-8")
    outbox = tmp_path / "outbox.jsonl"
    first = simulate("--start", "2024-03-02T08:00", "--end", "2024-03-02T10:00", "--updates", str(updates),
                     "--state", str(state), "--outbox", str(outbox))
    assert first.returncode == 0, first.stderr
    replies = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert [r["at"] for r in replies if r["method"] == "sendMessage"] == ["2024-03-02T09:00:00+03:00",
                                                                          "2024-03-02T09:01:00+03:00"]
    assert count_expenses(state) == 1

    # Sunday 8 March 2026, 03:00: the weekly cleanup; the 2024 expense is past the 730-day retention.
    second = simulate("--start", "2026-03-08T02:00", "--end", "2026-03-08T04:00", "--state", str(state))
    assert second.returncode == 0, second.stderr
    assert "CleanupOldExpensesFunction" in second.stdout and "no failures" in second.stdout
    assert count_expenses(state) == 0


def test_a_demo_month_completes_and_summarises_every_job(tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    run = simulate("--start", "2026-03-01T00:00", "--end", "2026-04-01T00:00", "--demo", "--outbox", str(outbox))
    assert run.returncode == 0, run.stderr
    for job, fired in (("CheckBudgetLimitsFunction", 1488), ("CleanupOldExpensesFunction", 5),
                       ("SendMonthlyReportsFunction", 31)):
        assert any(line.split()[:2] == [job, str(fired)] for line in run.stdout.splitlines()), run.stdout
    assert "budget_alert" in run.stdout and "monthly_report" in run.stdout and "no failures" in run.stdout
    calls = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    reports = [c for c in calls if c["method"] == "sendMessage" and c["at"].startswith("2026-03-31T20:00")]
    assert {c["chat_id"] for c in reports} == {1001, 1002, 1003, 1004}  # the demo users' month-end reports
