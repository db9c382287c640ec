"""`expensebot ops history`: job runs and message outcomes, filtered, newest first, paged; and `history missing`,
the users a month's reports were owed to who have none, after a real month-end run on the local stack."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import MOSCOW, run_sql
from tests.integration.test_ops import cells, ops

# ---------------------------------------------------------------- a ledger and a message log to search


def _ago(hours: float) -> datetime:
    # `ops` reads the system clock, so the rows are placed back from the real now.
    return datetime.now(MOSCOW).replace(microsecond=0) - timedelta(hours=hours)


RUNS = {
    # name: (job, hours ago, status, lease_until hours ago or None, error)
    "budget ok": ("check_budget_limits", 1, "succeeded", None, None),
    "budget failed": ("check_budget_limits", 30, "failed", None, "DatabaseUnavailable: gone"),
    "budget stuck": ("check_budget_limits", 2, "running", 1.9, None),
    "cleanup ok": ("cleanup_old_expenses", 50, "succeeded", None, None),
    "reports failed": ("send_monthly_reports", 3, "failed", None, "RuntimeError: boom"),
}
MESSAGES = {
    # name: (kind, dedupe key, hours ago, status, chat/user)
    "alert sent": ("budget_alert", "budget_alert:1:2026-11:80", 0.5, "sent", 101),
    "alert dropped": ("budget_alert", "budget_alert:2:2026-11:80", 4, "dropped", 102),
    "notice failed": ("recurring_notice", "recurring:7:2026-11-29", 26, "failed", 101),
    "report sent": ("monthly_report", "monthly_report:101:2026-10", 5, "sent", 101),
    "report held": ("monthly_report", "monthly_report:102:2026-10", 6, "held", 102),
    "admin sent": ("admin_report", "admin_report:2026-11-30", 7, "sent", 900),
}


@pytest.fixture
def logged(system: Any) -> dict[str, int]:
    """Runs and messages at known times; returns their ids by name."""
    for chat in (101, 102, 900):
        run_sql("INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (%s, %s, now(), now())",
                (chat, chat))
    ids = {}
    for name, (job, hours, status, lease, error) in RUNS.items():
        [(ids[name],)] = run_sql(
            "INSERT INTO job_runs (job, slot, status, started_at, finished_at, lease_until, error, details)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, '{}') RETURNING id",
            (job, _ago(hours), status, _ago(hours), None if status == "running" else _ago(hours - 0.01),
             None if lease is None else _ago(lease), error))
    for name, (kind, key, hours, status, chat) in MESSAGES.items():
        [(ids[name],)] = run_sql(
            "INSERT INTO notifications (dedupe_key, kind, user_id, chat_id, status, attempts, created_at, sent_at)"
            " VALUES (%s, %s, %s, %s, %s, 1, %s, %s) RETURNING id",
            (key, kind, chat, chat, status, _ago(hours), _ago(hours) if status == "sent" else None))
    return ids


def _history(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = ops(capsys, "history", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _names(page: dict[str, Any], ids: dict[str, int]) -> list[str]:
    by_row = {(("run" if name in RUNS else "message"), row_id): name for name, row_id in ids.items()}
    return [by_row[(row["source"], row["id"])] for row in page["rows"]]


def test_history_lists_runs_and_messages_newest_first(logged, capsys):
    page = _history(capsys)

    assert _names(page, logged) == [
        "alert sent", "budget ok", "budget stuck", "reports failed", "alert dropped", "report sent",
        "report held", "admin sent", "notice failed", "budget failed", "cleanup ok",
    ]
    statuses = {name: row["status"] for name, row in zip(_names(page, logged), page["rows"], strict=True)}
    # A 'running' run whose lease ran out is shown as what it is: its attempt died.
    assert statuses["budget stuck"] == "stale"
    # Each message says which job's task sent it.
    assert {row["job"] for row in page["rows"] if row["kind"] == "budget_alert"} == {"check_budget_limits"}


@pytest.mark.parametrize(("argv", "expected"), [
    (["--job", "check_budget_limits"], ["alert sent", "budget ok", "budget stuck", "alert dropped", "budget failed"]),
    (["--task", "notifications.send_budget_alert"],
     ["alert sent", "budget ok", "budget stuck", "alert dropped", "budget failed"]),
    (["--task", "maintenance.continue_cleanup"], ["cleanup ok"]),
    (["--status", "failed,dropped"], ["reports failed", "alert dropped", "notice failed", "budget failed"]),
    (["--status", "stale"], ["budget stuck"]),
    (["--kind", "monthly_report,admin_report"], ["report sent", "report held", "admin sent"]),
    (["--chat", "102"], ["alert dropped", "report held"]),
    (["--user", "101"], ["alert sent", "report sent", "notice failed"]),
    (["--since", "24h"], ["alert sent", "budget ok", "budget stuck", "reports failed", "alert dropped",
                          "report sent", "report held", "admin sent"]),
    (["--since", "48h", "--until", "24h"], ["notice failed", "budget failed"]),
    (["--job", "check_budget_limits", "--status", "failed,dropped", "--since", "24h"], ["alert dropped"]),
    (["--kind", "budget_alert", "--status", "succeeded"], []),
])
def test_each_filter_narrows_the_history(logged, capsys, argv, expected):
    assert _names(_history(capsys, *argv), logged) == expected


def test_a_month_selects_a_monthly_report_by_the_month_it_reports(system, capsys):
    run_sql("INSERT INTO users (user_id, chat_id, created_at, last_seen_at) VALUES (5, 5, now(), now())")
    run_sql(
        "INSERT INTO notifications (dedupe_key, kind, user_id, chat_id, status, created_at) VALUES"
        # November's report, sent at the end of November, and caught up on 1 December for another user.
        " ('monthly_report:5:2026-11', 'monthly_report', 5, 5, 'failed', '2026-11-30 20:00:05+03'),"
        " ('monthly_report:6:2026-11', 'monthly_report', 5, 5, 'dropped', '2026-12-01 20:00:05+03'),"
        # October's, caught up on 1 November: not November's report.
        " ('monthly_report:7:2026-10', 'monthly_report', 5, 5, 'failed', '2026-11-01 20:00:05+03'),"
        " ('monthly_report:8:2026-11', 'monthly_report', 5, 5, 'sent', '2026-11-30 20:00:06+03'),"
        " ('budget_alert:5:2026-11:80', 'budget_alert', 5, 5, 'failed', '2026-11-15 10:00+03'),"
        " ('budget_alert:5:2026-12:80', 'budget_alert', 5, 5, 'failed', '2026-12-01 10:00+03')"
    )

    page = _history(capsys, "--kind", "monthly_report", "--month", "2026-11", "--status", "failed,dropped")
    assert [row["dedupe_key"] for row in page["rows"]] == ["monthly_report:6:2026-11", "monthly_report:5:2026-11"]

    page = _history(capsys, "--kind", "budget_alert", "--month", "2026-11")
    assert [row["dedupe_key"] for row in page["rows"]] == ["budget_alert:5:2026-11:80"]


def test_pages_are_disjoint_and_newest_first_by_page_and_by_cursor(logged, capsys):
    everything = [(row["source"], row["id"]) for row in _history(capsys)["rows"]]

    by_page, page_number = [], 1
    while True:
        page = _history(capsys, "--limit", "4", "--page", str(page_number))
        by_page.append([(row["source"], row["id"]) for row in page["rows"]])
        if not page["next_before"]:
            break
        page_number += 1
    assert [len(rows) for rows in by_page] == [4, 4, 3]
    assert [key for rows in by_page for key in rows] == everything

    by_cursor, cursor = [], None
    while True:
        page = _history(capsys, "--limit", "4", *(["--before", cursor] if cursor else []))
        by_cursor.append([(row["source"], row["id"]) for row in page["rows"]])
        cursor = page["next_before"]
        if not cursor:
            break
    assert by_cursor == by_page

    code, out, _ = ops(capsys, "history", "--limit", "4")
    assert code == 0 and "more: --page 2, or --before" in out
    rows = [row for row in cells(out) if len(row) == 10 and row[1] in ("run", "message")]
    assert len(rows) == 4 and rows[0][3:6] == ["check_budget_limits", "budget_alert", "sent"]


def test_history_refuses_what_it_cannot_read(system, capsys):
    assert ops(capsys, "history", "--status", "lost")[0] == 2
    assert "unknown status lost" in ops(capsys, "history", "--status", "lost")[2]
    assert ops(capsys, "history", "--since", "yesterday")[0] == 2
    assert ops(capsys, "history", "--month", "2026-13")[0] == 2
    assert ops(capsys, "history", "--job", "nope")[0] == 2
    assert ops(capsys, "history", "--before", "garbage")[0] == 2


# ---------------------------------------------------------------- who was owed November's report and has none

ANNA, BORIS, CHEN, DANA, EGOR, FAY = 2001, 2002, 2003, 2004, 2005, 2006
NOVEMBER_END = datetime(2026, 11, 30, 20, 0, tzinfo=MOSCOW)


def _user(system: Any, user_id: int, *, active: bool = True) -> None:
    run_sql("INSERT INTO users (user_id, chat_id, username, is_active, created_at, last_seen_at)"
            " VALUES (%s, %s, %s, %s, '2026-01-05 12:00+03', '2026-01-05 12:00+03')",
            (user_id, user_id, f"user{user_id}", active))
    system.telegram.add_chat(user_id)


def _spend(user_id: int, at: datetime) -> None:
    run_sql("INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at)"
            " VALUES (%s, 100, 'food', 'x', %s, %s)", (user_id, at, at))


def test_missing_lists_the_users_owed_the_months_report_who_have_none(system, capsys):
    for user_id in (ANNA, BORIS, CHEN, DANA, FAY):
        _user(system, user_id)
    _user(system, EGOR, active=False)  # blocked the bot before November ended: owed nothing
    for user_id in (ANNA, BORIS, CHEN, EGOR):
        _spend(user_id, datetime(2026, 11, 12, 13, 0, tzinfo=MOSCOW))
    _spend(DANA, datetime(2026, 10, 12, 13, 0, tzinfo=MOSCOW))  # nothing in November: owed nothing
    system.telegram.block(BORIS)

    # The month-end run, for real: it plans Anna, Boris and Chen; the worker sends Anna's and Boris's (his
    # chat is gone: dropped), then Telegram fails Chen's.
    system.clock.set(NOVEMBER_END)
    outcome = system.fire_schedule("SendMonthlyReportsFunction", NOVEMBER_END)
    assert (outcome["status"], outcome["planned"]) == ("succeeded", 3)
    units = {json.loads(m["Body"])["args"]["user_id"]: m for m in system.receive_raw("ReportsQueue")}
    assert set(units) == {ANNA, BORIS, CHEN}
    system.invoke_worker("ReportsQueue", [units[ANNA], units[BORIS]])
    system.telegram.set_failures(fail_fraction=1.0)
    system.invoke_worker("ReportsQueue", [units[CHEN]])
    system.telegram.set_failures(fail_fraction=0.0)
    # Fay's November expense is booked after the run: she is owed the report, and nothing was sent.
    _spend(FAY, datetime(2026, 11, 30, 21, 0, tzinfo=MOSCOW))

    code, out, err = ops(capsys, "history", "missing", "--kind", "monthly_report", "--month", "2026-11", "--json")

    assert code == 1, err  # users without their report: a problem found
    missing = {row["user_id"]: row for row in json.loads(out)["users"]}
    assert sorted(missing) == [BORIS, CHEN, FAY]
    assert (missing[BORIS]["message_status"], missing[BORIS]["is_active"]) == ("dropped", False)
    assert missing[CHEN]["message_status"] == "failed" and missing[CHEN]["last_error"]
    assert missing[FAY]["message_status"] is None

    [(run_id,)] = run_sql("SELECT id FROM job_runs WHERE job = 'send_monthly_reports'")
    code, out, _ = ops(capsys, "history", "missing", "--run", str(run_id), "--json")
    assert code == 1 and sorted(row["user_id"] for row in json.loads(out)["users"]) == [BORIS, CHEN, FAY]

    # One user a page, in user order.
    pages = [json.loads(ops(capsys, "history", "missing", "--month", "2026-11", "--limit", "1", "--page", str(n),
                            "--json")[1])["users"] for n in (1, 2, 3, 4)]
    assert [[row["user_id"] for row in page] for page in pages] == [[BORIS], [CHEN], [FAY], []]

    code, out, _ = ops(capsys, "history", "missing", "--month", "2026-11")
    table = {row[0]: row for row in cells(out) if row and row[0].isdigit()}
    assert set(table) == {str(BORIS), str(CHEN), str(FAY)}
    assert table[str(FAY)][4] == "none" and table[str(BORIS)][4] == "dropped"

    # The same month's failures in the history, as the example asks.
    page = _history(capsys, "--kind", "monthly_report", "--month", "2026-11", "--status", "failed,dropped")
    assert sorted((row["user_id"], row["status"]) for row in page["rows"]) == [(BORIS, "dropped"), (CHEN, "failed")]


def test_missing_needs_a_month_or_a_run_of_the_monthly_reports(system, capsys):
    run_sql("INSERT INTO job_runs (job, slot, status, started_at, details) VALUES"
            " ('check_budget_limits', now(), 'succeeded', now(), '{}'),"
            " ('send_monthly_reports', now(), 'succeeded', now(), '{\"skipped\": \"not the last day of the month\"}')")
    [(budget_run,)] = run_sql("SELECT id FROM job_runs WHERE job = 'check_budget_limits'")
    [(skipped_run,)] = run_sql("SELECT id FROM job_runs WHERE job = 'send_monthly_reports'")

    assert ops(capsys, "history", "missing")[0] == 2
    code, _, err = ops(capsys, "history", "missing", "--run", str(budget_run))
    assert code == 2 and "is a run of check_budget_limits" in err
    code, _, err = ops(capsys, "history", "missing", "--run", str(skipped_run))
    assert code == 2 and "not the last day of the month" in err
    code, _, err = ops(capsys, "history", "missing", "--kind", "budget_alert", "--month", "2026-11")
    assert code == 2 and "monthly_report" in err
