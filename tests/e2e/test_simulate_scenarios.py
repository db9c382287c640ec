"""Scenarios run through `expensebot simulate` as a user runs it: an updates file in, then expectations on
the outbox and the database. This one crosses a month end, a Sunday and Berlin's spring clock change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from expensebot_tools.local.updates import FakeUser, UpdateFactory
from tests.conftest import run_sql

EXPENSEBOT = str(Path(sys.executable).with_name("expensebot"))
BERLIN = ZoneInfo("Europe/Berlin")
ANNA = FakeUser(7001, "Anna", "anna")
ADMIN_CHAT = -1009990001


def _write_updates(path: Path, lines: list[tuple[datetime, str]]) -> None:
    factory = UpdateFactory()
    path.write_text(
        "".join(json.dumps(factory.message(ANNA, text, at), ensure_ascii=False) + "\n" for at, text in lines),
        encoding="utf-8",
    )


def _simulate(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update({"APP_TIMEZONE": "Europe/Berlin", "ADMIN_CHAT_IDS": str(ADMIN_CHAT)})
    return subprocess.run([EXPENSEBOT, "simulate", "--database-url", database_url, *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_month_end_sunday_and_the_spring_clock_change_in_berlin(clean_database, tmp_path):
    updates, outbox = tmp_path / "updates.jsonl", tmp_path / "outbox.jsonl"
    _write_updates(updates, [
        (datetime(2026, 3, 28, 10, 0, tzinfo=BERLIN), "/start"),
        (datetime(2026, 3, 28, 10, 1, tzinfo=BERLIN), "/budget 1000"),
        (datetime(2026, 3, 28, 10, 2, tzinfo=BERLIN), "/recurring 31 500 аренда"),
        (datetime(2026, 3, 28, 10, 3, tzinfo=BERLIN), "/recurring 1 100 интернет"),
        (datetime(2026, 3, 29, 10, 50, tzinfo=BERLIN), "950 продукты"),  # 95 % of the budget on the Sunday
        (datetime(2026, 3, 31, 18, 0, tzinfo=BERLIN), "кофе 100"),
    ])

    run = _simulate(clean_database, "--start", "2026-03-28T00:00", "--end", "2026-04-02T00:00",
                    "--updates", str(updates), "--outbox", str(outbox))

    assert run.returncode == 0, run.stderr
    sent = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    sent = [call for call in sent if call["method"] == "sendMessage"]
    to_anna = [(call["at"], call["text"]) for call in sent if call["chat_id"] == ANNA.user_id]
    jobs_to_anna = [(at, text) for at, text in to_anna if not at.endswith(("10:00:00+01:00", "10:01:00+01:00",
                                                                            "10:02:00+01:00", "10:03:00+01:00"))]

    # The check at 11:00 (already summer time, +02:00) alerts once, naming 90 %, not 80 % as well; the rent
    # booked at 12:00 on the 31st takes the month past 100 %, which the 12:30 check says once.
    alerts = [(at, text) for at, text in jobs_to_anna if text.startswith(("⚠️", "🚨"))]
    assert [at for at, _ in alerts] == ["2026-03-29T11:00:00+02:00", "2026-03-31T12:30:00+02:00"]
    assert "90 %" in alerts[0][1] and "950,00" in alerts[0][1]
    assert "100 %" in alerts[1][1] and "1\u00a0450,00" in alerts[1][1]
    # Day 31 falls on 31 March, day 1 on 1 April: each booked at 12:00 and told once.
    notices = [(at, text) for at, text in jobs_to_anna if "аренда" in text or "интернет" in text]
    assert [at for at, _ in notices] == ["2026-03-31T12:00:00+02:00", "2026-04-01T12:00:00+02:00"]
    # The month-end report at 20:00 on the 31st counts everything of March, rent and coffee included.
    reports = [(at, text) for at, text in jobs_to_anna if "Отчёт за март 2026" in text]
    assert [at for at, _ in reports] == ["2026-03-31T20:00:00+02:00"]
    assert "1\u00a0550,00" in reports[0][1]
    # The admin chat gets its report at 10:00 every day, in winter and in summer time alike.
    admin = [call["at"] for call in sent if call["chat_id"] == ADMIN_CHAT]
    assert admin == ["2026-03-28T10:00:00+01:00", "2026-03-29T10:00:00+02:00", "2026-03-30T10:00:00+02:00",
                     "2026-03-31T10:00:00+02:00", "2026-04-01T10:00:00+02:00"]

    def in_db(sql: str) -> list[tuple[Any, ...]]:
        return run_sql(sql, database_url=clean_database)

    booked = in_db("SELECT due_date, amount FROM expenses WHERE due_date IS NOT NULL ORDER BY 1")
    assert [(due, str(amount)) for due, amount in booked] == [(date(2026, 3, 31), "500.00"),
                                                             (date(2026, 4, 1), "100.00")]
    assert in_db("SELECT user_id, month FROM monthly_reports") == [(ANNA.user_id, date(2026, 3, 1))]
    runs = dict(in_db("SELECT job, count(*) FROM job_runs GROUP BY job"))
    # Five days of half-hourly checks, less 02:00 and 02:30 on the 29th, which the clock change skips.
    assert runs["check_budget_limits"] == 5 * 48 - 2
    assert (runs["send_monthly_reports"], runs["process_recurring_payments"], runs["send_daily_admin_report"]) == (
        5, 5, 5
    )
    (cleanup_slot,) = in_db("SELECT slot FROM job_runs WHERE job = 'cleanup_old_expenses'")
    assert cleanup_slot[0].astimezone(BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"
    skipped_budget_slots = in_db(
        "SELECT count(*) FROM job_runs WHERE job = 'check_budget_limits'"
        " AND slot >= '2026-03-29T01:00:00+00' AND slot < '2026-03-29T01:00:00+00'::timestamptz + interval '1 hour'",
    )
    assert skipped_budget_slots == [(2,)]  # 03:00 and 03:30 summer time, right after the gap
