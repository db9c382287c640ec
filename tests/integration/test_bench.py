"""The benchmark data set and the benchmarks at a tiny size, on real PostgreSQL: the generator gives the
same rows for the same seed, and each benchmark runs end to end and leaves its JSON line. Correctness
only: the speed goals are measured by `make bench`, never here."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from rich.console import Console

from expensebot.categories import CATEGORIES
from expensebot_tools.bench import BenchOptions, run_benchmarks
from expensebot_tools.bench.dataset import DatasetSpec, dataset_now, ensure_dataset, fingerprint, generate
from tests.conftest import MOSCOW

TINY = DatasetSpec(users=50, expenses=2_000, seed=7)


@pytest.fixture
def bench_url(database_url: str) -> Iterator[str]:
    """A database of its own on the tests' server (the generator empties every table it finds)."""
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS expensebot_bench_test")
        cur.execute("CREATE DATABASE expensebot_bench_test")
    url = urlunsplit(urlsplit(database_url)._replace(path="/expensebot_bench_test"))
    yield url
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS expensebot_bench_test WITH (FORCE)")
    admin.close()


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=150)


def _one(url: str, sql: str, params: tuple[object, ...] = ()) -> tuple[object, ...]:
    conn = psycopg2.connect(url, options="-c timezone=Europe/Moscow")
    with conn, conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    conn.close()
    return row


def test_the_same_seed_gives_the_same_rows_and_another_seed_other_rows(bench_url):
    first = ensure_dataset(bench_url, TINY, console=_quiet())
    assert first.generated_now
    original = fingerprint(bench_url)

    generate(bench_url, TINY)
    assert fingerprint(bench_url) == original
    generate(bench_url, DatasetSpec(users=50, expenses=2_000, seed=8))
    assert fingerprint(bench_url) != original


def test_the_data_set_has_the_shape_the_jobs_need(bench_url):
    ensure_dataset(bench_url, TINY, console=_quiet())
    now = dataset_now(MOSCOW)
    (users,) = _one(bench_url, "SELECT count(*) FROM users")
    assert users == 50
    count, newest, past_retention, with_kopecks, categories = _one(
        bench_url,
        "SELECT count(*), max(spent_at), count(*) FILTER (WHERE spent_at < %s),"
        " count(*) FILTER (WHERE amount <> trunc(amount)), array_agg(DISTINCT category) FROM expenses",
        (now - timedelta(days=730),),
    )
    assert count == 2_000
    assert newest <= now
    assert past_retention > 0  # the cleanup has work
    assert with_kopecks > 0
    assert set(categories) <= set(CATEGORIES)
    (budgets,) = _one(bench_url, "SELECT count(*) FROM budgets")
    assert budgets > 0
    # Every booked recurring payment is on its due date: its day, or the last day of a shorter month.
    (misbooked,) = _one(
        bench_url,
        "SELECT count(*) FROM expenses e JOIN recurring_payments p ON p.id = e.recurring_payment_id"
        " WHERE e.due_date <> make_date(extract(year FROM e.due_date)::int, extract(month FROM e.due_date)::int,"
        " LEAST(p.day_of_month, extract(day FROM date_trunc('month', e.due_date) + interval '1 month'"
        " - interval '1 day')::int))",
    )
    assert misbooked == 0


def test_the_data_set_has_currencies_incomes_and_budget_periods_in_realistic_shares(bench_url):
    ensure_dataset(bench_url, DatasetSpec(users=2_000, expenses=20_000, seed=3), console=_quiet())

    (shares,) = _one(bench_url, "SELECT json_object_agg(currency, n) FROM"
                                " (SELECT currency, count(*) AS n FROM users GROUP BY currency) c")
    assert set(shares) == {"RUB", "KZT", "USD", "EUR"}
    assert shares["RUB"] > 0.75 * 2_000 and all(shares[code] > 20 for code in ("KZT", "USD", "EUR"))
    # Most expenses are in the user's own currency, a few in a second one.
    other, total = _one(bench_url, "SELECT count(*) FILTER (WHERE e.currency <> u.currency), count(*)"
                                   " FROM expenses e JOIN users u USING (user_id)")
    assert 0 < other < 0.05 * total
    salaried, salary_months, others = _one(
        bench_url,
        "SELECT count(DISTINCT user_id) FILTER (WHERE category = 'salary'),"
        " count(DISTINCT date_trunc('month', received_at)) FILTER (WHERE category = 'salary'),"
        " count(*) FILTER (WHERE category <> 'salary') FROM incomes",
    )
    assert 0.5 * 2_000 < salaried < 0.75 * 2_000 and salary_months == 6 and others > 0
    (periods,) = _one(bench_url, "SELECT json_object_agg(period, n) FROM"
                                 " (SELECT period, count(*) AS n FROM budgets GROUP BY period) p")
    assert periods["month"] > periods["week"] > periods["day"] > 0
    (foreign_budgets,) = _one(bench_url, "SELECT count(*) FROM budgets b JOIN users u USING (user_id)"
                                         " WHERE b.currency <> u.currency")
    assert foreign_budgets == 0
    # Alerts already sent are keyed by their period's start: 1 March, Monday 30 March, today (31 March).
    (starts,) = _one(bench_url, "SELECT json_object_agg(period, s) FROM (SELECT b.period,"
                                " array_agg(DISTINCT a.period_start::text) AS s FROM budget_alerts a"
                                " JOIN budgets b ON b.id = a.budget_id GROUP BY b.period) x")
    assert starts["month"] == ["2026-03-01"] and starts["week"] == ["2026-03-30"]
    assert starts.get("day", ["2026-03-31"]) == ["2026-03-31"]


def test_a_data_set_already_there_is_reused_and_a_database_with_other_data_is_refused(bench_url):
    ensure_dataset(bench_url, TINY, console=_quiet())
    before = fingerprint(bench_url)
    again = ensure_dataset(bench_url, TINY, console=_quiet())
    assert not again.generated_now
    assert fingerprint(bench_url) == before

    conn = psycopg2.connect(bench_url)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM bench_dataset")  # now it is just a database with users in it
    conn.close()
    with pytest.raises(SystemExit, match="not a benchmark data set"):
        ensure_dataset(bench_url, TINY, console=_quiet())
    assert fingerprint(bench_url) == before  # nothing was emptied


def test_every_benchmark_runs_end_to_end_at_a_tiny_size_and_leaves_its_json_line(bench_url, tmp_path):
    results = tmp_path / "results.jsonl"
    options = BenchOptions(users=TINY.users, expenses=TINY.expenses, seed=TINY.seed, database_url=bench_url,
                           old_rows=500, enqueue_sample=30, results_path=results)
    ensure_dataset(bench_url, TINY, console=_quiet())
    before = fingerprint(bench_url)

    ran = run_benchmarks(["budget_check", "planners", "cleanup"], options, console=_quiet())

    assert ran == ["budget_check", "planners", "cleanup"]
    lines = {line["name"]: line for line in map(json.loads, results.read_text(encoding="utf-8").splitlines())}
    assert set(lines) == set(ran)
    for line in lines.values():
        assert line["machine"]["cpus"] >= 1
        assert line["dataset"] == {"users": 50, "expenses": 2_000, "seed": 7, "now": dataset_now(MOSCOW).isoformat(),
                                   "postgres": line["dataset"]["postgres"]}

    budget = lines["budget_check"]
    assert budget["alerts_planned"] > 0  # so "the same alerts" compares something
    assert budget["same_alerts"] is True and budget["naive_extrapolated"] is False
    assert budget["naive_users_timed"] == budget["active_users"]
    assert budget["set_based_seconds"] > 0 and budget["ratio"] > 0

    planners = {row["job"]: row for row in lines["planners"]["planners"]}
    assert planners["check_budget_limits"]["available"]
    assert planners["check_budget_limits"]["units"] == budget["alerts_planned"]
    for row in planners.values():
        if row.get("enqueued") is not None:
            assert row["enqueued"] == min(row["units"], 30)

    cleanup = lines["cleanup"]
    assert cleanup["available"] is True
    assert cleanup["rows_deleted"] == 500 and cleanup["naive_rows_deleted"] == 500
    assert cleanup["rows_of_the_data_set"] > 0 and cleanup["rows_of_the_data_set"] + cleanup["rows_added"] == 500
    assert cleanup["newer_rows_untouched"] is True
    # The cleanup put the data set's own old rows back: the next run measures the same data.
    assert fingerprint(bench_url) == before


def test_the_naive_loop_timed_over_a_sample_says_it_was_extrapolated(bench_url, tmp_path):
    results = tmp_path / "results.jsonl"
    options = BenchOptions(users=TINY.users, expenses=TINY.expenses, seed=TINY.seed, database_url=bench_url,
                           naive_sample=10, results_path=results)
    run_benchmarks(["budget_check"], options, console=_quiet())
    (line,) = [json.loads(text) for text in results.read_text(encoding="utf-8").splitlines()]
    assert line["naive_extrapolated"] is True
    assert line["naive_users_timed"] == 10
    assert line["same_alerts"] is True
    assert line["naive_seconds"] >= line["naive_seconds_timed"]


def test_the_broadcast_benchmark_delivers_every_message_once_through_concurrent_workers(tmp_path):
    results = tmp_path / "results.jsonl"
    environment_before = dict(os.environ)
    options = BenchOptions(broadcast_chats=60, results_path=results)

    ran = run_benchmarks(["broadcast"], options, console=_quiet())

    assert ran == ["broadcast"]
    (line,) = map(json.loads, results.read_text(encoding="utf-8").splitlines())
    assert "dataset" not in line
    assert (line["delivered"], line["duplicates"], line["lost"]) == (60, 0, 0)
    assert (line["unpaced_duplicates"], line["unpaced_lost"]) == (0, 0)
    assert line["bound_seconds"] == 2.0 and line["seconds"] >= 59 / 30 * 0.9
    assert dict(os.environ) == environment_before  # the run's endpoint and variables do not leak


def test_the_paid_broadcast_sends_each_chat_one_message_with_allow_paid_broadcast_and_no_429(tmp_path):
    results = tmp_path / "results.jsonl"
    environment_before = dict(os.environ)
    options = BenchOptions(paid_chats=200, paid_workers=(2,), paid_sqs_chats=30, paid_ordinary_chats=10,
                           results_path=results)

    assert run_benchmarks(["broadcast_paid"], options, console=_quiet()) == ["broadcast_paid"]

    (line,) = map(json.loads, results.read_text(encoding="utf-8").splitlines())
    (direct,) = line["runs"]
    # Every chat got exactly one message, each sent with allow_paid_broadcast, and Telegram refused none.
    assert (direct["delivered"], direct["lost"], direct["duplicates"], direct["answered_429"]) == (200, 0, 0, 0)
    assert direct["sends_with_allow_paid_broadcast"] == 200
    assert (line["sqs_fed"]["delivered"], line["sqs_fed"]["duplicates"], line["sqs_fed"]["answered_429"]) == (30, 0, 0)
    assert line["sqs_fed"]["sends_with_allow_paid_broadcast"] == 30
    # The ordinary broadcast beside it sends without the flag, at Telegram's free rate.
    assert (line["ordinary"]["delivered"], line["ordinary"]["sends_with_allow_paid_broadcast"]) == (10, 0)
    assert line["busiest_second"] <= 1000
    assert line["handler_cpu_ms_per_message"] > 0 and line["aws_workers_for_1000_per_second"] > 0
    assert dict(os.environ) == environment_before



def test_the_report_batch_sends_every_report_s_three_parts_once_in_order_a_second_apart(tmp_path):
    results = tmp_path / "results.jsonl"
    environment_before = dict(os.environ)
    options = BenchOptions(report_users=6, report_naive_users=2, results_path=results)

    assert run_benchmarks(["report_batch"], options, console=_quiet()) == ["report_batch"]

    (line,) = map(json.loads, results.read_text(encoding="utf-8").splitlines())
    assert "dataset" not in line
    for key in ("reports", "batches", "seconds", "reports_per_second", "naive_reports_per_second", "ratio",
                "cpu_ms_per_report", "answered_429", "duplicates", "lost", "spacing_ok"):
        assert key in line, key
    # One batch of six, and another for a report held back after a 429 (its copy comes back delayed).
    assert (line["reports"], line["naive_reports"]) == (6, 2) and line["batches"] >= 1
    # Every chat got its text, chart and PDF once each, in that order, each at least a second after the last.
    assert (line["lost"], line["duplicates"], line["failed_records"]) == (0, 0, 0)
    assert line["in_order"] is True and line["spacing_ok"] is True and line["min_gap_seconds"] >= 1.0
    assert line["outbox"]["reports_complete"] == 6 and line["naive"]["reports_complete"] == 2
    # The naive worker sleeps through each report's two seconds of chat spacing; the batch shares them.
    assert line["naive"]["handler_seconds"] >= 2 * 2.0
    assert line["cpu_ms_per_report"] > 0 and line["aws_reports_per_second"] > 0
    assert dict(os.environ) == environment_before
