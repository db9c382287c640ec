"""`expensebot ops status` lists the slots that never succeeded: failed runs, runs whose attempt stopped
renewing its lease, and months whose reports no run sent."""

from __future__ import annotations

import json

import pytest

from expensebot.bootstrap import get_runtime
from expensebot_tools.cli import main
from expensebot_tools.operations.commands import missed_slot_rows
from tests.conftest import run_sql


def _status(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(["ops", "status", *argv]) == 0
    return capsys.readouterr().out


def test_status_lists_failed_and_stale_slots_and_a_month_whose_reports_never_went_out(system, capsys):
    # The virtual clock reads 10 March 2026, 09:00 Moscow time.
    run_sql(
        "INSERT INTO job_runs (job, slot, status, attempts, started_at, lease_until, details, error) VALUES"
        " ('send_daily_admin_report', '2026-03-09 10:00+03', 'failed', 3, '2026-03-09 10:03+03', NULL, '{}',"
        "  'DatabaseUnavailable: gone'),"
        " ('check_budget_limits', '2026-03-10 08:30+03', 'running', 1, '2026-03-10 08:30+03',"
        "  '2026-03-10 08:30:30+03', '{}', NULL),"
        # Still renewing its lease: in progress, not missed.
        " ('check_budget_limits', '2026-03-10 09:00+03', 'running', 1, '2026-03-10 08:59:50+03',"
        "  '2026-03-10 09:00:20+03', '{}', NULL),"
        # Failed once, then taken over by its retry: the slot succeeded.
        " ('process_recurring_payments', '2026-03-09 12:00+03', 'succeeded', 2, '2026-03-09 12:01+03', NULL,"
        "  '{}', NULL),"
        " ('send_monthly_reports', '2026-02-27 20:00+03', 'succeeded', 1, '2026-02-27 20:00+03', NULL,"
        "  '{\"skipped\": \"not the last day of the month\"}', NULL),"
        " ('send_monthly_reports', '2026-02-28 20:00+03', 'failed', 3, '2026-02-28 20:03+03', NULL, '{}',"
        "  'DatabaseUnavailable: gone'),"
        " ('send_monthly_reports', '2026-03-09 20:00+03', 'succeeded', 1, '2026-03-09 20:00+03', NULL,"
        "  '{\"skipped\": \"not the last day of the month\"}', NULL)"
    )

    missed = missed_slot_rows(get_runtime())

    assert [(row["job"], row["status"], row["problem"]) for row in missed] == [
        ("check_budget_limits", "running", "stale: its attempt stopped renewing the lease"),
        ("send_daily_admin_report", "failed", "failed"),
        ("send_monthly_reports", "failed", "failed"),
        ("send_monthly_reports", "no success", "the reports of 2026-02 never went out"),
    ]
    assert missed[0]["slot"].isoformat() == "2026-03-10T08:30:00+03:00"
    assert missed[3]["slot"].isoformat() == "2026-02-28T20:00:00+03:00"
    # The command reads the system clock: months up to today's are listed after the failed February.
    shown = json.loads(_status(capsys, "--json"))["missed_slots"]
    assert ("send_daily_admin_report", "failed") in [(row["job"], row["status"]) for row in shown]
    assert "Missed slots" in _status(capsys) and "never went out" in _status(capsys)


def test_status_lists_no_month_once_a_catch_up_sent_its_reports(system, capsys):
    run_sql(
        "INSERT INTO job_runs (job, slot, status, started_at, details) VALUES"
        " ('send_monthly_reports', '2026-02-28 20:00+03', 'failed', '2026-02-28 20:00+03', '{}'),"
        " ('send_monthly_reports', '2026-03-01 20:00+03', 'succeeded', '2026-03-01 20:00+03',"
        "  '{\"caught_up\": \"2026-02\"}')"
    )

    missed = missed_slot_rows(get_runtime())

    # The failed last-day slot stays visible; the month it owed is no longer missing.
    assert [(row["job"], row["status"]) for row in missed] == [("send_monthly_reports", "failed")]
