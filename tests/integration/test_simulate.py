"""`expensebot simulate` in-process: updates at their dates, schedules at Scheduler's times, queues drained
through the workers, SQS on the virtual clock, and the outbox a user reads."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from expensebot_tools.local.simulate import (
    SimulationInputError,
    read_updates,
    simulate,
    sqs_follows,
)
from expensebot_tools.local.updates import FakeUser, UpdateFactory
from tests.conftest import run_sql

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
ANNA = FakeUser(5001, "Анна", "anna")


def write_updates(path: Path, lines: list[tuple[datetime, FakeUser, str]]) -> Path:
    factory = UpdateFactory()
    path.write_text("".join(json.dumps(factory.message(user, text, at), ensure_ascii=False) + "\n"
                            for at, user, text in lines), encoding="utf-8")
    return path


def outbox_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return run_sql(sql, params, database_url=url)


def _anna_spends_85_percent(system: Any, at: datetime) -> None:
    """Anna starts the bot, sets a 1000 budget and spends 850, all at `at`: the next check alerts."""
    factory = UpdateFactory()
    system.telegram.add_chat(ANNA.user_id, first_name=ANNA.first_name)
    for text in ("/start", "/budget 1000", "850 кофе"):
        system.post_update(factory.message(ANNA, text, at))


def test_a_morning_of_updates_gets_replies_at_their_dates_and_the_alert_at_the_next_half_hour(clean_database,
                                                                                                tmp_path):
    morning = datetime(2026, 3, 10, 9, 5, tzinfo=MOSCOW)
    updates = write_updates(tmp_path / "updates.jsonl", [
        (morning, ANNA, "/start"),
        (morning + timedelta(minutes=1), ANNA, "/budget 1000"),
        (morning + timedelta(minutes=2), ANNA, "850 кофе"),
    ])
    start, end = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW), datetime(2026, 3, 10, 11, 0, tzinfo=MOSCOW)
    outbox = tmp_path / "outbox.jsonl"
    report = simulate(start=start, end=end, zone_name="Europe/Moscow",
                      updates=read_updates(updates, start, end, MOSCOW), outbox=outbox, database_url=clean_database)

    sent = [line for line in outbox_lines(outbox) if line["method"] == "sendMessage" and line["chat_id"] == 5001]
    assert [line["at"] for line in sent[:3]] == ["2026-03-10T09:05:00+03:00", "2026-03-10T09:06:00+03:00",
                                                 "2026-03-10T09:07:00+03:00"]
    alerts = [line for line in sent if line["at"] >= "2026-03-10T09:30"]
    assert len(alerts) == 1, "one alert, once, however many checks follow"
    assert alerts[0]["at"].startswith("2026-03-10T09:30:00") and alerts[0]["at"].endswith("+03:00")
    assert "850" in alerts[0]["text"] and alerts[0]["status"] == 200
    assert report.fired["CheckBudgetLimitsFunction"] == 4  # 09:00, 09:30, 10:00, 10:30
    assert report.sent_by_kind == {"budget_alert": {"sent": 1}}
    assert report.processed["NotificationsQueue"] == 1
    assert report.failures == []
    assert all(depth == 0 for depth in report.dlq_depths.values())


def test_a_day_in_moscow_runs_every_job_at_its_slots(clean_database):
    start, end = datetime(2026, 3, 1, tzinfo=MOSCOW), datetime(2026, 3, 2, tzinfo=MOSCOW)  # a Sunday
    report = simulate(start=start, end=end, zone_name="Europe/Moscow", updates=[], database_url=clean_database)
    assert dict(report.fired) == {"CheckBudgetLimitsFunction": 48, "CleanupOldExpensesFunction": 1,
                                  "ProcessRecurringPaymentsFunction": 1, "SendDailyAdminReportFunction": 1,
                                  "SendMonthlyReportsFunction": 1}
    slots = query(clean_database, "SELECT job, slot FROM job_runs WHERE status = 'succeeded' ORDER BY slot")
    by_job: dict[str, list[datetime]] = {}
    for job, slot in slots:
        by_job.setdefault(job, []).append(slot.astimezone(MOSCOW))
    assert len(by_job["check_budget_limits"]) == 48
    assert [(s.hour, s.minute) for s in by_job["cleanup_old_expenses"]] == [(3, 0)]
    assert [(s.hour, s.minute) for s in by_job["send_monthly_reports"]] == [(20, 0)]


def test_the_spring_change_in_berlin_skips_the_missing_hour(clean_database, monkeypatch):
    monkeypatch.setenv("APP_TIMEZONE", "Europe/Berlin")
    start, end = datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN)  # 23 hours long
    report = simulate(start=start, end=end, zone_name="Europe/Berlin", updates=[], database_url=clean_database)
    assert report.fired["CheckBudgetLimitsFunction"] == 46
    slots = [row[0].astimezone(BERLIN) for row in query(
        clean_database, "SELECT slot FROM job_runs WHERE job = 'check_budget_limits' ORDER BY slot")]
    assert len(slots) == 46 and not any(s.hour == 2 for s in slots)
    assert slots[4].strftime("%H:%M %z") == "03:00 +0200"


def test_sqs_delays_and_visibility_timeouts_follow_the_virtual_clock():
    import boto3
    from moto import mock_aws

    from expensebot.clock import VirtualClock

    clock = VirtualClock(datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))
    with mock_aws(), sqs_follows(clock.now):
        sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        url = sqs.create_queue(QueueName="virtual", Attributes={"VisibilityTimeout": "3600"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)

        def receive() -> list[dict[str, Any]]:
            return sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])

        clock.advance(timedelta(seconds=599))
        assert receive() == []
        clock.advance(timedelta(seconds=2))
        assert [m["Body"] for m in receive()] == ["later"]  # received, now invisible for an hour
        clock.advance(timedelta(minutes=59))
        assert receive() == []
        clock.advance(timedelta(minutes=1, seconds=1))
        assert [m["Body"] for m in receive()] == ["later"]


def test_update_lines_that_are_not_json_or_not_updates_or_outside_the_window_are_named(tmp_path):
    start, end = datetime(2026, 3, 1, tzinfo=MOSCOW), datetime(2026, 4, 1, tzinfo=MOSCOW)
    good = json.dumps(UpdateFactory().message(ANNA, "/start", datetime(2026, 3, 2, 9, tzinfo=MOSCOW)))
    cases = {
        "not JSON": f"{good}\n{{oops\n",
        "no update_id": f'{good}\n{{"message": {{}}}}\n',
        "outside the window": json.dumps(UpdateFactory().message(ANNA, "x", datetime(2026, 5, 1, tzinfo=MOSCOW))),
    }
    for expected, text in cases.items():
        path = tmp_path / "updates.jsonl"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(SimulationInputError, match=expected) as caught:
            read_updates(path, start, end, MOSCOW)
        assert "line 2" in str(caught.value) or expected == "outside the window"
    with pytest.raises(SimulationInputError, match="cannot read"):
        read_updates(tmp_path / "missing.jsonl", start, end, MOSCOW)


def test_updates_keep_file_order_and_a_dateless_update_goes_with_the_one_before(tmp_path):
    start, end = datetime(2026, 3, 1, tzinfo=MOSCOW), datetime(2026, 4, 1, tzinfo=MOSCOW)
    factory = UpdateFactory()
    later = factory.message(ANNA, "first", datetime(2026, 3, 5, 12, tzinfo=MOSCOW))
    earlier = factory.message(ANNA, "second", datetime(2026, 3, 5, 11, tzinfo=MOSCOW))
    callback = {"update_id": 1, "callback_query": {"id": "1", "from": ANNA.as_telegram(), "data": "x"}}
    path = tmp_path / "updates.jsonl"
    path.write_text("\n".join(json.dumps(u) for u in (later, earlier, callback)) + "\n", encoding="utf-8")
    happenings = read_updates(path, start, end, MOSCOW)
    assert [h.at for h in happenings] == [datetime(2026, 3, 5, 12, tzinfo=MOSCOW)] * 3
    assert [h.update["update_id"] for h in happenings] == [later["update_id"], earlier["update_id"], 1]


def test_function_settings_come_from_the_environment_as_the_functions_read_them(clean_database, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("ADMIN_CHAT_IDS", "777001")
    start, end = datetime(2026, 3, 10, 9, 45, tzinfo=MOSCOW), datetime(2026, 3, 10, 10, 15, tzinfo=MOSCOW)
    outbox = tmp_path / "outbox.jsonl"
    report = simulate(start=start, end=end, zone_name="Europe/Moscow", updates=[], outbox=outbox,
                      database_url=clean_database)
    to_admin = [line for line in outbox_lines(outbox) if line.get("chat_id") == 777001]
    assert len(to_admin) == 1 and to_admin[0]["at"].startswith("2026-03-10T10:00")
    assert report.fired["SendDailyAdminReportFunction"] == 1 and report.failures == []


def test_a_send_that_fails_is_redelivered_after_its_backoff_in_virtual_time(system):
    from expensebot_tools.local.simulate import Simulation, SimulationReport

    at = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)
    _anna_spends_85_percent(system, at)
    slot = datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW)
    report = SimulationReport(start=at, end=at + timedelta(hours=3))
    with sqs_follows(system.clock.now):
        run = Simulation(system, report)
        system.telegram.set_failures(fail_fraction=1.0)  # Telegram answers 5xx: the send fails
        run.advance_to(slot)
        run.fire("CheckBudgetLimitsFunction", slot)
        run.drain_all()
        assert report.failures and "NotificationsQueue" in report.failures[0]
        due = run.next_due()
        assert due is not None and slot < due <= slot + timedelta(minutes=16)
        system.telegram.set_failures(fail_fraction=0.0)
        run.advance_to(slot + timedelta(hours=2))
    assert report.redelivered["NotificationsQueue"] >= 1
    rows = query(os.environ["DATABASE_URL"], "SELECT status, sent_at FROM notifications WHERE kind = 'budget_alert'")
    assert len(rows) == 1 and rows[0][0] == "sent"
    sent_at = rows[0][1]
    assert slot < sent_at <= due + timedelta(seconds=5), "sent when the message came back, in virtual time"
    alerts_and_reply = [c for c in system.telegram.sent_messages(ANNA.user_id) if "850" in c.params["text"]]
    assert len(alerts_and_reply) == 2  # the reply to "850 кофе", then the alert, once


def test_a_send_that_keeps_failing_lands_in_the_dead_letter_queue_after_five_receives(system):
    from expensebot_tools.local.simulate import Simulation, SimulationReport, _collect

    at = datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW)
    _anna_spends_85_percent(system, at)
    slot = datetime(2026, 3, 10, 9, 30, tzinfo=MOSCOW)
    report = SimulationReport(start=at, end=slot + timedelta(hours=6))
    with sqs_follows(system.clock.now):
        run = Simulation(system, report)
        system.telegram.set_failures(fail_fraction=1.0)
        run.advance_to(slot)
        run.fire("CheckBudgetLimitsFunction", slot)
        run.drain_all()
        run.advance_to(slot + timedelta(hours=6))
        assert run.next_due() is None
        _collect(system, report, report.start, report.end)
    assert report.redelivered["NotificationsQueue"] == 4  # received five times in all
    assert report.dlq_depths["NotificationsDeadLetterQueue"] == 1
    assert report.processed["NotificationsQueue"] == 0


def test_the_autumn_change_in_berlin_runs_the_repeated_half_hours_once(clean_database, monkeypatch):
    monkeypatch.setenv("APP_TIMEZONE", "Europe/Berlin")
    start, end = datetime(2026, 10, 25, tzinfo=BERLIN), datetime(2026, 10, 26, tzinfo=BERLIN)  # 25 hours long
    report = simulate(start=start, end=end, zone_name="Europe/Berlin", updates=[], database_url=clean_database)
    assert report.fired["CheckBudgetLimitsFunction"] == 48 and report.failures == []
    slots = [row[0].astimezone(BERLIN) for row in query(
        clean_database, "SELECT slot FROM job_runs WHERE job = 'check_budget_limits' ORDER BY slot")]
    assert [s.strftime("%H:%M %z") for s in slots[3:8]] == ["01:30 +0200", "02:00 +0200", "02:30 +0200",
                                                            "03:00 +0100", "03:30 +0100"]
