"""The Sunday cleanup prunes the bookkeeping tables (processed_updates, notifications, job_runs) past their
retention, in batches that continue across invocations, and never a row still needed: a `sending` claim, a
message sent within the retention, a run not finished, a job's latest run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.conftest import MOSCOW, run_sql, sql_value
from tests.integration.test_cleanup import small_batches, time_runs_fast  # noqa: F401 (fixtures)

# A Sunday, 03:00 Moscow time: the cleanup's slot. Defaults: updates 7 days, notifications 30, job runs 90.
SLOT = datetime(2026, 3, 8, 3, 0, tzinfo=MOSCOW)


def days_before(days: float) -> datetime:
    return SLOT - timedelta(days=days)


def _update(update_id: int, age_days: float) -> None:
    run_sql("INSERT INTO processed_updates (update_id, processed_at, outcome) VALUES (%s, %s, 'handled')",
            (update_id, days_before(age_days)))


def _notification(key: str, status: str, created_days: float, sent_days: float | None = None) -> None:
    run_sql(
        "INSERT INTO notifications (dedupe_key, kind, chat_id, status, attempts, created_at, sent_at, lease_until)"
        " VALUES (%s, 'debug', 1, %s, 1, %s, %s, %s)",
        (key, status, days_before(created_days), None if sent_days is None else days_before(sent_days),
         days_before(created_days) + timedelta(minutes=1) if status == "sending" else None),
    )


def _job_run(job: str, status: str, age_days: float) -> None:
    started = days_before(age_days)
    run_sql(
        "INSERT INTO job_runs (job, slot, status, started_at, finished_at) VALUES (%s, %s, %s, %s, %s)",
        (job, started, status, started, None if status == "running" else started + timedelta(seconds=5)),
    )


def _cleanup_details() -> dict:
    return sql_value("SELECT details FROM job_runs WHERE job = 'cleanup_old_expenses' AND slot = %s", (SLOT,))


def test_processed_updates_older_than_a_week_are_pruned_and_younger_ones_kept(system):
    _update(1, 8)
    _update(2, 7.01)
    _update(3, 6.99)
    _update(4, 0)

    outcome = system.fire_schedule("CleanupOldExpensesFunction", SLOT)

    assert outcome["status"] == "succeeded"
    assert outcome["details"]["processed_updates_deleted"] == 2
    assert [u for (u,) in run_sql("SELECT update_id FROM processed_updates ORDER BY 1")] == [3, 4]


def test_notifications_prunable_are_pruned_but_a_sending_claim_and_a_late_send_are_kept(system):
    _notification("sent-old", "sent", 31, sent_days=31)
    _notification("dropped-old", "dropped", 40)
    _notification("failed-old", "failed", 40)
    _notification("sending-old", "sending", 40)  # a send in progress, or a crash its redelivery will repeat
    _notification("sent-late", "sent", 40, sent_days=10)  # first claimed long ago, sent recently
    _notification("sent-young", "sent", 29, sent_days=29)

    outcome = system.fire_schedule("CleanupOldExpensesFunction", SLOT)

    assert outcome["details"]["notifications_deleted"] == 3
    kept = {key for (key,) in run_sql("SELECT dedupe_key FROM notifications")}
    assert kept == {"sending-old", "sent-late", "sent-young"}


def test_job_runs_prunable_are_pruned_but_running_runs_and_each_jobs_latest_run_are_kept(system):
    _job_run("check_budget_limits", "succeeded", 100)
    _job_run("check_budget_limits", "failed", 95)
    _job_run("check_budget_limits", "succeeded", 89)
    _job_run("send_monthly_reports", "running", 120)  # its worker died: left for doctor and ops to show
    _job_run("send_monthly_reports", "succeeded", 1)
    _job_run("process_recurring_payments", "succeeded", 200)  # the job's only run: its schedule's last run

    outcome = system.fire_schedule("CleanupOldExpensesFunction", SLOT)

    assert outcome["details"]["job_runs_deleted"] == 2
    kept = run_sql("SELECT job, status, round(extract(epoch FROM %s - started_at) / 86400) FROM job_runs"
                   " WHERE job <> 'cleanup_old_expenses' ORDER BY job, started_at", (SLOT,))
    assert kept == [
        ("check_budget_limits", "succeeded", 89),
        ("process_recurring_payments", "succeeded", 200),
        ("send_monthly_reports", "running", 120),
        ("send_monthly_reports", "succeeded", 1),
    ]


def test_the_retentions_are_settings(aws, template, clean_database, telegram):
    from expensebot.clock import VirtualClock
    from expensebot_tools.local.stack import running_system

    parameters = {"ProcessedUpdatesRetentionDays": "2", "NotificationsRetentionDays": "20",
                  "JobRunsRetentionDays": "40"}
    with running_system(template=template, database_url=clean_database, telegram=telegram,
                        clock=VirtualClock(SLOT), parameters=parameters) as system:
        _update(1, 3)
        _update(2, 1)
        _notification("21-days", "sent", 21, sent_days=21)
        _notification("19-days", "sent", 19, sent_days=19)
        _job_run("check_budget_limits", "succeeded", 41)
        _job_run("check_budget_limits", "succeeded", 39)

        details = system.fire_schedule("CleanupOldExpensesFunction", SLOT)["details"]

        counts = (details["processed_updates_deleted"], details["notifications_deleted"], details["job_runs_deleted"])
        assert counts == (1, 1, 1)
        assert sql_value("SELECT count(*) FROM processed_updates") == 1
        assert sql_value("SELECT dedupe_key FROM notifications") == "19-days"


@pytest.mark.usefixtures("small_batches", "time_runs_fast")
def test_pruning_stops_at_the_soft_limit_and_its_continuation_finishes_it(system):
    for update_id in range(1, 24):  # 23 updates past retention: five batches of five
        _update(update_id, 10 + update_id / 24)
    _update(100, 1)

    outcome = system.fire_schedule("CleanupOldExpensesFunction", SLOT)

    assert outcome["enqueued"] == 1
    assert outcome["details"]["processed_updates_deleted"] == 10
    drained = system.drain("MaintenanceQueue")

    assert drained.failed == 0 and drained.processed == 3
    assert [u for (u,) in run_sql("SELECT update_id FROM processed_updates")] == [100]
    details = _cleanup_details()
    assert details["processed_updates_deleted"] == 23
    assert details["continuations"] == drained.processed


def test_ops_status_shows_each_bookkeeping_tables_rows_oldest_row_and_prunable_rows(system, capsys):
    from expensebot_tools.cli import main

    # `ops status` runs on the real clock: ages are counted back from now.
    now = datetime.now(MOSCOW)
    oldest_update = now - timedelta(days=9)
    run_sql("INSERT INTO processed_updates (update_id, processed_at, outcome) VALUES (1, %s, 'handled'),"
            " (2, %s, 'handled'), (3, %s, 'handled')", (oldest_update, now - timedelta(days=8), now))
    # Past its retention but a claim in progress: counted as a row, not as prunable.
    run_sql("INSERT INTO notifications (dedupe_key, kind, chat_id, status, created_at)"
            " VALUES ('a', 'debug', 1, 'sent', %s), ('b', 'debug', 1, 'sending', %s)",
            (now - timedelta(days=1), now - timedelta(days=40)))

    capsys.readouterr()
    assert main(["ops", "status", "--json"]) == 0
    sizes = {row["table"]: row for row in json.loads(capsys.readouterr().out)["bookkeeping"]}

    assert set(sizes) == {"processed_updates", "notifications", "job_runs"}
    assert (sizes["processed_updates"]["rows"], sizes["processed_updates"]["prunable"]) == (3, 2)
    assert datetime.fromisoformat(sizes["processed_updates"]["oldest"]) == oldest_update
    assert sizes["processed_updates"]["retention_days"] == 7
    assert (sizes["notifications"]["rows"], sizes["notifications"]["prunable"]) == (2, 0)
    assert (sizes["job_runs"]["rows"], sizes["job_runs"]["oldest"]) == (0, None)

    assert main(["ops", "status"]) == 0
    table = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in capsys.readouterr().out.splitlines()
             if line.count("│") == 6 and line.split("│")[1].strip() in sizes}
    assert table["processed_updates"][0] == "3"
    assert table["processed_updates"][1] == oldest_update.strftime("%Y-%m-%d %H:%M:%S")
    assert table["processed_updates"][2:] == ["7", "2"]
    assert table["job_runs"] == ["0", "", "90", "0"]
