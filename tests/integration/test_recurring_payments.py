"""process_recurring_payments on real PostgreSQL: the plan (one statement, in step with the pure rule), the
job fired by its schedule, the recurring worker fed the queue's real messages, the notice at the Telegram
stand-in, and every duplicate (schedule, SQS message, overlapping runs) booking and sending nothing more."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from expensebot.bootstrap import get_runtime
from expensebot.jobs.recurring_payments import due_dates, plan_recurring_payments
from tests.conftest import MOSCOW, load_event
from tests.conftest import run_sql as _execute

ANNA = 1001
JOHN = 1002
JOB_FUNCTION = "ProcessRecurringPaymentsFunction"
QUEUE = "RecurringQueue"


def _user(system, user_id: int, language_code: str = "ru") -> None:
    _execute(
        "INSERT INTO users (user_id, chat_id, language_code, created_at, last_seen_at) VALUES (%s, %s, %s, %s, %s)",
        (user_id, user_id, language_code, datetime(2025, 1, 1, tzinfo=MOSCOW), datetime(2025, 1, 1, tzinfo=MOSCOW)),
    )
    system.telegram.add_chat(user_id)


def _payment(user_id: int, day: int, created_at: datetime, amount: str = "990.00",
             description: str = "домашний интернет", category: str = "communication", active: bool = True) -> int:
    ((payment_id,),) = _execute(
        "INSERT INTO recurring_payments (user_id, day_of_month, amount, description, category, is_active, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (user_id, day, Decimal(amount), description, category, active, created_at),
    )
    return payment_id


def _run_day(system, day: date, *, attempt: int = 1) -> dict[str, Any]:
    """The 12:00 schedule of that day (Moscow), then the recurring worker drains its queue."""
    slot = datetime.combine(day, time(12, 0), tzinfo=MOSCOW)
    system.clock.set(slot)
    outcome = system.fire_schedule(JOB_FUNCTION, slot, attempt=attempt)
    drained = system.drain(QUEUE)
    assert drained.failed == 0
    return outcome


def _booked(payment_id: int | None = None) -> list[tuple[Any, ...]]:
    """(payment, due date, spent at in Moscow, amount, category, description) of every booked payment."""
    return _execute(
        "SELECT recurring_payment_id, due_date, spent_at AT TIME ZONE 'Europe/Moscow', amount, category, description"
        "  FROM expenses WHERE recurring_payment_id IS NOT NULL"
        "   AND (%(p)s::bigint IS NULL OR recurring_payment_id = %(p)s)"
        " ORDER BY due_date, recurring_payment_id",
        {"p": payment_id},
    )


def _due_dates_booked(payment_id: int) -> list[date]:
    return [row[1] for row in _booked(payment_id)]


def _texts(system, chat_id: int) -> list[str]:
    return [call.params["text"] for call in system.telegram.sent_messages(chat_id)]


# ---------------------------------------------------------------- the plan


def test_the_plan_for_every_payment_is_one_sql_statement(system, sql_statements):
    for i in range(30):
        _user(system, 2000 + i)
        _payment(2000 + i, 1 + i, datetime(2026, 1, 1, 9, 0, tzinfo=MOSCOW))
    dues = plan_recurring_payments(get_runtime(), date(2026, 3, 10))
    assert len(sql_statements) == 1
    # Days 1..30 since 1 January, to 10 March: January and February for all 30 (day 29/30 on 28 February),
    # March for days 1..10.
    assert len(dues) == 30 + 30 + 10
    assert len({(d.payment_id, d.due_date) for d in dues}) == len(dues)


def test_the_sql_plan_and_the_pure_rule_agree_on_random_payments_and_days(system):
    rng = random.Random(20260310)
    _user(system, ANNA)
    first_instant = datetime(2025, 11, 1, tzinfo=MOSCOW)
    payments: dict[int, tuple[int, date]] = {}
    for _ in range(150):
        day = rng.choice([1, 2, 14, 15, 27, 28, 29, 30, 31, rng.randint(1, 31)])
        # Any minute over two and a half years, many of them close to midnight, where Moscow's date and
        # UTC's differ.
        created_at = first_instant + timedelta(days=rng.randint(0, 900), minutes=rng.choice(
            [0, 30, 60 * 23 + 59, 60 * 2 + 30, rng.randint(0, 24 * 60 - 1)]))
        payment_id = _payment(ANNA, day, created_at)
        payments[payment_id] = (day, created_at.astimezone(MOSCOW).date())

    todays = [date(2026, 2, 28), date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1), date(2027, 12, 31)]
    todays += [date(2025, 11, 1) + timedelta(days=rng.randint(0, 1000)) for _ in range(20)]
    runtime = get_runtime()
    for today in todays:
        planned = {(d.payment_id, d.due_date) for d in plan_recurring_payments(runtime, today)}
        expected = {(pid, due) for pid, (day, created_on) in payments.items()
                    for due in due_dates(day, created_on, today)}
        assert planned == expected, today

    # With bookings: the plan resumes after each payment's latest booked date.
    today = date(2028, 1, 20)
    latest: dict[int, date] = {}
    for payment_id, (day, created_on) in payments.items():
        dates = due_dates(day, created_on, today)
        if dates and rng.random() < 0.6:
            latest[payment_id] = rng.choice(dates)
            _book_directly(payment_id, latest[payment_id])
    planned = {(d.payment_id, d.due_date) for d in plan_recurring_payments(runtime, today)}
    expected = {(pid, due) for pid, (day, created_on) in payments.items()
                for due in due_dates(day, created_on, today) if pid not in latest or due > latest[pid]}
    assert planned == expected


def _book_directly(payment_id: int, due: date) -> None:
    """What the booking task leaves behind: the expense, and the payment's latest booked date."""
    _execute(
        "INSERT INTO expenses (user_id, amount, category, description, spent_at, created_at, recurring_payment_id,"
        " due_date) SELECT user_id, amount, category, description, %s, now(), id, %s FROM recurring_payments"
        " WHERE id = %s",
        (datetime.combine(due, time(12), tzinfo=MOSCOW), due, payment_id),
    )
    _execute("UPDATE recurring_payments SET booked_through = GREATEST(booked_through, %s) WHERE id = %s",
             (due, payment_id))


def test_a_payment_created_just_after_midnight_in_moscow_counts_from_moscows_date(system):
    _user(system, ANNA)
    # 00:30 on 10 March in Moscow is still 9 March in UTC: day 9 is first due on 9 April, not 9 March.
    payment_id = _payment(ANNA, 9, datetime(2026, 3, 10, 0, 30, tzinfo=MOSCOW))
    assert plan_recurring_payments(get_runtime(), date(2026, 3, 10)) == []
    planned = plan_recurring_payments(get_runtime(), date(2026, 4, 9))
    assert [(d.payment_id, d.due_date) for d in planned] == [(payment_id, date(2026, 4, 9))]


def test_inactive_payments_and_inactive_users_are_not_planned(system):
    _user(system, ANNA)
    _user(system, JOHN)
    _payment(ANNA, 5, datetime(2026, 3, 1, tzinfo=MOSCOW), active=False)
    _payment(JOHN, 5, datetime(2026, 3, 1, tzinfo=MOSCOW))
    _execute("UPDATE users SET is_active = false WHERE user_id = %s", (JOHN,))
    assert plan_recurring_payments(get_runtime(), date(2026, 3, 10)) == []


# ---------------------------------------------------------------- the job and the worker


def test_end_to_end_the_schedule_books_the_expense_and_tells_its_owner(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 10, datetime(2026, 2, 20, 18, 0, tzinfo=MOSCOW), amount="1490.50")

    outcome = _run_day(system, date(2026, 3, 10))

    assert (outcome["status"], outcome["planned"], outcome["enqueued"]) == ("succeeded", 1, 1)
    assert outcome["details"] == {"today": "2026-03-10", "caught_up": 0}
    assert _booked() == [(payment_id, date(2026, 3, 10), datetime(2026, 3, 10, 12, 0), Decimal("1490.50"),
                          "communication", "домашний интернет")]
    ((created_at,),) = _execute("SELECT created_at FROM expenses")
    assert created_at == datetime(2026, 3, 10, 12, 0, tzinfo=MOSCOW)
    (text,) = _texts(system, ANNA)
    assert "1\u00a0490,50\u00a0₽" in text and "домашний интернет" in text and "10 марта 2026" in text
    assert _execute("SELECT kind, status, attempts FROM notifications") == [("recurring_notice", "sent", 1)]
    assert _execute("SELECT job, status, planned, enqueued FROM job_runs") == [
        ("process_recurring_payments", "succeeded", 1, 1)
    ]


def test_an_english_user_is_told_in_english(system):
    _user(system, JOHN, language_code="en")
    _payment(JOHN, 31, datetime(2026, 4, 1, 10, 0, tzinfo=MOSCOW), amount="12", description="gym",
             category="health")

    _run_day(system, date(2026, 4, 30))

    (text,) = _texts(system, JOHN)
    assert text == "🔁 Recurring payment recorded: 12.00 ₽ — gym (health).\nDue date: 30 April 2026."


def test_day_31_falls_on_28_february_2026(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 31, datetime(2026, 2, 1, 10, 0, tzinfo=MOSCOW))

    _run_day(system, date(2026, 2, 27))
    assert _booked() == []
    _run_day(system, date(2026, 2, 28))
    _run_day(system, date(2026, 3, 1))

    assert _due_dates_booked(payment_id) == [date(2026, 2, 28)]
    assert _booked()[0][2] == datetime(2026, 2, 28, 12, 0)
    (text,) = _texts(system, ANNA)
    assert "28 февраля 2026" in text


def test_day_31_falls_on_29_february_in_the_leap_year_2028(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 31, datetime(2028, 2, 1, 10, 0, tzinfo=MOSCOW))

    _run_day(system, date(2028, 2, 28))
    assert _booked() == []
    _run_day(system, date(2028, 2, 29))
    _run_day(system, date(2028, 3, 1))

    assert _due_dates_booked(payment_id) == [date(2028, 2, 29)]


def test_day_31_falls_on_30_april_and_then_on_31_may(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 31, datetime(2026, 4, 1, 10, 0, tzinfo=MOSCOW))

    for day in (date(2026, 4, 29), date(2026, 4, 30), date(2026, 5, 1), date(2026, 5, 30), date(2026, 5, 31)):
        _run_day(system, day)

    assert _due_dates_booked(payment_id) == [date(2026, 4, 30), date(2026, 5, 31)]
    assert len(_texts(system, ANNA)) == 2


def test_a_payment_created_after_its_day_of_the_month_is_first_booked_the_next_month(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 5, datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))

    _run_day(system, date(2026, 3, 10))
    _run_day(system, date(2026, 4, 4))
    assert _booked() == []
    _run_day(system, date(2026, 4, 5))

    assert _due_dates_booked(payment_id) == [date(2026, 4, 5)]


def test_a_payment_created_on_its_day_before_the_run_is_booked_that_day(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 10, datetime(2026, 3, 10, 9, 0, tzinfo=MOSCOW))

    _run_day(system, date(2026, 3, 10))

    assert _due_dates_booked(payment_id) == [date(2026, 3, 10)]


def test_a_run_missed_on_the_15th_is_caught_up_on_the_16th(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 15, datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW))

    _run_day(system, date(2026, 3, 14))
    # No run on the 15th (the schedule failed, or the region was down).
    outcome = _run_day(system, date(2026, 3, 16))

    assert outcome["details"] == {"today": "2026-03-16", "caught_up": 1}
    assert _booked() == [(payment_id, date(2026, 3, 15), datetime(2026, 3, 15, 12, 0), Decimal("990.00"),
                          "communication", "домашний интернет")]
    (text,) = _texts(system, ANNA)
    assert "15 марта 2026" in text
    assert _run_day(system, date(2026, 3, 17))["planned"] == 0


def test_several_missed_months_are_each_booked_once(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 31, datetime(2026, 1, 10, 9, 0, tzinfo=MOSCOW))

    first = _run_day(system, date(2026, 5, 2))
    again = _run_day(system, date(2026, 5, 3))

    assert (first["planned"], first["details"]["caught_up"]) == (4, 4)
    assert again["planned"] == 0
    assert _due_dates_booked(payment_id) == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    texts = _texts(system, ANNA)
    assert len(texts) == 4
    assert {next(m for m in ("31 января", "28 февраля", "31 марта", "30 апреля") if m in text) for text in texts} == {
        "31 января", "28 февраля", "31 марта", "30 апреля"
    }


def test_a_duplicate_schedule_delivery_of_the_same_slot_books_nothing_more(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 10, datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW))

    first = _run_day(system, date(2026, 3, 10))
    duplicate = _run_day(system, date(2026, 3, 10), attempt=2)

    assert first["status"] == "succeeded" and duplicate["status"] == "duplicate"
    assert _due_dates_booked(payment_id) == [date(2026, 3, 10)]
    assert len(_texts(system, ANNA)) == 1


def test_two_runs_that_plan_the_same_date_before_the_worker_runs_book_it_once(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 15, datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW))
    # The worker is behind: the 15th's unit is still queued when the 16th's run plans the 15th again.
    for day in (15, 16):
        slot = datetime(2026, 3, day, 12, 0, tzinfo=MOSCOW)
        system.clock.set(slot)
        assert system.fire_schedule(JOB_FUNCTION, slot)["enqueued"] == 1

    drained = system.drain(QUEUE)

    assert (drained.processed, drained.failed) == (2, 0)
    assert _due_dates_booked(payment_id) == [date(2026, 3, 15)]
    assert len(_texts(system, ANNA)) == 1


def test_a_duplicate_sqs_delivery_books_one_expense_and_sends_one_notice(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 10, datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW))
    slot = datetime(2026, 3, 10, 12, 0, tzinfo=MOSCOW)
    system.clock.set(slot)
    system.fire_schedule(JOB_FUNCTION, slot)
    messages = system.receive_raw(QUEUE)
    assert len(messages) == 1

    first = system.invoke_worker(QUEUE, messages)
    second = system.invoke_worker(QUEUE, messages)

    assert first == {"batchItemFailures": []} and second == {"batchItemFailures": []}
    assert _due_dates_booked(payment_id) == [date(2026, 3, 10)]
    assert len(_texts(system, ANNA)) == 1
    assert _execute("SELECT status, attempts FROM notifications") == [("sent", 1)]


def test_a_booking_whose_notice_was_lost_gets_it_on_redelivery(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 10, datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW))
    slot = datetime(2026, 3, 10, 12, 0, tzinfo=MOSCOW)
    system.clock.set(slot)
    system.fire_schedule(JOB_FUNCTION, slot)
    # The worker booked the date and died before the send: the expense exists, no claim was made.
    _book_directly(payment_id, date(2026, 3, 10))

    system.drain(QUEUE)

    assert _due_dates_booked(payment_id) == [date(2026, 3, 10)]
    assert len(_texts(system, ANNA)) == 1


def test_a_deactivated_payment_books_nothing_even_when_its_unit_is_already_queued(system):
    _user(system, ANNA)
    _payment(ANNA, 10, datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW), active=False)
    later = _payment(ANNA, 10, datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW), description="подписка")
    slot = datetime(2026, 3, 10, 12, 0, tzinfo=MOSCOW)
    system.clock.set(slot)
    assert system.fire_schedule(JOB_FUNCTION, slot)["planned"] == 1
    # Switched off after the plan, before the worker ran.
    _execute("UPDATE recurring_payments SET is_active = false WHERE id = %s", (later,))

    drained = system.drain(QUEUE)

    assert (drained.processed, drained.failed) == (1, 0)
    assert _booked() == [] and _texts(system, ANNA) == []
    assert _execute("SELECT count(*) FROM notifications") == [(0,)]


def test_a_booking_removed_later_by_retention_or_by_its_owner_is_not_booked_again(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 10, datetime(2026, 1, 1, 9, 0, tzinfo=MOSCOW))
    _run_day(system, date(2026, 3, 10))
    assert _due_dates_booked(payment_id) == [date(2026, 1, 10), date(2026, 2, 10), date(2026, 3, 10)]

    _execute("DELETE FROM expenses WHERE due_date < '2026-03-01'")
    outcome = _run_day(system, date(2026, 3, 11))

    assert outcome["planned"] == 0
    assert _due_dates_booked(payment_id) == [date(2026, 3, 10)]

    # The owner's /undo removes the latest booking too: it stays removed, and April is booked as usual.
    _execute("DELETE FROM expenses WHERE due_date = '2026-03-10'")
    assert _run_day(system, date(2026, 3, 12))["planned"] == 0
    assert _due_dates_booked(payment_id) == []
    assert _run_day(system, date(2026, 4, 10))["planned"] == 1
    assert _due_dates_booked(payment_id) == [date(2026, 4, 10)]


def test_units_of_a_catch_up_booked_out_of_order_leave_the_latest_date_on_the_payment(system):
    _user(system, ANNA)
    payment_id = _payment(ANNA, 5, datetime(2026, 1, 1, 9, 0, tzinfo=MOSCOW))
    system.clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=MOSCOW))
    system.fire_schedule(JOB_FUNCTION, datetime(2026, 3, 10, 12, 0, tzinfo=MOSCOW))
    received = system.receive_raw(QUEUE)
    assert len(received) == 3
    for message in reversed(received):  # March first, January last
        system.invoke_worker(QUEUE, [message])
    system.delete(QUEUE, received)

    assert _execute("SELECT booked_through FROM recurring_payments WHERE id = %s", (payment_id,)) == [
        (date(2026, 3, 5),)
    ]
    assert _due_dates_booked(payment_id) == [date(2026, 1, 5), date(2026, 2, 5), date(2026, 3, 5)]


# ---------------------------------------------------------------- the sample event for `sam local invoke`


def test_the_sample_sqs_event_is_a_real_record_from_the_queue_the_recurring_worker_consumes(template):
    (record,) = load_event("sqs_recurring_book_payment.json")["Records"]
    (subscription,) = [s for s in template.subscriptions() if s.function_id == "RecurringWorkerFunction"]
    assert record["eventSourceARN"].rsplit(":", 1)[1].endswith(subscription.queue_id)
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert record["awsRegion"] == record["eventSourceARN"].split(":")[3]
    assert json.loads(record["body"])["task"] == "recurring.book_recurring_payment"


def test_the_sample_sqs_event_books_the_payment_through_the_recurring_worker(system, template, lambda_context):
    event = load_event("sqs_recurring_book_payment.json")
    args = json.loads(event["Records"][0]["body"])["args"]
    _user(system, args["user_id"])
    payment_id = _payment(args["user_id"], 10, datetime(2026, 3, 1, 9, 0, tzinfo=MOSCOW), amount=args["amount"],
                          description=args["description"], category=args["category"])
    assert payment_id == args["payment_id"]

    response = template.load_handler("RecurringWorkerFunction")(event, lambda_context)

    assert response == {"batchItemFailures": []}
    assert _due_dates_booked(payment_id) == [date.fromisoformat(args["due_date"])]
    (text,) = _texts(system, args["user_id"])
    assert "990,00" in text and "домашний интернет" in text and "10 марта 2026" in text
